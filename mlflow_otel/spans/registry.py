"""The registry of open traces and live spans, kept on the application's thread.

The span builders register each span they start (the first of a trace in this process is its
*local root*); the assembly stage (``pipeline/assembly.py``) reads the registry when spans end,
and the fluent API answers ``get_current_active_span`` / ``get_last_active_trace_id`` from it.
Plain dicts keyed by OTel ids: lookups and inserts are atomic under the GIL, so the request path
takes no lock.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

from opentelemetry.sdk.trace import ReadableSpan

from mlflow_otel._telemetry import Counters
from mlflow_otel.otlp.ids import trace_hex
from mlflow_otel.spans.live import LiveSpan


class OpenTrace:
    """What we know of one open trace: its local root and the spans finished so far. Span names are
    kept as given, same-named spans included (MLflow 3.18 stores them so)."""

    __slots__ = (
        "closed",
        "destinations",
        "finished",
        "lock",
        "members",
        "request_id_json",
        "root",
        "start_ns",
        "trace_id",
    )

    def __init__(self, trace_id: int) -> None:
        self.trace_id = trace_id
        self.request_id_json = '"tr-' + trace_hex(trace_id) + '"'
        self.root: Optional[LiveSpan] = None
        #: Spans ended so far, with their live span (None: another instrumentation's span).
        self.finished: list[tuple[ReadableSpan, Optional[LiveSpan]]] = []
        self.start_ns = time.time_ns()
        self.lock = threading.Lock()
        self.closed = False  # set once the local root has ended and the trace went downstream
        #: Every span of ours in the trace, ended or not: the client API may parent on an ended one.
        self.members: dict[int, LiveSpan] = {}
        #: Where this trace goes; None means the pipeline's default destinations.
        self.destinations: Optional[tuple[Any, ...]] = None


class Registry:
    """Open traces by OTel trace id and our open spans by OTel span id: one per process, owned by
    the runtime (``_runtime.Runtime``), which hands it to ``spans/`` through the tracer slot and to
    the pipeline when it builds one. It outlives every pipeline: a trace open while the pipeline is
    replaced ends into the new one."""

    #: Traces the timeout ended while their code ran on: the newest are kept.
    TIMED_OUT_KEPT = 1024

    def __init__(self, counters: Counters) -> None:
        #: Where this registry's spans are counted (``spans_started``), and the stages that end them.
        self.counters = counters
        self._traces: dict[int, OpenTrace] = {}
        self._live: dict[int, LiveSpan] = {}
        #: Trace id of the latest trace whose local root ended (``get_last_active_trace_id``): one
        #: for the process, and one per thread (``thread_local=True``).
        self._last_trace_id: Optional[int] = None
        self._last_in_thread = threading.local()
        self._timed_out: dict[int, None] = {}

    def join_trace(self, trace_id: int) -> OpenTrace:
        """The state of ``trace_id``, created if this is the first of our spans in it here."""
        state = self._traces.get(trace_id)
        if state is None:
            state = self._traces.setdefault(trace_id, OpenTrace(trace_id))
        return state

    def track(self, live: LiveSpan, span_id: int, state: OpenTrace) -> None:
        """Register a started span: the first one of a trace becomes its local root."""
        if state.root is None:
            with state.lock:
                if state.root is None:
                    state.root = live
        self._live[span_id] = live
        state.members[span_id] = live
        self.counters.tick("spans_started")

    def last_trace_id(self, thread_local: bool = False) -> Optional[int]:
        return getattr(self._last_in_thread, "trace_id", None) if thread_local else self._last_trace_id

    def close(self, state: OpenTrace) -> list[tuple[ReadableSpan, Optional[LiveSpan]]]:
        """The trace's local root ended: take its finished spans and forget it as an open trace."""
        self._last_trace_id = state.trace_id
        self._last_in_thread.trace_id = state.trace_id
        with state.lock:
            state.closed = True
            finished = state.finished
            state.finished = []
            # The trace is no longer open (nothing looks its spans up through it any more): dropping
            # its members and root breaks the cycles state -> span -> state, so a finished request's
            # objects are freed as they go, not left to the cyclic garbage collector.
            state.members = {}
            state.root = None
        if self._traces.get(state.trace_id) is state:
            self._traces.pop(state.trace_id, None)
        return finished

    def finish(self, span_id: int) -> Optional[LiveSpan]:
        """A span ended: our live span for it (no longer open), or None if it is not ours."""
        return self._live.pop(span_id, None)

    def open_members(self, state: OpenTrace) -> list[LiveSpan]:
        """The trace's spans still open, other than its root, innermost (latest started) first: the
        order in which to end them so every parent ends after its children."""
        live = self._live
        members = [
            span
            for span_id, span in list(state.members.items())  # this trace's spans, not every open one
            if span_id in live and span is not state.root
        ]
        members.sort(key=lambda span: span.start_time_ns or 0, reverse=True)
        return members

    def live_span(self, span_id: Optional[int]) -> Optional[LiveSpan]:
        return self._live.get(span_id) if span_id is not None else None

    def trace_member(self, trace_id: Optional[int], span_id: Optional[int]) -> Optional[LiveSpan]:
        """A span of an open trace, even if that span has ended already."""
        state = self.open_trace(trace_id)
        if state is None or span_id is None:
            return self.live_span(span_id)
        return state.members.get(span_id)

    def open_trace(self, trace_id: Optional[int]) -> Optional[OpenTrace]:
        return self._traces.get(trace_id) if trace_id is not None else None

    def mark_timed_out(self, trace_id: int) -> None:
        timed_out = self._timed_out
        timed_out[trace_id] = None
        while len(timed_out) > self.TIMED_OUT_KEPT:
            timed_out.pop(next(iter(timed_out)))

    def timed_out(self, trace_id: int) -> bool:
        """True for a trace the timeout ended: a span started under it later must not join it."""
        return trace_id in self._timed_out

    def open_traces(self) -> list[OpenTrace]:
        return list(self._traces.values())

    def clear(self) -> None:
        """Forget every open trace and the last one that ended (``tracing.reset``, a forked child),
        as MLflow's test fixture resets ``get_last_active_trace_id`` with its tracing state."""
        self._traces.clear()
        self._live.clear()
        self._timed_out.clear()
        self._last_trace_id = None
        self._last_in_thread = threading.local()
