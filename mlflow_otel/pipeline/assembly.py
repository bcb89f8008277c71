"""Trace assembly: the pipeline stage that turns finished spans back into traces.

MLflow exports a trace when its root span ends, and renames same-named spans of one trace to
``name_1``, ``name_2``, ... in start order (``deduplicate_span_names_in_place`` in MLflow's
``tracing/utils``). Doing the same needs the whole trace, so this processor holds the finished spans
of each trace until its *local root* (the first of our spans in that trace in this process) ends,
then hands them downstream in one go. Spans that end after their local root (a background thread
outliving its request) are forwarded as they end; spans of the instrumentors ``autolog()`` binds are
adopted at their start and held like ours (``spans/adopt.py``); other instrumentations' spans
(joined mode) pass straight through.

The open-trace table also serves the trace timeout (``MLFLOW_TRACE_TIMEOUT_SECONDS``): a watcher
thread ends traces open too long with status ERROR so they are exported rather than lost; and exit
(``end_open_traces``): traces still open when the process exits are ended the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan

from mlflow_otel._log import logger, warn_limited
from mlflow_otel._state import STATE
from mlflow_otel._telemetry import Counters
from mlflow_otel.otlp.ids import mlflow_trace_id
from mlflow_otel.spans import adopt
from mlflow_otel.spans.registry import OpenTrace, Registry
from mlflow_otel.spans.types import SpanStatus, SpanStatusCode

#: The next stage: takes a finished trace (or a lone span) and where it goes; never blocks.
Submit = Callable[[Sequence[ReadableSpan], Optional[tuple[Any, ...]]], None]


class TraceAssembler(SpanProcessor):
    """The pipeline's head, an OTel ``SpanProcessor``: at span start it runs the user's OTel
    ``on_start`` processors (only when the SDK's tracer calls it: the lean tracer runs them itself);
    at span end it holds each trace's spans until its local root ends, then submits them whole."""

    def __init__(
        self, submit: Submit, registry: Registry, trace_done: Optional[Callable[[], None]] = None
    ) -> None:
        self._submit = submit
        #: The process's open traces (the runtime's; spans register there as they start).
        self._registry = registry
        self._counters = registry.counters
        #: Called on the thread that ended a trace's local root, after the trace was submitted
        #: (MLflow's blocking mode waits there for its export).
        self._trace_done = trace_done
        #: False once the pipeline is replaced or shut down (a joined global provider keeps calling us).
        self.active = True

    def on_start(self, span: SdkSpan, parent_context: Optional[Context] = None) -> None:
        if self.active:  # a span the SDK's tracer started: stamped, and adopted if autologged
            try:
                adopt.started(span)
            except Exception as exc:  # never into the library that started it
                warn_limited("adopt", "Could not register a third-party span: %r", exc)
        processors = STATE.start_processors
        if processors and self.active:
            run_on_start(processors, span, parent_context, self._counters)

    def on_end(self, span: ReadableSpan) -> None:
        registry = self._registry
        if not self.active:
            # Replaced or shut down: one of our spans ending now (a daemon thread outliving exit)
            # is lost, and counted; other instrumentations' spans are theirs to count.
            if registry.finish(span.get_span_context().span_id) is not None:
                self._counters.add("dropped.shutdown")
            return
        try:
            context = span.get_span_context()
            live = registry.finish(context.span_id)
            if live is None:  # not ours: another instrumentation's span (FastAPI, httpx, ...)
                state = registry.open_trace(context.trace_id)
                if state is not None:  # inside an open trace of ours: held and sent with it, so
                    with state.lock:  # a tail decision sees the whole trace, not this span alone
                        if not state.closed:
                            state.finished.append((span, None))
                            return
                self._submit((span,), state.destinations if state is not None else None)
                return
            self._counters.tick("spans_ended")
            state = live.trace_state
            if state is None:
                self._submit((span,), None)
                return
            if state.root is live:
                finished = registry.close(state)
                finished.append((span, live))
                self._submit([readable for readable, _ in finished], state.destinations)
                if self._trace_done is not None:
                    self._trace_done()
                return
            with state.lock:
                if not state.closed:
                    state.finished.append((span, live))
                    return
            # Ended after its local root: forward it on its own.
            self._submit((span,), state.destinations)
        except Exception as exc:  # never into user code
            self._counters.add("dropped.assembly_error")
            warn_limited("assembly", "Dropped a span while assembling its trace: %s", exc)

    def shutdown(self) -> None:
        self.active = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def run_on_start(
    processors: Sequence[Any], span: Any, parent_context: Optional[Context], counters: Counters
) -> None:
    """OTel ``SpanProcessor.on_start`` of the user's processors, where OTel runs it: on the app
    thread as the span starts (trace/sdk.md#onstart). One that raises is counted and logged once."""
    for processor in processors:
        try:
            processor.on_start(span, parent_context)
        except Exception as exc:
            counters.add("processor_errors")
            warn_limited(
                f"on_start:{type(processor).__name__}",
                "Span processor %s raised in on_start: %r",
                type(processor).__name__,
                exc,
            )


def _end_trace(registry: Registry, state: OpenTrace, status: SpanStatus) -> None:
    """End a trace's open spans innermost first (latest started first), the root last, so it is
    exported whole while the code that opened it may still run."""
    for live in registry.open_members(state):
        live.end(status=status)
    if state.root is not None:
        state.root.end(status=status)


def end_expired_traces(registry: Registry, timeout_s: float, now_ns: Optional[int] = None) -> int:
    """End every trace open longer than ``timeout_s`` with status ERROR; returns how many.

    Mirrors MLflow's ``MLFLOW_TRACE_TIMEOUT_SECONDS``.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    limit_ns = int(timeout_s * 1e9)
    expired = [s for s in registry.open_traces() if now_ns - s.start_ns > limit_ns]
    for state in expired:
        registry.mark_timed_out(state.trace_id)
        _end_trace(
            registry, state, SpanStatus(SpanStatusCode.ERROR, f"Trace timed out after {timeout_s:g} seconds")
        )
        registry.counters.add("traces_timed_out")
        logger.warning(
            "Trace %s was open for more than %g s (MLFLOW_TRACE_TIMEOUT_SECONDS); "
            "ended it with status ERROR and exported it.",
            mlflow_trace_id(state.trace_id),
            timeout_s,
        )
    return len(expired)


#: The status of a span the process exit ended (its code never got to end it).
EXITED_FIRST = "The process exited before this span ended"


def end_open_traces(registry: Registry, why: str = EXITED_FIRST) -> int:
    """At exit (interpreter exit or SIGTERM): end every open trace with status ERROR and ``why``,
    so a request still running in a daemon thread is exported rather than lost without a word.
    Returns how many traces were ended (counted as ``traces_ended_at_exit``)."""
    states = registry.open_traces()
    for state in states:
        try:
            _end_trace(registry, state, SpanStatus(SpanStatusCode.ERROR, why))
        except Exception as exc:  # never fail the exit
            warn_limited(
                "end_at_exit", "Could not end trace %s at exit: %r", mlflow_trace_id(state.trace_id), exc
            )
    if states:
        registry.counters.add("traces_ended_at_exit", len(states))
    return len(states)


class TimeoutWatcher:
    """A daemon thread that calls :func:`end_expired_traces` every ``interval_s`` seconds."""

    def __init__(self, registry: Registry, timeout_s: float, interval_s: float) -> None:
        self._registry = registry
        self._timeout_s = timeout_s
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlflow-otel-trace-timeout", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                end_expired_traces(self._registry, self._timeout_s)
            except Exception as exc:
                warn_limited("timeout", "Trace timeout check failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
