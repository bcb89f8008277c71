"""mlflow-otel: MLflow's tracing API, emitting standard OpenTelemetry spans.

Switch by changing the import: ``import mlflow_otel as mlflow``.
"""

# The runtime first: it fills the slot through which spans/ reaches the running tracer.
from mlflow_otel import _runtime  # isort: skip
from mlflow_otel import config, destinations, entities, environment_variables, exceptions, openai, tracing
from mlflow_otel._read import (
    delete_assessment,
    delete_trace_tag,
    get_assessment,
    get_trace,
    is_tracking_uri_set,
    log_assessment,
    log_expectation,
    log_feedback,
    override_feedback,
    search_traces,
    set_trace_tag,
    update_assessment,
)
from mlflow_otel._tracking import get_tracking_uri, set_experiment, set_tracking_uri
from mlflow_otel.client import MlflowClient
from mlflow_otel.entities import SpanType
from mlflow_otel.exceptions import MlflowException
from mlflow_otel.integrations.registry import autolog
from mlflow_otel.records.merge import add_trace
from mlflow_otel.spans.fluent import (
    flush_trace_async_logging,
    get_active_trace_id,
    get_current_active_span,
    get_last_active_trace_id,
    log_trace,
    start_span,
    start_span_no_context,
    trace,
    update_current_trace,
)
from mlflow_otel.tracing import context
from mlflow_otel.version import VERSION as __version__

__all__ = [
    "MlflowClient",
    "MlflowException",
    "SpanType",
    "__version__",
    "add_trace",
    "autolog",
    "config",
    "context",
    "delete_assessment",
    "delete_trace_tag",
    "destinations",
    "entities",
    "environment_variables",
    "exceptions",
    "flush_trace_async_logging",
    "get_active_trace_id",
    "get_assessment",
    "get_current_active_span",
    "get_last_active_trace_id",
    "get_trace",
    "get_tracking_uri",
    "is_tracking_uri_set",
    "log_assessment",
    "log_expectation",
    "log_feedback",
    "log_trace",
    "openai",
    "override_feedback",
    "search_traces",
    "set_experiment",
    "set_trace_tag",
    "set_tracking_uri",
    "start_span",
    "start_span_no_context",
    "trace",
    "tracing",
    "update_assessment",
    "update_current_trace",
]


#: Names of the full ``mlflow`` package (runs, models, artifacts, evaluation) that this tracing SDK
#: does not have: asking for one says so, rather than "did you mean 'start_span'?".
_FULL_MLFLOW_NAMES = frozenset(
    {
        "start_run", "end_run", "active_run", "last_active_run", "log_metric", "log_metrics",
        "log_param", "log_params", "log_artifact", "log_artifacts", "log_dict", "log_text",
        "log_figure", "log_image", "log_table", "log_input", "log_model", "set_tag", "set_tags",
        "delete_tag", "create_experiment", "get_experiment", "get_experiment_by_name", "get_run",
        "search_runs", "search_experiments", "register_model", "evaluate", "pyfunc", "sklearn",
        "pytorch", "models", "artifacts", "projects", "genai", "set_registry_uri",
    }
)  # fmt: skip


#: ``mlflow_otel.<flavor>.autolog()`` faces, imported at first use (``mlflow_otel/<flavor>.py``);
#: importing one imports neither its library nor its instrumentor.
_AUTOLOG_FLAVORS = frozenset(
    {
        "anthropic", "langchain", "llama_index", "dspy", "bedrock", "gemini", "groq", "mistral",
        "litellm", "crewai", "openai_agents",
    }
)  # fmt: skip


def __getattr__(name: str) -> object:
    if name in _AUTOLOG_FLAVORS:
        import importlib

        return importlib.import_module(f"mlflow_otel.{name}")
    if name in _FULL_MLFLOW_NAMES:
        raise AttributeError(
            f"mlflow_otel.{name} is part of the full MLflow package (runs, models, artifacts, "
            f"evaluation), not of its tracing API: mlflow-otel implements tracing only. Use "
            f"`import mlflow` (pip install mlflow) for {name}, beside mlflow_otel for traces."
        )
    raise AttributeError(f"module 'mlflow_otel' has no attribute {name!r}")


def _join_at_import() -> None:
    """Sharing the application's provider means processing spans we did not start, from the very
    first one: build the pipeline now rather than at our first span."""
    from mlflow_otel._state import STATE

    if STATE.enabled and not STATE.settings().use_default_tracer_provider:
        _runtime.running()


_join_at_import()
