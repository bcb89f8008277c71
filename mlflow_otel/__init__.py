"""mlflow-otel: MLflow's tracing API, emitting standard OpenTelemetry spans.

Switch by changing the import: ``import mlflow_otel as mlflow``.
"""

from mlflow_otel import config, destinations, entities, exceptions, openai, tracing
from mlflow_otel._tracking import get_tracking_uri, set_experiment, set_tracking_uri
from mlflow_otel.client import MlflowClient
from mlflow_otel.entities import SpanType
from mlflow_otel.spans.fluent import (
    delete_trace_tag,
    flush_trace_async_logging,
    get_active_trace_id,
    get_current_active_span,
    get_last_active_trace_id,
    set_trace_tag,
    start_span,
    start_span_no_context,
    trace,
    update_current_trace,
)
from mlflow_otel.version import VERSION as __version__

__all__ = [
    "MlflowClient",
    "SpanType",
    "__version__",
    "config",
    "delete_trace_tag",
    "destinations",
    "entities",
    "exceptions",
    "flush_trace_async_logging",
    "get_active_trace_id",
    "get_current_active_span",
    "get_last_active_trace_id",
    "get_tracking_uri",
    "openai",
    "set_experiment",
    "set_trace_tag",
    "set_tracking_uri",
    "start_span",
    "start_span_no_context",
    "trace",
    "tracing",
    "update_current_trace",
]


def _join_at_import() -> None:
    """Sharing the application's provider means processing spans we did not start, from the very
    first one: build the pipeline now rather than at our first span."""
    from mlflow_otel import _runtime
    from mlflow_otel._state import STATE

    if STATE.enabled and not STATE.settings().use_default_tracer_provider:
        _runtime.runtime()


_join_at_import()
