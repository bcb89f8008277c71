"""MLflow's ``MlflowClient``: the tracing calls, and the trace / experiment reads.

``start_trace / start_span / end_span / end_trace`` take explicit ids instead of the current context
(MLflow docs, "MLflow Tracing Client APIs"), so a span can be started in one callback and ended in
another, on any thread. These spans are not made current. Misuse (an unknown id, ending twice) logs
a warning and does nothing, where MLflow would raise into the application.

``search_traces / get_trace / delete_traces / set_trace_tag / delete_trace_tag /
get_experiment_by_name / get_experiment`` read the client's tracking server (``tracking_uri``, else
the one in force) over MLflow's REST API, or the local store with no server (``records/store.py``);
they raise ``MlflowException`` as MLflow's client does.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context

from mlflow_otel import _read as api
from mlflow_otel._log import warn_limited
from mlflow_otel._runtime import RUNTIME
from mlflow_otel._state import STATE
from mlflow_otel.destinations import MlflowExperimentLocation
from mlflow_otel.exceptions import MlflowException
from mlflow_otel.otlp.ids import parse_span_id, parse_trace_id
from mlflow_otel.records.model import Trace
from mlflow_otel.semconv import SOURCE_RUN
from mlflow_otel.spans.fluent import SpanExtras, start_live_span, trace_level_attributes
from mlflow_otel.spans.live import NO_OP_SPAN, LiveSpan, NoOpSpan
from mlflow_otel.spans.types import Link, SpanStatus, SpanStatusCode, SpanType

__all__ = ["MlflowClient", "PagedList"]

_Status = Union[SpanStatus, SpanStatusCode, str]


class PagedList(list):  # type: ignore[type-arg]
    """A page of results and the token of the next page (MLflow's ``PagedList``; None at the end)."""

    def __init__(self, items: list[Any], token: Optional[str]) -> None:
        super().__init__(items)
        self.token = token


class MlflowClient:
    """The tracing half of ``mlflow.MlflowClient``."""

    def __init__(
        self,
        tracking_uri: Optional[str] = None,
        registry_uri: Optional[str] = None,
        workspace_store_uri: Optional[str] = None,
    ) -> None:
        """``registry_uri`` and ``workspace_store_uri`` are accepted (models and workspaces are not
        part of tracing)."""
        self.tracking_uri = tracking_uri

    def start_trace(
        self,
        name: str,
        span_type: str = SpanType.UNKNOWN,
        inputs: Any = None,
        attributes: Optional[dict[str, Any]] = None,
        tags: Optional[dict[str, str]] = None,
        experiment_id: Optional[str] = None,
        start_time_ns: Optional[int] = None,
        run_id: Optional[str] = None,
        links: Optional[list[Link]] = None,
    ) -> Union[LiveSpan, NoOpSpan]:
        """Start a new trace (always a new one, whatever the current context) and return its root."""
        if not STATE.enabled:
            return NO_OP_SPAN
        try:
            metadata = {SOURCE_RUN: run_id} if run_id is not None else None
            destination = MlflowExperimentLocation(str(experiment_id)) if experiment_id is not None else None
            root = start_live_span(
                name,
                span_type,
                parent=Context(),
                attributes=attributes,
                inputs=inputs,
                start_time_ns=start_time_ns,
                destination=destination,
                extras=SpanExtras.of(links=links),
            )
            if tags or metadata:
                root.otel_span.set_attributes(trace_level_attributes(tags, metadata))
            return root
        except Exception as exc:
            warn_limited("client", "start_trace(%r) failed: %s", name, exc)
            return NO_OP_SPAN

    def start_span(
        self,
        name: str,
        trace_id: Optional[str] = None,
        parent_id: Optional[str] = None,
        span_type: str = SpanType.UNKNOWN,
        inputs: Any = None,
        attributes: Optional[dict[str, Any]] = None,
        start_time_ns: Optional[int] = None,
        request_id: Optional[str] = None,
        links: Optional[list[Link]] = None,
    ) -> Union[LiveSpan, NoOpSpan]:
        """Start a child of ``parent_id`` in trace ``trace_id`` (``request_id`` is MLflow 2's name)."""
        if not STATE.enabled:
            return NO_OP_SPAN
        trace_id = trace_id if trace_id is not None else request_id
        parent = self._find(trace_id, parent_id, "start_span", ended_ok=True)
        if parent is None:
            return NO_OP_SPAN
        try:
            return start_live_span(
                name,
                span_type,
                parent=otel_trace.set_span_in_context(parent.otel_span, Context()),
                attributes=attributes,
                inputs=inputs,
                start_time_ns=start_time_ns,
                extras=SpanExtras.of(links=links),
            )
        except Exception as exc:
            warn_limited("client", "start_span(%r) failed: %s", name, exc)
            return NO_OP_SPAN

    def end_span(
        self,
        trace_id: Optional[str] = None,
        span_id: Optional[str] = None,
        outputs: Any = None,
        attributes: Optional[dict[str, Any]] = None,
        status: _Status = "OK",
        end_time_ns: Optional[int] = None,
        request_id: Optional[str] = None,
    ) -> None:
        trace_id = trace_id if trace_id is not None else request_id
        span = self._find(trace_id, span_id, "end_span")
        if span is not None:
            span.end(outputs=outputs, attributes=attributes, status=status, end_time_ns=end_time_ns)

    def end_trace(
        self,
        trace_id: Optional[str] = None,
        outputs: Any = None,
        attributes: Optional[dict[str, Any]] = None,
        status: _Status = "OK",
        end_time_ns: Optional[int] = None,
        request_id: Optional[str] = None,
    ) -> None:
        """End the trace's root span; spans still open in it are ended first (MLflow would raise)."""
        trace_id = trace_id if trace_id is not None else request_id
        state = RUNTIME.registry.open_trace(parse_trace_id(trace_id))
        if state is None or state.root is None:
            warn_limited("client.end_trace", "end_trace: no open trace %r; ignored.", trace_id)
            return
        root = state.root
        still_open = RUNTIME.registry.open_members(state)
        if still_open:
            warn_limited(
                "client_open_spans",
                "end_trace(%r): %d span(s) were still open and are ended now.",
                trace_id,
                len(still_open),
            )
            for span in still_open:
                span.end(end_time_ns=end_time_ns)
        root.end(outputs=outputs, attributes=attributes, status=status, end_time_ns=end_time_ns)

    # --- reading traces and experiments ------------------------------------------------------------
    def _store(self) -> Any:
        return api.current_store(self.tracking_uri)

    def search_traces(
        self,
        experiment_ids: Optional[list[str]] = None,
        filter_string: Optional[str] = None,
        max_results: int = api.SEARCH_TRACES_DEFAULT_MAX_RESULTS,
        order_by: Optional[list[str]] = None,
        page_token: Optional[str] = None,
        run_id: Optional[str] = None,
        include_spans: bool = True,
        model_id: Optional[str] = None,
        locations: Optional[list[str]] = None,
        flush: bool = False,
    ) -> PagedList:
        """One page of at most ``max_results`` traces; ``.token`` continues the search."""
        ids = locations if locations is not None else experiment_ids
        if ids is not None and not isinstance(ids, (list, tuple)):
            raise MlflowException.invalid_parameter_value("locations must be a list of experiment IDs.")
        filter_string = api.compose_filter(filter_string, run_id, model_id)
        api.settle()  # traces that ended before this call are in the store (``flush`` always on)
        store = self._store()
        traces, token = api.collect_traces(
            store, list(ids) if ids else None, filter_string, max_results, order_by, include_spans, page_token
        )
        return PagedList(traces, token)

    def get_trace(self, trace_id: str, display: bool = True, flush: bool = False) -> Trace:
        """The trace ``trace_id``; ``MlflowException`` (``RESOURCE_DOES_NOT_EXIST``) if the store has
        none. ``display`` is accepted (a ``Trace`` renders itself in notebooks)."""
        store = self._store()
        trace = api.fetch_trace(store, trace_id, flush)
        if trace is None:
            raise MlflowException(
                f"Trace with ID '{trace_id}' not found in {store.describe()}.",
                error_code="RESOURCE_DOES_NOT_EXIST",
            )
        return trace

    def delete_traces(
        self,
        experiment_id: str,
        max_timestamp_millis: Optional[int] = None,
        max_traces: Optional[int] = None,
        trace_ids: Optional[list[str]] = None,
    ) -> int:
        """Delete traces by id, or those at or before ``max_timestamp_millis`` (at most
        ``max_traces``, oldest first); returns how many were deleted."""
        return int(self._store().delete_traces(experiment_id, max_timestamp_millis, max_traces, trace_ids))

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        """Tag a trace (open in this process: on its root span; finished: in the store)."""
        if self.tracking_uri is None:
            api.set_trace_tag(trace_id, key, value)
        else:
            self._store().set_trace_tag(trace_id, str(key), str(value))

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        if self.tracking_uri is None:
            api.delete_trace_tag(trace_id, key)
        else:
            self._store().delete_trace_tag(trace_id, str(key))

    def get_experiment_by_name(self, name: str) -> Optional[Any]:
        """The experiment ``name`` of the tracking server, or None."""
        return self._server("get_experiment_by_name").get_experiment_by_name(name)

    def get_experiment(self, experiment_id: str) -> Any:
        found = self._server("get_experiment").get_experiment(str(experiment_id))
        if found is None:
            raise MlflowException(
                f"No Experiment with id={experiment_id} exists", error_code="RESOURCE_DOES_NOT_EXIST"
            )
        return found

    def _server(self, what: str) -> Any:
        from mlflow_otel._mlflow_server import client_for, is_http_uri

        uri = self.tracking_uri or STATE.settings().tracking_uri
        if not is_http_uri(uri):
            raise MlflowException(
                f"{what} needs an MLflow tracking server: set_tracking_uri('http://...') or "
                "MLFLOW_TRACKING_URI (the local trace store has no experiments).",
                error_code="INVALID_STATE",
            )
        return client_for(uri)  # type: ignore[arg-type]

    @staticmethod
    def _find(
        trace_id: Optional[str], span_id: Optional[str], what: str, ended_ok: bool = False
    ) -> Optional[LiveSpan]:
        sid, tid = parse_span_id(span_id), parse_trace_id(trace_id)
        span = RUNTIME.registry.trace_member(tid, sid) if ended_ok else RUNTIME.registry.live_span(sid)
        if span is None or (tid is not None and span.otel_span.get_span_context().trace_id != tid):
            warn_limited(
                f"client.{what}", "%s: no open span %r in trace %r; ignored.", what, span_id, trace_id
            )
            return None
        return span
