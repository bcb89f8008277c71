"""``mlflow.entities.link``."""

from mlflow_otel.spans.types import Link

__all__ = ["Link"]
