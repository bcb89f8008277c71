"""mlflow-otel: MLflow's tracing API, emitting standard OpenTelemetry spans.

Switch by changing the import: ``import mlflow_otel as mlflow``.
"""

from mlflow_otel import config, destinations, entities, tracing
from mlflow_otel._fluent import (
    flush_trace_async_logging,
    get_active_trace_id,
    get_current_active_span,
    get_last_active_trace_id,
    start_span,
    trace,
    update_current_trace,
)
from mlflow_otel._tracking import get_tracking_uri, set_experiment, set_tracking_uri
from mlflow_otel.client import MlflowClient
from mlflow_otel.entities import SpanType
from mlflow_otel.version import VERSION as __version__

__all__ = [
    "MlflowClient",
    "SpanType",
    "__version__",
    "config",
    "destinations",
    "entities",
    "flush_trace_async_logging",
    "get_active_trace_id",
    "get_current_active_span",
    "get_last_active_trace_id",
    "get_tracking_uri",
    "set_experiment",
    "set_tracking_uri",
    "start_span",
    "trace",
    "tracing",
    "update_current_trace",
]
