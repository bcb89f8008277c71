"""``mlflow_otel.testing``: assert on the traces your application produces, in your own tests.

``TraceCapture`` replaces the process's destinations (``set_destination``'s and
``add_destination``'s) with an in-memory one for as long as it runs: spans arrive after the whole
pipeline (your hooks, the content switch, redaction, trimming, sampling), exactly what a backend
would receive, and go nowhere else. It hands back the same ``Trace`` entities as
``mlflow_otel.get_trace`` / ``search_traces``. (A trace started with its own destination,
``trace_destination=`` or a context-local ``set_destination``, still goes where the code sends it.)

With pytest the fixture ``mlflow_traces`` (``mlflow_otel.pytest_plugin``, registered through the
``pytest11`` entry point) gives one per test::

    def test_chat_is_traced(mlflow_traces):
        chat("hi")
        (trace,) = mlflow_traces.wait(1)
        assert trace.info.state == "OK"
        assert mlflow_traces.spans(span_type="CHAT_MODEL")[0].inputs == {"message": "hi"}

``wait`` is how a test meets traces that other threads or asyncio tasks are still producing: it
returns once the expected number of traces were delivered and no trace is open anywhere in the
process (other than the caller's own and those open before the capture began), and raises with what
is missing otherwise. Delivery is exact, not timed: an ended trace is exported by a flush, which
returns only once everything queued before it is out (docs/architecture.md, "Batch"). In an
``async def`` test, ``await mlflow_traces.wait_async(n)`` lets the loop's tasks finish meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Optional, Union

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel import _runtime
from mlflow_otel._runtime import RUNTIME
from mlflow_otel.otlp.ids import mlflow_trace_id
from mlflow_otel.records import html as trace_html
from mlflow_otel.records.from_spans import trace_from_otel
from mlflow_otel.records.model import Span, Trace

__all__ = ["TraceCapture"]

#: How often ``wait`` looks at the open traces again.
_POLL_S = 0.005


class _MemoryExporter(SpanExporter):
    """Keeps every exported span, in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def snapshot(self) -> list[ReadableSpan]:
        with self._lock:
            return list(self.spans)

    def clear(self) -> None:
        with self._lock:
            self.spans.clear()

    def shutdown(self) -> None:
        return None


class TraceCapture:
    """Captures finished traces in memory (see the module docstring). A context manager too."""

    def __init__(self) -> None:
        self._exporter = _MemoryExporter()
        self._previous: Optional[tuple[Any, ...]] = None
        self._active = False
        #: Traces already open when the capture began: not this test's, never waited for.
        self._preexisting: frozenset[int] = frozenset()

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> TraceCapture:
        if not self._active:
            self._preexisting = frozenset(state.trace_id for state in RUNTIME.registry.open_traces())
            # Every span, whatever its destination, comes here.
            self._previous = _runtime.capture_all((self._exporter,))
            self._active = True
        return self

    def stop(self) -> None:
        if self._active:
            self._active = False
            _runtime.flush(5.0)
            _runtime.capture_all(self._previous)

    def __enter__(self) -> TraceCapture:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- reading -----------------------------------------------------------------------------------
    def _traces(self) -> list[Trace]:
        by_trace: dict[int, list[ReadableSpan]] = {}
        for span in self._exporter.snapshot():
            by_trace.setdefault(span.get_span_context().trace_id, []).append(span)
        traces = [trace_from_otel(spans) for spans in by_trace.values()]
        traces.sort(key=lambda t: t.data.spans[0].start_time_ns)  # the root first, by trace_from_spans
        return traces

    @property
    def traces(self) -> list[Trace]:
        """Every trace finished so far, oldest first (what the pipeline has delivered)."""
        _runtime.flush(10.0)
        return self._traces()

    def open_trace_ids(self) -> list[str]:
        """Traces still open in this process that ``wait`` waits for: not the caller's own (the
        trace of the current span, which cannot end while its code waits) and not those open before
        the capture began."""
        own = otel_trace.get_current_span().get_span_context()
        skip = self._preexisting | ({own.trace_id} if own.is_valid else set())
        return [mlflow_trace_id(s.trace_id) for s in RUNTIME.registry.open_traces() if s.trace_id not in skip]

    def _ready(self, count: int) -> tuple[bool, list[Trace], list[str]]:
        """One look: the open traces first, then a flush, so every trace that had ended by the
        look is delivered when the flush returns."""
        open_ids = self.open_trace_ids()
        _runtime.flush(10.0)
        traces = self._traces()
        return len(traces) >= count and not open_ids, traces, open_ids

    @staticmethod
    def _timeout_error(
        count: int, timeout: float, traces: list[Trace], open_ids: list[str]
    ) -> AssertionError:
        message = f"waited {timeout:g} s for {count} trace(s): {len(traces)} delivered"
        if open_ids:
            message += f", {len(open_ids)} still open ({', '.join(open_ids[:5])})"
        try:
            asyncio.get_running_loop()
            message += "; in an async test, `await mlflow_traces.wait_async(...)` lets its tasks finish"
        except RuntimeError:
            pass
        return AssertionError(message)

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[Trace]:
        """Block until at least ``count`` traces were delivered and no trace is still open in
        another thread or task (see ``open_trace_ids``), then return every trace, oldest first.
        Raises ``AssertionError`` with what is missing when ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            ready, traces, open_ids = self._ready(count)
            if ready:
                return traces
            if time.monotonic() >= deadline:
                raise self._timeout_error(count, timeout, traces, open_ids)
            time.sleep(_POLL_S)

    async def wait_async(self, count: int = 1, timeout: float = 10.0) -> list[Trace]:
        """``wait`` for ``async def`` tests: the event loop keeps running the tasks that are still
        producing traces while this waits (the flush runs in a worker thread)."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        while True:
            open_ids = self.open_trace_ids()
            await loop.run_in_executor(None, _runtime.flush, 10.0)
            traces = self._traces()
            if len(traces) >= count and not open_ids:
                return traces
            if time.monotonic() >= deadline:
                raise self._timeout_error(count, timeout, traces, open_ids)
            await asyncio.sleep(_POLL_S)

    def spans(
        self, name: Union[str, re.Pattern[str], None] = None, span_type: Optional[str] = None
    ) -> list[Span]:
        """Spans of every captured trace (oldest trace first, each in start order), filtered by
        name (a string, or a compiled pattern searched in the name) and / or span type."""

        def named(span: Span) -> bool:
            if name is None:
                return True
            return span.name == name if isinstance(name, str) else bool(name.search(span.name))

        return [
            span
            for trace in self.traces
            for span in trace.data.spans
            if named(span) and (span_type is None or span.span_type == span_type)
        ]

    def get_trace(self, trace_id: str) -> Optional[Trace]:
        """The captured trace with this id (``tr-<hex>``), or None."""
        return next((t for t in self.traces if t.trace_id == trace_id), None)

    def write_html(self, path: Union[str, os.PathLike[str]]) -> str:
        """Write every captured trace as one self-contained page (the view of ``mlflow-otel show
        --html``: span tree, timeline, per-span details) and return its path; a failing test can
        keep it beside its other artifacts."""
        document = trace_html.page(self.traces)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(document)
        return os.fspath(path)

    def clear(self) -> None:
        """Forget every trace delivered so far: finished traces are flushed first, so they are
        forgotten too; traces still open arrive when they end."""
        _runtime.flush(10.0)
        self._exporter.clear()

    def __len__(self) -> int:
        return len(self.traces)

    def __iter__(self) -> Iterator[Trace]:
        return iter(self.traces)

    def __getitem__(self, index: int) -> Trace:
        return self.traces[index]
