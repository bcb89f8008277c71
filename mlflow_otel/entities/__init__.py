"""MLflow's tracing entities, importable as ``mlflow_otel.entities`` in place of ``mlflow.entities``
(and by MLflow's submodule paths: ``mlflow_otel.entities.span``, ``.trace_location``, ...)."""

from mlflow_otel.entities.assessment import (
    Assessment,
    AssessmentError,
    AssessmentSource,
    AssessmentSourceType,
    Expectation,
    Feedback,
)
from mlflow_otel.entities.experiment import Experiment
from mlflow_otel.entities.link import Link
from mlflow_otel.entities.span import LiveSpan, NoOpSpan, Span, SpanType
from mlflow_otel.entities.span_event import SpanEvent
from mlflow_otel.entities.span_log_level import SpanLogLevel
from mlflow_otel.entities.span_status import SpanStatus, SpanStatusCode
from mlflow_otel.entities.trace import Trace
from mlflow_otel.entities.trace_data import TraceData
from mlflow_otel.entities.trace_info import TraceInfo
from mlflow_otel.entities.trace_location import MlflowExperimentLocation
from mlflow_otel.entities.trace_state import TraceState

__all__ = [
    "Assessment",
    "AssessmentError",
    "AssessmentSource",
    "AssessmentSourceType",
    "Expectation",
    "Experiment",
    "Feedback",
    "Link",
    "LiveSpan",
    "MlflowExperimentLocation",
    "NoOpSpan",
    "Span",
    "SpanEvent",
    "SpanLogLevel",
    "SpanStatus",
    "SpanStatusCode",
    "SpanType",
    "Trace",
    "TraceData",
    "TraceInfo",
    "TraceState",
]
