"""MLflow's tracing entities, importable as ``mlflow_otel.entities`` in place of ``mlflow.entities``."""

from mlflow_otel.destinations import MlflowExperimentLocation
from mlflow_otel.spans.live import LiveSpan, NoOpSpan
from mlflow_otel.spans.types import SpanEvent, SpanStatus, SpanStatusCode, SpanType

#: MLflow's ``Span`` (the finished-span entity); here the live span serves reads as well.
Span = LiveSpan

__all__ = [
    "LiveSpan",
    "MlflowExperimentLocation",
    "NoOpSpan",
    "Span",
    "SpanEvent",
    "SpanStatus",
    "SpanStatusCode",
    "SpanType",
]
