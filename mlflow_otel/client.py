"""MLflow's low-level client API for spans that begin and end in different places.

``MlflowClient().start_trace / start_span / end_span / end_trace`` take explicit ids instead of the
current context (MLflow docs, "MLflow Tracing Client APIs"), so a span can be started in one
callback and ended in another, on any thread. These spans are not made current. Misuse (an unknown
id, ending twice) logs a warning and does nothing, where MLflow would raise into the application.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context

from mlflow_otel._log import warn_limited
from mlflow_otel._state import STATE
from mlflow_otel.destinations import MlflowExperimentLocation
from mlflow_otel.semconv import SOURCE_RUN
from mlflow_otel.spans import registry
from mlflow_otel.spans.fluent import SpanExtras, start_live_span, trace_level_attributes
from mlflow_otel.spans.live import NO_OP_SPAN, LiveSpan, NoOpSpan, parse_span_id, parse_trace_id
from mlflow_otel.spans.types import Link, SpanStatus, SpanStatusCode, SpanType

__all__ = ["MlflowClient"]

_Status = Union[SpanStatus, SpanStatusCode, str]


class MlflowClient:
    """The tracing half of ``mlflow.MlflowClient``."""

    def __init__(self, tracking_uri: Optional[str] = None, registry_uri: Optional[str] = None) -> None:
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
        state = registry.open_trace(parse_trace_id(trace_id))
        if state is None or state.root is None:
            warn_limited("client.end_trace", "end_trace: no open trace %r; ignored.", trace_id)
            return
        root = state.root
        still_open = registry.open_members(state)
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

    @staticmethod
    def _find(
        trace_id: Optional[str], span_id: Optional[str], what: str, ended_ok: bool = False
    ) -> Optional[LiveSpan]:
        sid, tid = parse_span_id(span_id), parse_trace_id(trace_id)
        span = registry.trace_member(tid, sid) if ended_ok else registry.live_span(sid)
        if span is None or (tid is not None and span.otel_span.get_span_context().trace_id != tid):
            warn_limited(
                f"client.{what}", "%s: no open span %r in trace %r; ignored.", what, span_id, trace_id
            )
            return None
        return span
