"""The batch stage: a bounded queue between the app thread and the exporter.

Follows the OTel spec's Batch Span Processor (``OTEL_BSP_*``, sdk-environment-variables), with the
guarantees DESIGN.md section 3 adds: ``on_end`` never blocks and never raises (a full queue costs a
counted drop and a rate-limited warning), ``force_flush`` and ``shutdown`` honour their deadline even
while the exporter is stuck, and a forked child gets a fresh worker of its own.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import weakref
from typing import Optional

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel._log import warn_limited
from mlflow_otel._telemetry import COUNTERS


class BatchProcessor(SpanProcessor):
    """Queues finished spans; one daemon worker exports them in batches."""

    def __init__(
        self,
        exporter: SpanExporter,
        max_queue_size: int = 2048,
        max_export_batch_size: int = 512,
        schedule_delay_s: float = 5.0,
    ) -> None:
        self.exporter = exporter
        self._max_queue_size = max_queue_size
        self._max_batch = min(max_export_batch_size, max_queue_size)
        self._delay_s = schedule_delay_s
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._shutdown = False
        self._start_worker()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._start_worker)

            def _after_in_child() -> None:
                method = ref()
                if method is not None:
                    method(clear=True)

            os.register_at_fork(after_in_child=_after_in_child)

    def _start_worker(self, clear: bool = False) -> None:
        if clear:  # in a forked child: the parent's queued spans are the parent's to export
            self._queue.clear()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._flush_requests: list[threading.Event] = []
        self._worker = threading.Thread(target=self._run, name="mlflow-otel-export", daemon=True)
        self._worker.start()

    # --- app thread ----------------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if self._shutdown:
            COUNTERS.add("dropped.shutdown")
            return
        if len(self._queue) >= self._max_queue_size:
            COUNTERS.add("dropped.queue_full")
            warn_limited(
                "queue_full",
                "Trace export queue is full (%d spans); dropping spans. Raise "
                "MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE or check the exporter's endpoint.",
                self._max_queue_size,
            )
            return
        self._queue.append(span)
        if len(self._queue) >= self._max_batch:
            self._wake.set()

    # --- worker --------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self._delay_s)
            self._wake.clear()
            with self._flush_lock:
                flushes, self._flush_requests = self._flush_requests, []
            self._drain()
            for done in flushes:
                done.set()
            if self._shutdown and not self._queue:
                return

    def _drain(self) -> None:
        """Export everything queued now, batch by batch."""
        while self._queue:
            batch: list[ReadableSpan] = []
            try:
                while len(batch) < self._max_batch:
                    batch.append(self._queue.popleft())
            except IndexError:
                pass
            self._export(batch)

    def _export(self, batch: list[ReadableSpan]) -> None:
        try:
            result = self.exporter.export(batch)
        except Exception as exc:
            result = SpanExportResult.FAILURE
            warn_limited("export_error", "Exporter raised while exporting %d spans: %s", len(batch), exc)
        if result is SpanExportResult.SUCCESS:
            COUNTERS.add("spans_exported", len(batch))
        else:
            COUNTERS.add("dropped.export_failed", len(batch))
            warn_limited("export_failed", "Failed to export %d spans; they are dropped.", len(batch))

    # --- control -------------------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until every span queued before this call went through the exporter, or the deadline."""
        if not self._worker.is_alive():
            return not self._queue
        done = threading.Event()
        with self._flush_lock:
            self._flush_requests.append(done)
        self._wake.set()
        return done.wait(max(timeout_millis, 0) / 1000.0)

    def shutdown(self, timeout_millis: int = 30000) -> None:
        if self._shutdown:
            return
        deadline = time.monotonic() + timeout_millis / 1000.0
        self.force_flush(timeout_millis)
        self._shutdown = True
        self._wake.set()
        self._worker.join(max(0.0, deadline - time.monotonic()))
        try:
            self.exporter.shutdown()
        except Exception as exc:
            warn_limited("exporter_shutdown", "Exporter shutdown failed: %s", exc)
