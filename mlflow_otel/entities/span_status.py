"""``mlflow.entities.span_status``."""

from mlflow_otel.spans.types import SpanStatus, SpanStatusCode

__all__ = ["SpanStatus", "SpanStatusCode"]
