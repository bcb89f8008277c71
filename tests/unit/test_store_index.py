"""The local store as an index of the traces file (``records/local.py``: ``LocalTraceWriter.index``;
``exporters/local_store.py``): whatever the file holds reaches the store, from memory when the
store keeps up, from the file when it does not, whoever wrote the lines."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections import deque
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mlflow_otel._runtime import RUNTIME
from mlflow_otel.exporters import local_store
from mlflow_otel.exporters.file import OtlpJsonFileExporter
from mlflow_otel.exporters.local_store import FileAndStoreExporter
from mlflow_otel.otlp.json import request_line, span_texts
from mlflow_otel.records.local import LocalStore, LocalTraceWriter, store_path

COUNTERS = RUNTIME.counters


def _traces(n: int, prefix: str = "t") -> list[ReadableSpan]:
    """``n`` traces of a root and two children, in end order (children first), as a pipeline exports them."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for i in range(n):
        with tracer.start_as_current_span(f"{prefix}{i}"):
            for child in ("retrieve", "answer"):
                with tracer.start_as_current_span(child):
                    pass
    return list(memory.get_finished_spans())


def _names(store: LocalStore) -> set[str]:
    traces, _ = store.search_traces(None, None, None, None, include_spans=False)
    return {t.info.tags.get("mlflow.traceName") or "" for t in traces}


def test_lines_of_this_process_are_filed_from_memory_and_others_read_back(tmp_path: Path) -> None:
    path = str(tmp_path / "traces.jsonl")
    ours, theirs = OtlpJsonFileExporter(path), OtlpJsonFileExporter(path)  # two writers of one file
    mine, other = _traces(3, "mine"), _traces(2, "other")
    batches: deque = deque()
    first = ours.append(request_line(mine[:6], span_texts(mine[:6])))
    batches.append((*first, mine[:6], span_texts(mine[:6])))
    theirs.append(request_line(other, span_texts(other)))  # another process's line, between ours
    second = ours.append(request_line(mine[6:], span_texts(mine[6:])))
    batches.append((*second, mine[6:], span_texts(mine[6:])))

    writer = LocalTraceWriter(store_path(path), traces_file=path, counters=COUNTERS)
    assert writer.index(batches) and not batches
    assert not writer.behind()
    store = LocalStore(store_path(path), path)
    assert _names(store) == {"mine0", "mine1", "mine2", "other0", "other1"}
    assert all(len(t.data.spans) == 3 for t in store.search_traces(None, None, None, None)[0])
    writer.index(deque([(*first, mine[:6], span_texts(mine[:6]))]))  # already indexed: nothing twice
    assert store.count() == 5


def test_a_reader_indexes_what_the_writer_never_did(tmp_path: Path) -> None:
    """The writing process ended (or was killed) before its store caught up: the file is the record."""
    path = str(tmp_path / "traces.jsonl")
    file = OtlpJsonFileExporter(path)
    spans = _traces(4)
    file.export(spans[:6])
    LocalTraceWriter(store_path(path), traces_file=path, counters=COUNTERS).index()  # the first line indexed
    file.export(spans[6:])  # the second never was
    store = LocalStore(store_path(path))  # the traces file found beside it
    assert store.count() == 4
    assert store.get_trace(store.search_traces(None, None, None, None)[0][0].info.trace_id) is not None


def test_a_torn_line_before_a_batch_is_skipped_and_the_batch_filed(tmp_path: Path) -> None:
    path = str(tmp_path / "traces.jsonl")
    file = OtlpJsonFileExporter(path)
    spans = _traces(2)
    odd = {"traceId": "ab" * 16, "spanId": "cd" * 8, "attributes": 7}  # another shape: skipped, counted
    with open(path, "ab") as fh:
        fh.write(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [odd]}]}]}).encode() + b"\n")
        fh.write(b'{"resourceSpans": [{"scopeSpa')  # a line a full disk cut short
    where = file.append(request_line(spans, span_texts(spans)))
    writer = LocalTraceWriter(store_path(path), traces_file=path, counters=COUNTERS)
    before = COUNTERS.snapshot()
    assert writer.index(deque([(*where, spans, span_texts(spans))]))
    assert LocalStore(store_path(path), path).count() == 2  # the index never sticks on a bad line
    after = COUNTERS.snapshot()
    assert after.get("local_store_skipped_lines", 0) == before.get("local_store_skipped_lines", 0) + 1
    assert after.get("local_store_skipped_spans", 0) == before.get("local_store_skipped_spans", 0) + 1


def test_lines_rotated_before_they_were_indexed_are_read_from_the_old_generation(tmp_path: Path) -> None:
    path = str(tmp_path / "traces.jsonl")
    spans = _traces(6)
    line = request_line(spans[:3], span_texts(spans[:3]))
    file = OtlpJsonFileExporter(path, max_bytes=len(line) * 2 + 10)  # two lines, then a rotation
    writer = LocalTraceWriter(store_path(path), traces_file=path, counters=COUNTERS)
    file.export(spans[:3])
    writer.index()
    for i in range(3, 18, 3):
        file.export(spans[i : i + 3])  # rotates twice: the first rotated generation is gone
    assert os.path.exists(path + ".1")
    writer.index()
    # The line rotated out twice before it was indexed is lost to the store (warned); the rest is
    # there: the rotated generation's lines, then the current file's.
    assert LocalStore(store_path(path), path).count() == 5
    file.export(_traces(1, "late"))
    writer.index()
    assert "late0" in _names(LocalStore(store_path(path), path))


def test_a_store_older_than_the_index_is_taken_as_complete(tmp_path: Path) -> None:
    """A store written inline by an earlier release has no position: it is not indexed twice."""
    path = str(tmp_path / "traces.jsonl")
    spans = _traces(2)
    OtlpJsonFileExporter(path).export(spans)
    LocalTraceWriter(store_path(path), counters=COUNTERS).write(
        spans, span_texts(spans)
    )  # inline, no position
    writer = LocalTraceWriter(store_path(path), traces_file=path, counters=COUNTERS)
    assert not writer.behind() or writer.index()
    assert LocalStore(store_path(path), path).count() == 2


def test_the_file_never_waits_for_the_store(tmp_path: Path) -> None:
    """Another process holds the store's write lock: exports still finish (the file is the record),
    and the store catches up once the lock is released, with no error."""
    path = str(tmp_path / "traces.jsonl")
    exporter = FileAndStoreExporter(path, counters=COUNTERS)
    exporter.export(_traces(1))
    assert exporter.force_flush(10_000)
    holder = sqlite3.connect(store_path(path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    errors = COUNTERS.snapshot().get("local_store_errors", 0)
    done = threading.Event()

    def export() -> None:
        for _ in range(5):
            exporter.export(_traces(2))
        done.set()

    threading.Thread(target=export).start()
    assert done.wait(3)  # the store's lock is held for up to its 5 s timeout: exports never wait on it
    with open(path, encoding="utf-8") as fh:
        assert sum(1 for _ in fh) == 6
    holder.execute("ROLLBACK")
    holder.close()
    assert exporter.force_flush(10_000)
    assert LocalStore(store_path(path), path).count() == 11
    assert COUNTERS.snapshot().get("local_store_errors", 0) == errors
    exporter.shutdown()


def test_behind_more_than_memory_holds_the_store_reads_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_store, "MEMORY_SPANS", 6)  # two traces
    path = str(tmp_path / "traces.jsonl")
    exporter = FileAndStoreExporter(path, counters=COUNTERS)
    gate = threading.Lock()
    gate.acquire()
    index = exporter.store.index
    monkeypatch.setattr(
        exporter.store, "index", lambda *a, **k: (gate.acquire(), gate.release(), index(*a, **k))[-1]
    )
    for _ in range(10):
        exporter.export(_traces(1))  # the indexer is held: memory overflows, the file has them all
    assert len(exporter.indexer._batches) <= 2
    gate.release()
    assert exporter.force_flush(10_000)
    assert LocalStore(store_path(path), path).count() == 10
    exporter.shutdown()
