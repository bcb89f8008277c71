"""The read side's one interface, two stores: where ``get_trace`` / ``search_traces`` /
``delete_traces`` (and the feedback calls) read and write finished traces.

* an MLflow tracking server (``set_tracking_uri`` / ``MLFLOW_TRACKING_URI`` with http(s)), over
  MLflow's REST API, with no ``mlflow`` import (``records/rest.py``), as MLflow reads its tracking
  store;
* otherwise the embedded local store beside the OTLP/JSON file the traces go to
  (``records/local.py``);
* otherwise (traces go only to an OTLP endpoint or an exporter of the application's) there is
  nothing to read here: every call raises an ``MlflowException`` saying where the traces went.

Read APIs are user calls: they raise ``MlflowException`` with a clear message (server down,
401/403, unknown experiment, a filter the store does not support); they never slow export.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn, Optional, Protocol

from mlflow_otel._mlflow_server import is_http_uri
from mlflow_otel._settings import Settings
from mlflow_otel._telemetry import Counters
from mlflow_otel.exceptions import MlflowException
from mlflow_otel.records.model import Trace
from mlflow_otel.records.pending import PendingAssessments


class TraceStore(Protocol):
    """What both stores implement (MLflow's names and semantics)."""

    def get_trace(self, trace_id: str) -> Optional[Trace]:
        """The trace, or None when the store does not hold it."""

    def search_traces(
        self,
        experiment_ids: Optional[Sequence[str]],
        filter_string: Optional[str],
        max_results: Optional[int],
        order_by: Optional[Sequence[str]],
        page_token: Optional[str] = None,
        include_spans: bool = True,
    ) -> tuple[list[Trace], Optional[str]]:
        """One page of matching traces and the token of the next page (None at the end)."""

    def delete_traces(
        self,
        experiment_id: Optional[str],
        max_timestamp_millis: Optional[int] = None,
        max_traces: Optional[int] = None,
        trace_ids: Optional[Sequence[str]] = None,
    ) -> int:
        """Delete traces; returns how many were deleted."""

    def log_assessment(self, trace_id: str, assessment: Any) -> Any:
        """Attach a ``Feedback`` / ``Expectation`` to a trace; returns it as stored (with its id)."""

    def get_assessment(self, trace_id: str, assessment_id: str) -> Any: ...

    def delete_assessment(self, trace_id: str, assessment_id: str) -> None: ...

    def update_assessment(self, trace_id: str, assessment_id: str, assessment: Any) -> Any: ...

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None: ...

    def delete_trace_tag(self, trace_id: str, key: str) -> None: ...

    def describe(self) -> str:
        """Where the traces are, for messages."""


class NoStore:
    """Traces go where this process cannot read them back (an OTLP endpoint, an exporter of the
    application's): every read says where they went."""

    def __init__(self, destinations: Sequence[str]) -> None:
        self.destinations = list(destinations)

    def describe(self) -> str:
        return "no trace store"

    def _fail(self, *args: Any, **kwargs: Any) -> NoReturn:
        where = "; ".join(self.destinations) or "nowhere"
        raise MlflowException(
            f"Traces from this process go to {where}, which the read API cannot query: read them there "
            "(an OTLP backend's UI or API, e.g. Jaeger's /api/traces). get_trace / search_traces read an "
            "MLflow server (set_tracking_uri, with MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT=true to send there "
            "too) or the local store of the default OTLP/JSON file (no OTLP endpoint configured).",
            error_code="INVALID_STATE",
        )

    get_trace = search_traces = delete_traces = log_assessment = get_assessment = _fail
    delete_assessment = update_assessment = set_trace_tag = delete_trace_tag = _fail


def store_for(
    settings: Settings,
    tracking_uri: Optional[str],
    routes: Sequence[Any],
    pending: Optional[PendingAssessments] = None,
    counters: Optional[Counters] = None,
) -> Any:
    """The store the read API uses: an http(s) tracking URI's server (given, else the settings'),
    else the local store of the OTLP/JSON file the traces go to, else :class:`NoStore`. ``routes``:
    the write side's (``pipeline/route.py``'s ``Route``: its ``reads`` and ``description``), which
    the read facade (``_read.py``, a floor above both) looks up."""
    uri = tracking_uri or settings.tracking_uri
    if uri and is_http_uri(uri):
        from mlflow_otel.records.rest import RestStore

        return RestStore(uri, settings, settings.experiment_id, settings.experiment_name)
    if tracking_uri:
        raise MlflowException.invalid_parameter_value(
            f"Tracking URI {tracking_uri!r} is not an http(s) MLflow server; mlflow-otel reads MLflow "
            "servers over REST, or its own local store (no tracking URI)."
        )
    for route in routes:
        if route.reads is not None and route.reads[0] == "file":
            from mlflow_otel.records.local import LocalStore, store_path

            path = str(route.reads[1])
            return LocalStore(store_path(path), path, pending, counters)
    return NoStore([route.description for route in routes])
