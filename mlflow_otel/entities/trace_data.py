"""``mlflow.entities.trace_data``."""

from mlflow_otel.records.model import TraceData

__all__ = ["TraceData"]
