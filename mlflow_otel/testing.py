"""``mlflow_otel.testing``: assert on the traces your application produces, in your own tests.

``TraceCapture`` replaces the process's destinations with an in-memory one for as long as it runs:
spans arrive after the whole pipeline (your hooks, the content switch, redaction, trimming,
sampling), exactly what a backend would receive, and go nowhere else. It hands back the same
``Trace`` entities as ``mlflow_otel.get_trace`` / ``search_traces``.

With pytest the fixture ``mlflow_traces`` (``mlflow_otel.pytest_plugin``, registered through the
``pytest11`` entry point) gives one per test::

    def test_chat_is_traced(mlflow_traces):
        chat("hi")
        (trace,) = mlflow_traces.wait(1)
        assert trace.info.state == "OK"
        assert mlflow_traces.spans(span_type="CHAT_MODEL")[0].inputs == {"message": "hi"}
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel import _runtime
from mlflow_otel._state import STATE
from mlflow_otel.records.from_spans import trace_from_otel
from mlflow_otel.records.model import Span, Trace
from mlflow_otel.spans import registry

__all__ = ["TraceCapture"]


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

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> TraceCapture:
        if not self._active:
            self._previous = STATE.destinations
            self._route((self._exporter,))
            self._active = True
        return self

    def stop(self) -> None:
        if self._active:
            self._active = False
            _runtime.flush(5.0)
            self._route(self._previous)

    @staticmethod
    def _route(destinations: Optional[tuple[Any, ...]]) -> None:
        def change() -> None:
            STATE.destinations = destinations

        _runtime.replace(change)

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
        traces.sort(key=lambda t: t.info.request_time)
        return traces

    @property
    def traces(self) -> list[Trace]:
        """Every trace finished so far, oldest first (what the pipeline has delivered)."""
        _runtime.flush(10.0)
        return self._traces()

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[Trace]:
        """Wait until at least ``count`` traces were delivered and no trace is still open in this
        process (other threads, asyncio tasks), then return every trace. Raises ``AssertionError``
        with what is missing when ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            open_now = len(registry.open_traces())
            _runtime.flush(max(0.0, min(1.0, deadline - time.monotonic())))
            traces = self._traces()
            if len(traces) >= count and open_now == 0:
                return traces
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"waited {timeout:g} s for {count} trace(s): {len(traces)} delivered, "
                    f"{open_now} still open"
                )
            time.sleep(0.01)

    def spans(self, name: Optional[str] = None, span_type: Optional[str] = None) -> list[Span]:
        """Spans of every captured trace, filtered by name and / or span type."""
        return [
            span
            for trace in self.traces
            for span in trace.data.spans
            if (name is None or span.name == name) and (span_type is None or span.span_type == span_type)
        ]

    def clear(self) -> None:
        """Forget what was captured so far (finished spans still in the pipeline arrive later)."""
        _runtime.flush(10.0)
        self._exporter.clear()

    def __len__(self) -> int:
        return len(self.traces)

    def __iter__(self) -> Iterator[Trace]:
        return iter(self.traces)

    def __getitem__(self, index: int) -> Trace:
        return self.traces[index]
