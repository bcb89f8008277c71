"""``mlflow.entities.span_log_level`` (MLflow 3.18)."""

from mlflow_otel.spans.types import SpanLogLevel

__all__ = ["SpanLogLevel"]
