"""``mlflow.entities.trace_info``."""

from mlflow_otel.records.model import TraceInfo

__all__ = ["TraceInfo"]
