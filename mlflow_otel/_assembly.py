"""Trace assembly: the pipeline stage that turns finished spans back into traces.

MLflow exports a trace when its root span ends, and renames same-named spans of one trace to
``name_1``, ``name_2``, ... in start order (``deduplicate_span_names_in_place`` in MLflow's
``tracing/utils``). Doing the same needs the whole trace, so this processor holds the finished spans
of each trace until its *local root* (the first of our spans in that trace in this process) ends,
then hands them downstream in one go. Spans that end after their local root (a background thread
outliving its request) are forwarded as they end; spans we did not build (other instrumentations
sharing the provider) pass straight through.

The open-trace table also serves the trace timeout (``MLFLOW_TRACE_TIMEOUT_SECONDS``): a watcher
thread ends traces open too long with status ERROR so they are exported rather than lost.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Optional, Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan

from mlflow_otel._log import logger, warn_limited
from mlflow_otel._span import LiveSpan
from mlflow_otel._telemetry import COUNTERS


class TraceState:
    """What we know of one open trace: its local root, name counts, and spans finished so far."""

    __slots__ = (
        "closed",
        "destinations",
        "finished",
        "lock",
        "members",
        "names",
        "request_id_json",
        "root",
        "start_ns",
        "trace_id",
    )

    def __init__(self, trace_id: int) -> None:
        self.trace_id = trace_id
        self.request_id_json = '"tr-' + format(trace_id, "032x") + '"'
        self.root: Optional[LiveSpan] = None
        self.names: dict[str, int] = {}
        self.finished: list[tuple[ReadableSpan, LiveSpan]] = []
        self.start_ns = time.time_ns()
        self.lock = threading.Lock()
        self.closed = False  # set once the local root has ended and the trace went downstream
        #: Every span of ours in the trace, ended or not: the client API may parent on an ended one.
        self.members: dict[int, LiveSpan] = {}
        #: Where this trace goes; None means the pipeline's default destinations.
        self.destinations: Optional[tuple[Any, ...]] = None

    def register(self, name: str) -> int:
        """Count one more span called ``name``; its ordinal is its suffix if the name repeats."""
        with self.lock:
            ordinal = self.names.get(name, 0) + 1
            self.names[name] = ordinal
            return ordinal


#: Open traces by OTel trace id, and our open spans by OTel span id.
_traces: dict[int, TraceState] = {}
_live: dict[int, LiveSpan] = {}
#: Trace id of the latest trace whose local root ended (``get_last_active_trace_id``).
_last_trace_id: Optional[int] = None


def join_trace(trace_id: int) -> TraceState:
    """The state of ``trace_id``, created if this is the first of our spans in it here."""
    state = _traces.get(trace_id)
    if state is None:
        state = _traces.setdefault(trace_id, TraceState(trace_id))
    return state


def track(live: LiveSpan, span_id: int, state: TraceState) -> None:
    """Register a started span: the first one of a trace becomes its local root."""
    if state.root is None:
        with state.lock:
            if state.root is None:
                state.root = live
    _live[span_id] = live
    state.members[span_id] = live
    COUNTERS.tick("spans_started")


def last_trace_id() -> Optional[int]:
    return _last_trace_id


def open_members(state: TraceState) -> list[LiveSpan]:
    """The trace's spans still open, other than its root, innermost (latest started) first: the
    order in which to end them so every parent ends after its children."""
    members = [live for live in list(_live.values()) if live._state is state and live is not state.root]
    members.sort(key=lambda live: live.start_time_ns or 0, reverse=True)
    return members


def live_span(span_id: Optional[int]) -> Optional[LiveSpan]:
    return _live.get(span_id) if span_id is not None else None


def trace_member(trace_id: Optional[int], span_id: Optional[int]) -> Optional[LiveSpan]:
    """A span of an open trace, even if that span has ended already."""
    state = open_trace(trace_id)
    if state is None or span_id is None:
        return live_span(span_id)
    return state.members.get(span_id)


def open_trace(trace_id: Optional[int]) -> Optional[TraceState]:
    return _traces.get(trace_id) if trace_id is not None else None


def _dedup_name(readable: ReadableSpan, live: LiveSpan, state: TraceState) -> None:
    if state.names.get(live._base_name, 1) > 1 and readable.name == live._base_name:
        readable._name = f"{live._base_name}_{live._ordinal}"


class Router(Protocol):
    def route(self, span: ReadableSpan, destinations: Optional[tuple[Any, ...]]) -> None: ...


class TraceAssembler(SpanProcessor):
    """Holds each trace's spans until its local root ends; then routes them to their destinations."""

    def __init__(self, router: Router) -> None:
        self._router = router
        #: False once the pipeline is replaced or shut down (a joined global provider keeps calling us).
        self.active = True

    def on_start(self, span: SdkSpan, parent_context: Optional[Context] = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if not self.active:
            return
        try:
            ctx = span.get_span_context()
            live = _live.pop(ctx.span_id, None)
            if live is None:  # not ours: another instrumentation's span
                self._router.route(span, None)
                return
            COUNTERS.tick("spans_ended")
            state = live._state
            if state is None:
                self._router.route(span, None)
                return
            if state.root is live:
                global _last_trace_id
                _last_trace_id = state.trace_id
                with state.lock:
                    state.closed = True
                    finished = state.finished
                    state.finished = []
                if _traces.get(state.trace_id) is state:
                    _traces.pop(state.trace_id, None)
                finished.append((span, live))
                for readable, member in finished:
                    _dedup_name(readable, member, state)
                    self._router.route(readable, state.destinations)
                return
            with state.lock:
                if not state.closed:
                    state.finished.append((span, live))
                    return
            # Ended after its local root: forward it on its own.
            _dedup_name(span, live, state)
            self._router.route(span, state.destinations)
        except Exception as exc:  # never into user code
            COUNTERS.add("dropped.assembly_error")
            warn_limited("assembly", "Dropped a span while assembling its trace: %s", exc)

    def shutdown(self) -> None:
        self.active = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def end_expired_traces(timeout_s: float, now_ns: Optional[int] = None) -> int:
    """End every trace open longer than ``timeout_s`` with status ERROR; returns how many.

    Mirrors MLflow's ``MLFLOW_TRACE_TIMEOUT_SECONDS``: open spans are ended innermost first (latest
    started first), the root last, so the trace is exported whole while the user's code runs on.
    """
    from mlflow_otel.entities import SpanStatus, SpanStatusCode

    now_ns = time.time_ns() if now_ns is None else now_ns
    limit_ns = int(timeout_s * 1e9)
    expired = [s for s in list(_traces.values()) if now_ns - s.start_ns > limit_ns]
    for state in expired:
        status = SpanStatus(SpanStatusCode.ERROR, f"Trace timed out after {timeout_s:g} seconds")
        for live in open_members(state):
            live.end(status=status)
        if state.root is not None:
            state.root.end(status=status)
        COUNTERS.add("traces_timed_out")
        logger.warning(
            "Trace tr-%032x was open for more than %g s (MLFLOW_TRACE_TIMEOUT_SECONDS); "
            "ended it with status ERROR and exported it.",
            state.trace_id,
            timeout_s,
        )
    return len(expired)


class TimeoutWatcher:
    """A daemon thread that calls :func:`end_expired_traces` every ``interval_s`` seconds."""

    def __init__(self, timeout_s: float, interval_s: float) -> None:
        self._timeout_s = timeout_s
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlflow-otel-trace-timeout", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                end_expired_traces(self._timeout_s)
            except Exception as exc:
                warn_limited("timeout", "Trace timeout check failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()


def clear() -> None:
    """Forget every open trace (tests and fork handling)."""
    _traces.clear()
    _live.clear()
