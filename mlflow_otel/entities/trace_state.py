"""``mlflow.entities.trace_state``."""

from mlflow_otel.records.model import TraceState

__all__ = ["TraceState"]
