"""``mlflow.entities.span_event``."""

from mlflow_otel.spans.types import SpanEvent

__all__ = ["SpanEvent"]
