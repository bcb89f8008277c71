"""The embedded default destination: OTLP/JSON lines in a file, and the local trace store indexing it.

The file (``exporters/file.py``) is one ``ExportTraceServiceRequest`` per line, the input of the
OTel Collector's ``otlpjsonfile`` receiver, with its size cap and rotation. It is the record: an
export is done when its line is written (about 57,000 spans/s here, faster than the request path
fills the queue), and its result is the file's.

The SQLite store of ``records/local.py`` (what ``get_trace`` / ``search_traces`` read with no
server configured) is an index of that file, kept up on a thread of its own (``StoreIndexer``), so
the file never waits for the store (about 35,000 spans/s) and the store never loses what the file
holds. Each span is encoded to OTLP/JSON once (``span_texts``): the file's line is those texts
joined, and the indexer files the same texts from memory while it keeps up. When it falls behind by
more than ``MEMORY_SPANS``, it reads the lines back from the file instead; a read of the store first
indexes whatever the file holds beyond it (the writer may have ended or been killed meanwhile).
Every process writing the same file shares one store and one position in the file.

At exit the indexer finishes what is behind for as long as it makes progress (local work: its pace
is this machine's), and a store that cannot be written (a read-only directory, a disk full, another
process holding the lock past its timeout) costs a counted error (``local_store_errors``) and a
rate-limited warning: the spans are in the file either way, and the next read indexes them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, Callable, Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel import _fork
from mlflow_otel._clock import REAL_CLOCK, Clock
from mlflow_otel._log import warn_limited
from mlflow_otel._telemetry import Counters
from mlflow_otel.exporters.file import DEFAULT_MAX_BYTES, OtlpJsonFileExporter
from mlflow_otel.otlp.json import request_line, span_texts
from mlflow_otel.records.local import DEFAULT_MAX_BYTES as STORE_MAX_BYTES
from mlflow_otel.records.local import FileBatch, LocalTraceWriter, store_path
from mlflow_otel.records.pending import PendingAssessments

#: Spans whose lines the indexer holds in memory; beyond it, it reads them back from the file.
MEMORY_SPANS = 16_384
#: After a failed write to the store, the indexer tries again this much later (the file holds the spans).
RETRY_S = 1.0
#: At exit, indexing is given up after this long without progress.
STALL_S = 2.0


class StoreIndexer:
    """Keeps a store caught up with its traces file on one thread (``LocalTraceWriter.index``)."""

    def __init__(
        self,
        writer: LocalTraceWriter,
        clock: Clock = REAL_CLOCK,
        thread: Callable[..., Any] = threading.Thread,
    ) -> None:
        """``clock`` and ``thread`` are the unit tier's seams (``tests/unit/``)."""
        self.writer = writer
        self._clock = clock
        self._thread_factory = thread
        self._reset()
        _fork.in_child(self._reset)  # a child's inherited lines are its parent's to index

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._batches: deque[FileBatch] = deque()
        self._spans = 0
        self._wanted = False  # the file may hold lines not indexed yet
        self._working = False
        self._failed = False  # the last attempt failed; the next is due at ``_retry_at``
        self._retry_at = 0.0
        self._steps = 0  # transactions started: progress, for ``finish``
        self._stopping = False
        self._thread: Optional[Any] = None

    def submit(self, batch: FileBatch) -> None:
        """A line just appended to the file, with its spans and texts (called on an export thread)."""
        with self._cond:
            if self._spans + len(batch[3]) > MEMORY_SPANS:
                self._batches.clear()  # indexed from the file instead
                self._spans = 0
            self._batches.append(batch)
            self._spans += len(batch[3])
            self._wanted = True
            if self._thread is None and not self._stopping:
                self._thread = self._thread_factory(target=self._run, name="mlflow-otel-store", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def idle(self) -> bool:
        """Nothing left to index, or the last attempt failed (the file keeps the spans)."""
        return self._failed or not (self._wanted or self._working or self._batches)

    def drain(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the store to catch up; True if it did (or cannot now)."""
        deadline = self._clock.now() + timeout_s
        with self._cond:
            while not self.idle():
                left = deadline - self._clock.now()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def finish(self) -> bool:
        """At shutdown: index what is behind for as long as it makes progress, then stop the thread."""
        while True:
            steps = self._steps
            if self.drain(STALL_S) or self._steps == steps:
                break
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        return self.idle()

    def _step(self, local: deque[FileBatch]) -> bool:
        """``index``'s pause test: count progress, and pause when new lines wait in memory."""
        self._steps += 1
        return not local and bool(self._batches)

    def _run(self) -> None:
        local: deque[FileBatch] = deque()
        while True:
            with self._cond:
                while not self._stopping and not (self._wanted and self._clock.now() >= self._retry_at):
                    self._cond.notify_all()  # wake ``drain``
                    wait = self._retry_at - self._clock.now() if self._wanted else None
                    self._cond.wait(wait if wait is None else max(wait, 0.001))
                if self._stopping:
                    self._thread = None
                    self._cond.notify_all()
                    return
                local.extend(self._batches)
                self._batches.clear()
                self._spans = 0
                self._wanted = False
                self._working = True
            try:
                done = self.writer.index(local, stop=lambda: self._step(local))
                failed = False
            except Exception as exc:
                done, failed = True, True
                local.clear()
                self.writer.counters.add("local_store_errors")
                warn_limited(
                    "local_store",
                    "Could not index %s in the local trace store %s (the spans are in the file; the "
                    "next read indexes them): %r",
                    self.writer.traces_file,
                    self.writer.path,
                    exc,
                )
            with self._cond:
                self._working = False
                self._failed = failed
                if failed:
                    self._wanted = True
                    self._retry_at = self._clock.now() + RETRY_S
                elif not done:
                    self._wanted = True  # paused for new lines in memory
                self._cond.notify_all()


class FileAndStoreExporter(SpanExporter):
    """Writes each batch to the OTLP/JSON file; the local store indexes it (``StoreIndexer``)."""

    def __init__(
        self,
        path: str,
        experiment_id: Optional[str] = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        store_max_bytes: int = STORE_MAX_BYTES,
        pending: Optional[PendingAssessments] = None,
        *,
        counters: Counters,
    ) -> None:
        """``pending``: assessments logged on traces still open, filed with their records."""
        self.file = OtlpJsonFileExporter(path, max_bytes)
        self.path = self.file.path
        self.store = LocalTraceWriter(
            store_path(self.path),
            experiment_id,
            max_bytes=store_max_bytes,
            traces_file=self.path,
            pending=pending,
            counters=counters,
        )
        self.indexer = StoreIndexer(self.store)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        texts = span_texts(spans)
        where = self.file.append(request_line(spans, texts))
        if where is None:
            return SpanExportResult.FAILURE
        self.indexer.submit((*where, spans, texts))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.file.shutdown()
        self.indexer.finish()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.indexer.drain(timeout_millis / 1000.0)
