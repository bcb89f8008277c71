"""``mlflow.entities.trace``."""

from mlflow_otel.records.model import Trace

__all__ = ["Trace"]
