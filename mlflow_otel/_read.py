"""MLflow's read and feedback API: ``get_trace``, ``search_traces``, ``log_feedback``,
``log_expectation``, ``log_assessment``, ``get_assessment``, ``override_feedback``,
``delete_assessment`` (MLflow 3.18's signatures), answered by the store ``records/store.py`` picks
(the read facade: a floor above the write side, whose routes say where the traces went):
an MLflow server over REST, or the local store beside the OTLP/JSON file.

Reads are user calls and raise ``MlflowException`` with a clear message (server down, 401/403, an
unknown experiment, a filter the store rejects); ``get_trace`` of a trace that is not there returns
None with a warning, as MLflow's does. Export is asynchronous here, so a read first lets the traces
that ended before it leave the pipeline (within ``SETTLE_TIMEOUT_S``; about 2 ms when nothing is
pending): ``search_traces`` always, ``get_trace`` when the trace is not in the store yet. MLflow's
read-right-after-write pattern (``get_trace(get_last_active_trace_id())``) then works without an
explicit flush; reading never slows export (it only hurries it).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

from mlflow_otel import _runtime
from mlflow_otel._log import logger
from mlflow_otel._mlflow_server import is_http_uri
from mlflow_otel._runtime import RUNTIME
from mlflow_otel._serialize import loads_or_raw
from mlflow_otel._state import STATE
from mlflow_otel.exceptions import MlflowException
from mlflow_otel.otlp.ids import mlflow_trace_id, parse_trace_id
from mlflow_otel.pipeline.route import default_routes
from mlflow_otel.records.assessment import (
    DEFAULT_FEEDBACK_NAME,
    Assessment,
    AssessmentError,
    AssessmentSource,
    Expectation,
    Feedback,
)
from mlflow_otel.records.model import Trace
from mlflow_otel.records.store import store_for
from mlflow_otel.spans import fluent

__all__ = [
    "delete_assessment",
    "delete_trace_tag",
    "get_assessment",
    "get_trace",
    "is_tracking_uri_set",
    "log_assessment",
    "log_expectation",
    "log_feedback",
    "override_feedback",
    "search_traces",
    "set_trace_tag",
    "update_assessment",
]

#: MLflow's page size for ``search_traces`` (``SEARCH_TRACES_DEFAULT_MAX_RESULTS``).
SEARCH_TRACES_DEFAULT_MAX_RESULTS = 100
#: The longest a read waits for traces still in the export pipeline.
SETTLE_TIMEOUT_S = 10.0
#: MLflow's DataFrame columns (``Trace.pandas_dataframe_columns()``).
DATAFRAME_COLUMNS = (
    "trace_id",
    "trace",
    "client_request_id",
    "state",
    "request_time",
    "execution_duration",
    "request",
    "response",
    "trace_metadata",
    "tags",
    "spans",
    "assessments",
)


def current_store(tracking_uri: Optional[str] = None) -> Any:
    """The store for the settings and destinations in force (``records/store.py``). ``STATE``
    replaces its settings object whenever they change, so identity tells when to build anew."""
    settings = STATE.settings()
    key = (settings, tracking_uri, STATE.destinations, STATE.extra_destinations)
    last = RUNTIME.read_store  # forgotten in a forked child: it opens its own connections
    if last is not None and all(a is b for a, b in zip(last[0], key)):
        return last[1]
    uri = tracking_uri or settings.tracking_uri
    routes = (
        []
        if uri and is_http_uri(uri)
        else default_routes(settings, STATE.destinations, STATE.extra_destinations)
    )
    store = store_for(settings, tracking_uri, routes, RUNTIME.pending, RUNTIME.counters)
    RUNTIME.keep_read_store(key, store)
    return store


def settle(timeout_s: float = SETTLE_TIMEOUT_S) -> bool:
    """Wait until every finished trace has left the export pipeline (or the deadline)."""
    return _runtime.flush(timeout_s)


def fetch_trace(store: Any, trace_id: str, flush: bool = False) -> Optional[Trace]:
    """``store.get_trace``, waiting for the pipeline once when the trace is not there yet."""
    if flush:
        settle()
    trace = store.get_trace(trace_id)
    if trace is None and not flush:
        settle()
        trace = store.get_trace(trace_id)
    return trace


def _takes_request_id(func: Callable[..., Any]) -> Callable[..., Any]:
    """Accept MLflow 2's ``request_id=`` for ``trace_id=`` with a ``FutureWarning``, as MLflow's
    deprecated-parameter decorator does; the visible signature stays the function's own."""

    @functools.wraps(func)
    def accepting(*args: Any, **kwargs: Any) -> Any:
        if "request_id" in kwargs:
            if "trace_id" in kwargs:
                raise ValueError("Give either 'trace_id' or the deprecated 'request_id', not both.")
            warnings.warn(
                "Parameter 'request_id' is deprecated. Please use 'trace_id' instead.",
                FutureWarning,
                stacklevel=2,
            )
            kwargs["trace_id"] = kwargs.pop("request_id")
        return func(*args, **kwargs)

    return accepting


@_takes_request_id
def get_trace(trace_id: str, silent: bool = False, flush: bool = False) -> Optional[Trace]:
    """The trace ``trace_id`` (``tr-<32 hex>``) from the store, or None (with a warning unless
    ``silent``) when it holds no such trace."""
    trace = fetch_trace(current_store(), trace_id, flush)
    if trace is None and not silent:
        logger.warning("Trace %r was not found.", trace_id)
    return trace


def _locations(
    experiment_ids: Optional[Sequence[str]], locations: Optional[Sequence[str]]
) -> Optional[list[str]]:
    if experiment_ids is not None:
        warnings.warn(
            "The `experiment_ids` parameter is deprecated, use `locations` instead.",
            FutureWarning,
            stacklevel=3,
        )
        if locations is None:
            locations = experiment_ids
    if locations is None:
        return None
    if not isinstance(locations, (list, tuple)):
        raise MlflowException.invalid_parameter_value("locations must be a list of experiment IDs.")
    return [str(x) for x in locations]


def collect_traces(
    store: Any,
    locations: Optional[list[str]],
    filter_string: Optional[str],
    max_results: Optional[int],
    order_by: Optional[Sequence[str]],
    include_spans: bool,
    page_token: Optional[str] = None,
) -> tuple[list[Trace], Optional[str]]:
    """Page through the store until ``max_results`` traces (all of them when None)."""
    traces: list[Trace] = []
    token = page_token
    while max_results is None or len(traces) < max_results:
        want = None if max_results is None else max_results - len(traces)
        page, token = store.search_traces(locations, filter_string, want, order_by, token, include_spans)
        traces.extend(page)
        if not token:
            break
    return traces, token


def search_traces(
    experiment_ids: Optional[list[str]] = None,
    filter_string: Optional[str] = None,
    max_results: Optional[int] = None,
    order_by: Optional[list[str]] = None,
    extract_fields: Optional[list[str]] = None,
    run_id: Optional[str] = None,
    return_type: Optional[str] = None,
    model_id: Optional[str] = None,
    sql_warehouse_id: Optional[str] = None,
    include_spans: bool = True,
    locations: Optional[list[str]] = None,
    flush: bool = False,
) -> Any:
    """Traces matching MLflow's filter grammar, newest first unless ``order_by`` says otherwise: a
    pandas DataFrame (MLflow's columns) when pandas is installed and ``return_type`` is not
    ``"list"``, else a list of ``Trace``. ``max_results=None`` returns every match."""
    if return_type is None:
        try:
            import pandas  # noqa: F401

            return_type = "pandas"
        except ImportError:
            return_type = "list"
    if return_type not in ("pandas", "list"):
        raise MlflowException.invalid_parameter_value(
            f"Invalid return type: {return_type!r}. Return type must be either 'pandas' or 'list'."
        )
    if extract_fields is not None:
        warnings.warn("The `extract_fields` parameter is deprecated.", FutureWarning, stacklevel=2)
        if return_type == "list":
            raise MlflowException.invalid_parameter_value(
                "The `extract_fields` parameter is only supported when return type is set to 'pandas'."
            )
    if sql_warehouse_id is not None:
        warnings.warn(
            "The `sql_warehouse_id` parameter is deprecated and ignored here.", FutureWarning, stacklevel=2
        )
    ids = _locations(experiment_ids, locations)
    if run_id and filter_string and "mlflow.sourceRun" in filter_string:
        raise MlflowException.invalid_parameter_value(
            "You cannot filter by run_id when it is already part of the filter string. Please remove the "
            "mlflow.sourceRun filter from the filter string and try again."
        )
    filter_string = compose_filter(filter_string, run_id, model_id)
    store = current_store()
    settle()  # traces that ended before this call are in the store (``flush`` is always on here)
    traces, _ = collect_traces(store, ids, filter_string, max_results, order_by, include_spans)
    if return_type == "list":
        return traces
    return traces_to_dataframe(traces, extract_fields)


def compose_filter(
    filter_string: Optional[str], run_id: Optional[str], model_id: Optional[str]
) -> Optional[str]:
    """``search_traces``' ``model_id`` and ``run_id`` as clauses of the filter (MLflow's rules:
    ``model_id`` replaces a filter it may not be given with; ``run_id`` is ANDed)."""
    if model_id is not None:
        if filter_string:
            raise MlflowException.invalid_parameter_value(
                "Cannot specify both `model_id` or `filter_string` in the search_traces call."
            )
        filter_string = f"request_metadata.`mlflow.modelId` = '{model_id}'"
    if run_id:
        run_filter = f"attribute.run_id = '{run_id}'"
        filter_string = f"{filter_string} AND {run_filter}" if filter_string else run_filter
    return filter_string


# --- DataFrame (MLflow's ``traces_to_df``) ---------------------------------------------------------
def _parse_field(field: str) -> tuple[str, str, Optional[str]]:
    """``span_name.inputs`` / ``span_name.outputs.key`` (span name in backticks when it has dots)."""
    if field.startswith("`"):
        end = field.find("`", 1)
        if end < 0:
            raise MlflowException.invalid_parameter_value(f"Invalid field {field!r}: unclosed backtick.")
        span_name, rest = field[1:end], field[end + 1 :]
        if not rest.startswith("."):
            raise MlflowException.invalid_parameter_value(
                f"Invalid field {field!r}: expected '.' after the span name."
            )
        rest = rest[1:]
    else:
        span_name, _, rest = field.partition(".")
    kind, _, name = rest.partition(".")
    if kind not in ("inputs", "outputs"):
        raise MlflowException.invalid_parameter_value(
            f"Invalid field type {kind!r} in {field!r}: expected 'inputs' or 'outputs'."
        )
    if name.startswith("`") and name.endswith("`"):
        name = name[1:-1]
    return span_name, kind, name or None


def traces_to_dataframe(traces: Sequence[Trace], extract_fields: Optional[Sequence[str]] = None) -> Any:
    import pandas as pd

    fields = [(f, _parse_field(f)) for f in extract_fields or ()]
    rows = []
    for trace in traces:
        info, data = trace.info, trace.data
        row: dict[str, Any] = {
            "trace_id": info.trace_id,
            "trace": trace.to_json(),
            "client_request_id": info.client_request_id,
            "state": info.state,
            "request_time": info.request_time,
            "execution_duration": info.execution_duration,
            "request": loads_or_raw(data.request),
            "response": loads_or_raw(data.response),
            "trace_metadata": info.trace_metadata,
            "tags": info.tags,
            "spans": [span.to_dict() for span in data.spans],
            "assessments": [
                a.to_dictionary() if hasattr(a, "to_dictionary") else a for a in info.assessments
            ],
        }
        for column, (span_name, kind, name) in fields:
            row[column] = None
            for span in data.spans:
                if span.name == span_name:
                    value = getattr(span, kind)
                    if name is None:
                        row[column] = value
                    elif isinstance(value, dict) and name in value:
                        row[column] = value[name]
        rows.append(row)
    return pd.DataFrame.from_records(rows, columns=[*DATAFRAME_COLUMNS, *(f for f, _ in fields)])


# --- assessments -----------------------------------------------------------------------------------
def log_assessment(trace_id: Optional[str], assessment: Assessment) -> Assessment:
    """Attach ``assessment`` (a ``Feedback`` or ``Expectation``) to the trace ``trace_id``.

    As MLflow: a trace still open in this process gets it with its record (``records/pending.py``);
    ``trace_id=None`` (``get_active_trace_id()`` with tracing disabled or the trace sampled out)
    returns the assessment without storing it, so a traced function's feedback call never fails on
    that. A finished trace still in the export pipeline is waited for once."""

    if trace_id is None:
        logger.debug("log_assessment(trace_id=None): no trace (tracing disabled?); not stored.")
        return assessment
    state = RUNTIME.registry.open_trace(parse_trace_id(trace_id))
    if state is not None and not state.closed:
        return RUNTIME.pending.hold(mlflow_trace_id(state.trace_id), assessment)
    store = current_store()
    try:
        return store.log_assessment(trace_id, assessment)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    settle()
    return store.log_assessment(trace_id, assessment)


@_takes_request_id
def set_trace_tag(trace_id: str, key: str, value: Any) -> None:
    """Tag a trace: one still open in this process carries the tag on its root span; a finished one
    is tagged in the store (MLflow's ``set_trace_tag``)."""

    if RUNTIME.registry.open_trace(parse_trace_id(trace_id)) is not None:
        fluent.set_trace_tag(trace_id, key, value)
        return
    store = current_store()
    try:
        store.set_trace_tag(trace_id, str(key), str(value))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        settle()
        store.set_trace_tag(trace_id, str(key), str(value))


@_takes_request_id
def delete_trace_tag(trace_id: str, key: str) -> None:
    """Remove a tag from a trace (open in this process, or finished in the store)."""

    if RUNTIME.registry.open_trace(parse_trace_id(trace_id)) is not None:
        fluent.delete_trace_tag(trace_id, key)
        return
    current_store().delete_trace_tag(trace_id, str(key))


def log_feedback(
    *,
    trace_id: str,
    name: str = DEFAULT_FEEDBACK_NAME,
    value: Any = None,
    source: Optional[AssessmentSource] = None,
    error: Union[Exception, AssessmentError, None] = None,
    rationale: Optional[str] = None,
    metadata: Optional[dict[str, Any]] = None,
    span_id: Optional[str] = None,
) -> Assessment:
    """Log feedback (a human's verdict, a judge's score) on a trace; keyword arguments only."""
    feedback = Feedback(
        name=name,
        source=source,
        value=value,
        error=error,
        rationale=rationale,
        metadata=metadata,
        span_id=span_id,
    )
    return log_assessment(trace_id, feedback)


def log_expectation(
    *,
    trace_id: str,
    name: str,
    value: Any,
    source: Optional[AssessmentSource] = None,
    metadata: Optional[dict[str, Any]] = None,
    span_id: Optional[str] = None,
) -> Assessment:
    """Log the expected output (ground truth) of a trace; keyword arguments only."""
    expectation = Expectation(name=name, source=source, value=value, metadata=metadata, span_id=span_id)
    return log_assessment(trace_id, expectation)


def get_assessment(trace_id: str, assessment_id: str) -> Assessment:
    return current_store().get_assessment(trace_id, assessment_id)


def delete_assessment(trace_id: str, assessment_id: str) -> None:
    current_store().delete_assessment(trace_id, assessment_id)


def update_assessment(trace_id: str, assessment_id: str, assessment: Assessment) -> Assessment:
    """Change an assessment's name, value, rationale or metadata to those of ``assessment``."""
    return current_store().update_assessment(trace_id, assessment_id, assessment)


def is_tracking_uri_set() -> bool:
    """True when a tracking URI was set (``set_tracking_uri`` or ``MLFLOW_TRACKING_URI``)."""

    return bool(STATE.settings().tracking_uri)


def override_feedback(
    *,
    trace_id: str,
    assessment_id: str,
    value: Any,
    rationale: Optional[str] = None,
    source: Optional[AssessmentSource] = None,
    metadata: Optional[dict[str, Any]] = None,
) -> Assessment:
    """Log a new feedback that replaces ``assessment_id`` (the old one stays, marked not valid)."""
    store = current_store()
    old = store.get_assessment(trace_id, assessment_id)
    if not isinstance(old, Feedback):
        raise MlflowException.invalid_parameter_value(
            f"The assessment with ID {assessment_id} is not a feedback assessment."
        )
    new = Feedback(
        name=old.name,
        value=value,
        rationale=rationale,
        source=source,
        metadata=metadata,
        span_id=old.span_id,
        overrides=old.assessment_id,
    )
    return store.log_assessment(trace_id, new)
