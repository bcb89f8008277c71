"""``mlflow.entities.span``: spans (``Span`` finished, ``LiveSpan`` being recorded, ``NoOpSpan``)."""

from mlflow_otel.records.model import Span
from mlflow_otel.spans.live import LiveSpan, NoOpSpan
from mlflow_otel.spans.types import SpanType

__all__ = ["LiveSpan", "NoOpSpan", "Span", "SpanType"]
