"""The embedded local store: finished traces in a stdlib SQLite file beside the default sink's
OTLP/JSON file, answering MLflow's read API with no server.

Layout (one file, ``<traces file>.db``; WAL, so readers never wait for the writer):

* ``traces``: one row per trace: MLflow's ``TraceInfo`` columns (request time, duration, state,
  name, client request id, previews, experiment) and the spans as their OTLP/JSON texts in one
  list (zlib-compressed from 4 KiB), indexed by request time and client request id, and what the
  trace costs on disk (``bytes``, estimated with its tags, metadata and indexes);
* ``tags`` / ``metadata``: one row per key, indexed by (key, value), so ``tags.env = 'prod'`` is an
  index lookup however many traces there are;
* ``span_index``: each span's name, type and status, for ``span.name`` / ``span.type`` filters;
* ``assessments``: feedback and expectations (MLflow's ``Assessment`` JSON).

The store is an index of the OTLP/JSON file beside it (``exporters/local_store.py``): it records
where it stands in the file (``store_meta``: the generation and the offset) and catches up from
there (``LocalTraceWriter.index``): from the spans in memory when the writing process keeps up,
from the file's lines otherwise, and before every read. The file stays the Collector's
``otlpjsonfile`` input with its own size cap and rotation, and the store is the read side, with a
cap of its own: the newest traces up to ``MLFLOW_OTEL_TRACE_STORE_MAX_BYTES`` on disk (512 MiB:
about 190,000 small traces of three spans; each trace's cost is estimated with its indexes). A
write that passes the cap deletes the oldest traces, by request time, down to 90 % of it. So the
store keeps traces the rotated file no longer holds, and ``delete_traces`` removes traces from the
store only: the OTLP/JSON file is an append-only log for the Collector, which keeps its own cap
(100 MB, one ``.1`` generation).

A trace whose spans arrive in several batches (a batch boundary, a span that ended after its root)
is merged: its record is recomputed from all its spans (``records/from_spans.py``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import sqlite3
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Callable, Optional

from mlflow_otel import _fork
from mlflow_otel import semconv as conv
from mlflow_otel._files import create_private
from mlflow_otel._log import warn_limited
from mlflow_otel._telemetry import Counters
from mlflow_otel.exceptions import MlflowException
from mlflow_otel.otlp.ids import mlflow_trace_id, span_hex
from mlflow_otel.records import filters as flt
from mlflow_otel.records.assessment import Assessment
from mlflow_otel.records.from_spans import (
    otel_root_of,
    record_for,
    span_from_otel,
    token_usage_of,
    trace_info_for,
)
from mlflow_otel.records.model import Span, Trace, TraceData, TraceInfo, TraceState
from mlflow_otel.records.otlp_file import generations, span_from_json, span_objects
from mlflow_otel.records.pending import PendingAssessments

#: The default cap of the store (``MLFLOW_OTEL_TRACE_STORE_MAX_BYTES``): about 190,000 small traces.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
#: A lagging store reads the traces file this much at a time, one transaction each.
INDEX_CHUNK_BYTES = 4 * 1024 * 1024
#: Lines this process appended, with their spans: ``(inode, start, end, otel spans, OTLP/JSON texts)``.
FileBatch = tuple[int, int, int, Sequence[Any], Sequence[str]]
#: How long a writer or reader waits for another process's write to finish.
BUSY_TIMEOUT_MS = 5000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    experiment_id TEXT NOT NULL DEFAULT '0',
    request_time INTEGER NOT NULL,
    execution_duration INTEGER,
    end_time INTEGER,
    state TEXT NOT NULL,
    name TEXT,
    client_request_id TEXT,
    request_preview TEXT,
    response_preview TEXT,
    span_count INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    spans BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_by_time ON traces (request_time);
CREATE INDEX IF NOT EXISTS traces_by_client_request_id ON traces (client_request_id);
CREATE TABLE IF NOT EXISTS tags (
    trace_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY (trace_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_by_key_value ON tags (key, value);
CREATE TABLE IF NOT EXISTS metadata (
    trace_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY (trace_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metadata_by_key_value ON metadata (key, value);
CREATE TABLE IF NOT EXISTS span_index (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, name TEXT, type TEXT, status TEXT,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS span_index_by_name ON span_index (name);
CREATE INDEX IF NOT EXISTS span_index_by_type ON span_index (type);
CREATE TABLE IF NOT EXISTS assessments (
    assessment_id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assessments_by_trace ON assessments (trace_id);
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_CHILD_TABLES = ("tags", "metadata", "span_index", "assessments")
_TRACE_COLUMNS = (
    "trace_id, experiment_id, request_time, execution_duration, state, client_request_id, "
    "request_preview, response_preview"
)


def store_path(traces_file: str) -> str:
    """Where the store of a traces file lives: beside it, ``.jsonl`` replaced by ``.db``."""
    root, ext = os.path.splitext(os.path.abspath(traces_file))
    return (root if ext == ".jsonl" else root + ext) + ".db"


def traces_file_of(path: str) -> Optional[str]:
    """The traces file a store at ``path`` indexes (``store_path``'s inverse), if it exists."""
    root, ext = os.path.splitext(path)
    if ext != ".db":
        return None
    for candidate in (root + ".jsonl", root):
        if os.path.exists(candidate) or os.path.exists(candidate + ".1"):
            return candidate
    return None


def _inode(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _regexp(pattern: str, value: Any) -> bool:
    return value is not None and re.search(pattern, str(value)) is not None


class _Db:
    """One SQLite database: a connection per thread (opened again after a fork), the schema once."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._local = threading.local()
        self._schema_inode: Optional[int] = None  # the file the schema was made in
        self._schema_lock = threading.Lock()
        _fork.in_child(self._forget)

    def _forget(self) -> None:
        """In a forked child: a connection opened by the parent is never used here (SQLite's rule)."""
        self._local = threading.local()

    def connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not _fork.check() and self._same_file():
            return conn
        create_private(self.path)  # SQLite gives its -wal and -shm files the database's mode
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000.0, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA case_sensitive_like = ON")  # LIKE is case-sensitive in MLflow; ILIKE is not
        conn.create_function("REGEXP", 2, _regexp, deterministic=True)
        with self._schema_lock:
            if self._schema_inode != _inode(self.path):  # first, or a rebuilt file
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(_SCHEMA)
                self._schema_inode = _inode(self.path)
        # No fsync per commit: an application crash loses nothing (SQLite, "PRAGMA synchronous":
        # with OFF only an OS crash or power loss can damage the file), and the store is an index of
        # the OTLP/JSON file beside it, rebuilt from that file when damaged (``rebuild``). Measured
        # (bench/sinks.py): about 20 % more spans/s than NORMAL.
        conn.execute("PRAGMA synchronous = OFF")
        self._local.conn, self._local.inode = conn, _inode(self.path)
        return conn

    def _same_file(self) -> bool:
        """False once the file was replaced (a rebuild moved the damaged one aside)."""
        return getattr(self._local, "inode", None) == _inode(self.path)

    def forget(self) -> None:
        """Drop this thread's connection: the next ``connect`` opens the file as it is then."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def exists(self) -> bool:
        return os.path.exists(self.path)


#: A trace's spans are compressed from this size on (below it zlib costs more time than it saves).
COMPRESS_FROM_BYTES = 4096


def _pack(span_jsons: Sequence[str]) -> bytes:
    """A trace's spans as stored: their OTLP/JSON texts as one JSON list, compressed if large."""
    data = ("[" + ",".join(span_jsons) + "]").encode("utf-8")
    return zlib.compress(data, 1) if len(data) >= COMPRESS_FROM_BYTES else data


def _json_list(blob: bytes) -> list[Any]:
    """A stored list of spans: JSON text (``[``), or zlib-compressed JSON text."""
    return json.loads((blob if blob[:1] == b"[" else zlib.decompress(blob)).decode("utf-8"))


def _span_of(data: Mapping[str, Any]) -> Span:
    """A stored span: OTLP/JSON (``spanId``), or ``Span.to_dict`` as stores before 0.2 wrote it."""
    return span_from_json(data) if "spanId" in data else Span.from_dict(data)


def _unpack(blob: bytes) -> list[Span]:
    """A trace's stored spans in MLflow's order: by start time, the root first."""
    spans = [_span_of(d) for d in _json_list(blob)]
    spans.sort(key=lambda s: (s.start_time_ns, s.parent_id is not None))
    return spans


class LocalTraceWriter:
    """Files finished spans in the store (``index``: on the indexing thread of
    ``exporters/local_store.py``, or before a read).

    A batch is one transaction, whatever the number of traces in it; a trace seen for the first
    time costs the conversion of its root only (its record: ``from_spans.record_for``) and its
    spans are stored as the OTLP/JSON text the file already encoded. A trace some of whose spans
    are stored already (a batch boundary, a span that ended after its root) is merged: its record
    is recomputed from all its spans. One lock per process orders this process's writes; SQLite's
    own lock orders processes (a pre-fork server's workers share one store)."""

    def __init__(
        self,
        path: str,
        experiment_id: Optional[str] = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        traces_file: Optional[str] = None,
        db: Optional[_Db] = None,
        pending: Optional[PendingAssessments] = None,
        *,
        counters: Counters,
    ) -> None:
        """``db``: the connections of a ``LocalStore`` on the same file, which indexes before it reads.
        ``pending``: assessments logged on traces still open in this process, filed with their
        records (``records/pending.py``)."""
        self._pending = pending
        #: Where lines and spans the store cannot use are counted.
        self.counters = counters
        self._db = db if db is not None else _Db(path)
        self.path = self._db.path
        #: The OTLP/JSON file this store indexes (``index``).
        self.traces_file = traces_file
        self.experiment_id = experiment_id or "0"
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def write(self, otel_spans: Sequence[Any], span_jsons: Sequence[str]) -> int:
        """Store a batch's spans, each with its OTLP/JSON text (``otlp/json.py``: ``span_texts``), in
        one transaction of its own (not through the file: tests, benches); returns the traces written."""
        return self._transaction(lambda conn, rows: self._from_memory(conn, rows, otel_spans, span_jsons))

    def _from_memory(
        self, conn: sqlite3.Connection, rows: _Rows, otel_spans: Sequence[Any], span_jsons: Sequence[str]
    ) -> int:
        by_trace: dict[str, list[int]] = {}
        for i, span in enumerate(otel_spans):
            by_trace.setdefault(mlflow_trace_id(span.get_span_context().trace_id), []).append(i)
        return self._add(
            conn,
            rows,
            {
                trace_id: ([span_jsons[i] for i in members], [otel_spans[i] for i in members])
                for trace_id, members in by_trace.items()
            },
        )

    def _from_json(self, conn: sqlite3.Connection, rows: _Rows, spans: Iterable[Mapping[str, Any]]) -> int:
        """Spans given as OTLP/JSON objects (lines of the traces file)."""
        by_trace: dict[str, list[Mapping[str, Any]]] = {}
        for data in spans:
            by_trace.setdefault("tr-" + str(data.get("traceId", "")).lower(), []).append(data)
        return self._add(conn, rows, {trace_id: (datas, None) for trace_id, datas in by_trace.items()})

    # --- the index of the traces file -------------------------------------------------------------
    def index(
        self, batches: Optional[deque[FileBatch]] = None, stop: Callable[[], bool] = lambda: False
    ) -> bool:
        """Catch the store up with the traces file: what is behind the position it recorded
        (``store_meta``: the file's inode and offset), whoever wrote it (every process writing the
        file shares one store and one position). ``batches``: lines this process wrote, in order, with
        their spans still in memory: a batch that starts where the store stands is filed from memory
        (no parsing), anything else is read from the file; batches already behind are dropped. One
        transaction per batch or per file chunk (``INDEX_CHUNK_BYTES``), so other processes and
        readers interleave. Returns True when the store reached the end of the file, False when
        ``stop()`` said to pause first. Raises ``sqlite3`` / ``OSError`` errors (the caller counts)."""
        batches = batches if batches is not None else deque()
        while not stop():
            done = self._transaction(lambda conn, rows: self._index_step(conn, rows, batches))
            if done < 0:
                return True
        return False

    def _index_step(self, conn: sqlite3.Connection, rows: _Rows, batches: deque[FileBatch]) -> int:
        """One step of ``index`` in the open transaction: traces filed, or -1 at the end of the file."""
        assert self.traces_file is not None
        at, offset = self._position(conn)
        current = _generation(self.traces_file)
        inode = at[0] if at is not None else None
        while batches and batches[0][0] == inode and batches[0][2] <= offset:
            batches.popleft()  # indexed already (from the file, or by another process)
        batch = batches[0] if batches else None
        if batch is not None and at == current and batch[0] == inode and batch[1] == offset:
            # Consecutive batches in one transaction (a commit costs about as much as 500 spans).
            spans: list[Any] = []
            texts: list[str] = []
            while batch is not None and batch[0] == inode and batch[1] == offset and len(spans) < 4096:
                batches.popleft()
                spans.extend(batch[3])
                texts.extend(batch[4])
                offset = batch[2]
                batch = batches[0] if batches else None
            filed = self._from_memory(conn, rows, spans, texts)
            self._set_position(conn, at, offset)
            return filed
        if at is not None and at == current:
            name = self.traces_file
        elif at is not None and _generation(self.traces_file + ".1") == at:
            name = self.traces_file + ".1"  # the generation rotated away since: finish it first
        else:
            if current is None:
                batches.clear()
                return -1  # no file (yet, or removed): nothing to index
            if at is not None:
                warn_limited(
                    "store_index_lost",
                    "The local trace store fell behind %s by more than a rotation (or the file was "
                    "replaced): lines gone before they were indexed are not in the store.",
                    self.traces_file,
                )
            self._set_position(conn, _generation(self.traces_file + ".1") or current, 0)
            return 0
        until = batch[1] if batch is not None and batch[0] == inode and batch[1] > offset else None
        data = _read_lines(name, offset, until)
        if not data:  # the end of this generation (or a line still being written)
            if name != self.traces_file and current is not None:
                self._set_position(conn, current, 0)
                return 0
            batches.clear()  # what is left was written to a generation no longer read
            return -1
        filed = self._from_json(conn, rows, _spans_of_lines(data, self.counters))
        self._set_position(conn, at, offset + len(data))
        return filed

    def _position(self, conn: sqlite3.Connection) -> tuple[Optional[tuple[int, int]], int]:
        """Where the store stands in the traces file: the generation (``_generation``) and the offset
        in it. A store older than the position (written inline by 0.3 and before) is taken as
        complete up to the file's end; a new one starts at the oldest generation."""
        found = dict(
            conn.execute("SELECT key, value FROM store_meta WHERE key IN ('inode', 'head', 'offset')")
        )
        if "inode" in found:
            return (int(found["inode"]), int(found.get("head", 0))), int(found.get("offset", 0))
        assert self.traces_file is not None
        if conn.execute("SELECT 1 FROM traces LIMIT 1").fetchone() is not None:
            current = _generation(self.traces_file)
            return current, (os.path.getsize(self.traces_file) if current is not None else 0)
        oldest = generations(self.traces_file)
        return (_generation(oldest[0]) if oldest else None), 0

    @staticmethod
    def _set_position(conn: sqlite3.Connection, at: Optional[tuple[int, int]], offset: int) -> None:
        if at is not None:
            conn.executemany(
                "INSERT OR REPLACE INTO store_meta VALUES (?, ?)",
                (("inode", at[0]), ("head", at[1]), ("offset", offset)),
            )

    def behind(self) -> bool:
        """Whether the file holds lines the store has not indexed (no lock taken: a reader's check)."""
        if self.traces_file is None:
            return False
        current = _generation(self.traces_file)
        if current is None:
            return False
        at, offset = self._position(self._db.connect())
        return at != current or os.path.getsize(self.traces_file) > offset

    # --- one transaction ------------------------------------------------------------------------
    def _transaction(self, work: Callable[[sqlite3.Connection, _Rows], int]) -> int:
        """``work`` in one write transaction, its rows inserted, the cap kept; returns its result."""
        rows = _Rows()
        with self._lock:
            conn = self._db.connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError:
                self._db.forget()  # reconnect next time (the store may have been rebuilt)
                raise
            try:
                result = work(conn, rows)
                rows.insert(conn)
                if rows.added:
                    total = self._add_bytes(conn, rows.added)
                    if total > self.max_bytes:
                        self._trim(conn, int(self.max_bytes * 0.9))
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                self._db.forget()
                raise
        return result

    def _add(
        self,
        conn: sqlite3.Connection,
        rows: _Rows,
        traces: dict[str, tuple[list[Any], Optional[list[Any]]]],
    ) -> int:
        """Each trace's spans (OTLP/JSON texts with the OTel spans, or OTLP/JSON objects alone) into
        ``rows``; returns the traces."""
        stored = self._stored(conn, list(traces))
        for trace_id, (texts, otel_spans) in traces.items():
            previous = stored.get(trace_id)
            if previous is None and otel_spans is not None:
                rows.added += self._fresh(rows, trace_id, otel_spans, texts)
            else:
                try:
                    rows.added += self._merged(rows, trace_id, texts, previous)
                except (ValueError, TypeError, AttributeError, KeyError):
                    # Spans from a file line of another shape: skipped, never a stuck index.
                    self.counters.add("local_store_skipped_spans", len(texts))
                    continue
            if self._pending is None:
                continue
            for assessment in self._pending.take(trace_id):  # logged while the trace was open
                data = json.dumps(assessment.to_dictionary())
                rows.assessments.append((assessment.assessment_id, trace_id, data))
        return len(traces)

    def _fresh(self, rows: _Rows, trace_id: str, spans: list[Any], texts: list[str]) -> int:
        """A trace not stored yet: its record from its root alone."""
        root = otel_root_of(spans)
        if root is None:
            return 0
        usage = token_usage_of(
            [s.attributes[conv.CHAT_TOKEN_USAGE] for s in spans if conv.CHAT_TOKEN_USAGE in s.attributes]
        )
        info = record_for(span_from_otel(root), usage)
        blob = _pack(texts)
        ends = [s.end_time for s in spans if s.end_time is not None]
        index = [
            (
                trace_id,
                span_hex(s.get_span_context().span_id),
                s.name,
                s.attributes.get(conv.SPAN_TYPE),  # plain text, as ``Span.span_type`` reads it
                s.status.status_code.name,  # OTel's names are MLflow's (``SpanStatusCode``)
            )
            for s in spans
        ]
        return rows.add(trace_id, self.experiment_id, info, blob, len(spans), ends, index, replace=False)

    def _merged(
        self, rows: _Rows, trace_id: str, texts: list[Any], previous: Optional[tuple[bytes, int, str]]
    ) -> int:
        """A trace some of whose spans are stored (or given as OTLP/JSON, texts or objects): merged by
        span id, its record computed from all its spans."""
        merged: dict[str, Any] = {}
        for data in _json_list(previous[0]) if previous is not None else ():
            merged[data.get("spanId") or data.get("span_id")] = data
        for text in texts:
            data = json.loads(text) if isinstance(text, str) else text
            merged[data.get("spanId")] = data
        spans = [_span_of(d) for d in merged.values()]
        info = trace_info_for(spans)
        if info is None:
            return 0
        blob = _pack([json.dumps(d, ensure_ascii=False, separators=(",", ":")) for d in merged.values()])
        ends = [s.end_time_ns for s in spans if s.end_time_ns is not None]
        index = [(trace_id, s.span_id, s.name, s.span_type, s.status.status_code.value) for s in spans]
        if previous is None:
            return rows.add(trace_id, self.experiment_id, info, blob, len(spans), ends, index, replace=False)
        size = rows.add(trace_id, previous[2], info, blob, len(spans), ends, index, replace=True)
        return size - previous[1]

    @staticmethod
    def _stored(conn: sqlite3.Connection, trace_ids: list[str]) -> dict[str, tuple[bytes, int, str]]:
        out: dict[str, tuple[bytes, int, str]] = {}
        for start in range(0, len(trace_ids), 500):
            chunk = trace_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for trace_id, blob, size, experiment_id in conn.execute(
                f"SELECT trace_id, spans, bytes, experiment_id FROM traces WHERE trace_id IN ({marks})", chunk
            ):
                out[trace_id] = (blob, size, experiment_id)
        return out

    @staticmethod
    def _add_bytes(conn: sqlite3.Connection, amount: int) -> int:
        conn.execute(
            "INSERT INTO store_meta VALUES ('bytes', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
            (amount,),
        )
        return int(conn.execute("SELECT value FROM store_meta WHERE key = 'bytes'").fetchone()[0])

    def _trim(self, conn: sqlite3.Connection, target: int) -> None:
        """Delete the oldest traces until the store holds at most ``target`` bytes of spans."""
        total = int(conn.execute("SELECT value FROM store_meta WHERE key = 'bytes'").fetchone()[0])
        doomed: list[str] = []
        for trace_id, size in conn.execute("SELECT trace_id, bytes FROM traces ORDER BY request_time"):
            if total <= target:
                break
            doomed.append(trace_id)
            total -= size
        _delete(conn, doomed)


def _disk_estimate(blob: bytes, info: TraceInfo, span_count: int) -> int:
    """About what a trace costs on disk: its compressed spans, its tags and metadata twice (row and
    index), its span index rows and the row itself (measured: within 25 % for small traces)."""
    pairs = sum(len(k) + len(v or "") for k, v in (*info.tags.items(), *info.trace_metadata.items()))
    previews = len(info.request_preview or "") + len(info.response_preview or "")
    return len(blob) + 2 * pairs + previews + 150 * span_count + 600


class _Rows:
    """The rows of one batch, inserted with one statement per table (``executemany``)."""

    def __init__(self) -> None:
        self.traces: list[tuple[Any, ...]] = []
        self.tags: list[tuple[str, str, str]] = []
        self.metadata: list[tuple[str, str, str]] = []
        self.index: list[tuple[Any, ...]] = []
        self.assessments: list[tuple[str, str, str]] = []
        self.replaced: list[str] = []
        #: What the rows add to the store's size on disk.
        self.added = 0

    def add(
        self,
        trace_id: str,
        experiment_id: str,
        info: TraceInfo,
        blob: bytes,
        span_count: int,
        ends: list[int],
        index: list[tuple[Any, ...]],
        replace: bool,
    ) -> int:
        """Queue one trace's rows; returns what it costs on disk."""
        size = _disk_estimate(blob, info, span_count)
        self.traces.append(
            (
                trace_id,
                experiment_id,
                info.request_time,
                info.execution_duration,
                max(ends) // 1_000_000 if ends else None,
                info.state.value,
                info.tags.get(conv.TRACE_NAME),
                info.client_request_id,
                info.request_preview,
                info.response_preview,
                span_count,
                size,
                blob,
            )
        )
        self.tags.extend((trace_id, k, v) for k, v in info.tags.items())
        self.metadata.extend((trace_id, k, v) for k, v in info.trace_metadata.items())
        self.index.extend(index)
        if replace:
            self.replaced.append(trace_id)
        return size

    def insert(self, conn: sqlite3.Connection) -> None:
        if self.replaced:  # a merged trace's metadata and span index are written whole again
            ids = [(trace_id,) for trace_id in self.replaced]
            conn.executemany("DELETE FROM metadata WHERE trace_id = ?", ids)
            conn.executemany("DELETE FROM span_index WHERE trace_id = ?", ids)
        conn.executemany("INSERT OR REPLACE INTO traces VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", self.traces)
        conn.executemany("INSERT OR REPLACE INTO tags VALUES (?,?,?)", self.tags)
        conn.executemany("INSERT OR REPLACE INTO metadata VALUES (?,?,?)", self.metadata)
        conn.executemany("INSERT OR REPLACE INTO span_index VALUES (?,?,?,?,?)", self.index)
        if self.assessments:
            conn.executemany("INSERT OR REPLACE INTO assessments VALUES (?,?,?)", self.assessments)


def _delete(conn: sqlite3.Connection, trace_ids: Sequence[str]) -> int:
    deleted = 0
    for start in range(0, len(trace_ids), 500):
        chunk = list(trace_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        freed = conn.execute(f"SELECT COALESCE(SUM(bytes), 0) FROM traces WHERE trace_id IN ({marks})", chunk)
        size = int(freed.fetchone()[0])
        deleted += conn.execute(f"DELETE FROM traces WHERE trace_id IN ({marks})", chunk).rowcount
        for table in _CHILD_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE trace_id IN ({marks})", chunk)
        conn.execute("UPDATE store_meta SET value = value - ? WHERE key = 'bytes'", (size,))
    return deleted


# --- reading -------------------------------------------------------------------------------------
_NUMERIC_COLUMNS = {
    "timestamp_ms": "t.request_time",
    "execution_time_ms": "t.execution_duration",
    "end_time_ms": "t.end_time",
}
_STRING_COLUMNS = {
    "status": "t.state",
    "client_request_id": "t.client_request_id",
    "request_id": "t.trace_id",
}
_SPAN_COLUMNS = {"name": "name", "type": "type", "status": "status"}
_ORDER_COLUMNS = {
    "timestamp_ms": "t.request_time",
    "execution_time_ms": "t.execution_duration",
    "end_time_ms": "t.end_time",
    "status": "t.state",
    "request_id": "t.trace_id",
    "experiment_id": "t.experiment_id",
}
_SUPPORTED = (
    "The local store answers tags.<key>, metadata.<key> (session, user, ...), trace.status, "
    "trace.timestamp_ms, trace.execution_time_ms, trace.end_time_ms, trace.name, "
    "trace.client_request_id, trace.request_id, trace.run_id, span.name, span.type and span.status; "
    "send traces to an MLflow server for the rest."
)


def _compare(column: str, op: str, value: Any, params: list[Any]) -> str:
    if op in ("IN", "NOT IN"):
        params.extend(value)
        return f"{column} {op} ({','.join('?' * len(value))})"
    if op == "ILIKE":
        params.append(value)
        return f"lower({column}) LIKE lower(?)"
    if op == "RLIKE":
        params.append(value)
        return f"{column} REGEXP ?"
    params.append(value)
    return f"{column} {op} ?"


def _clause_sql(clause: flt.Clause, params: list[Any]) -> str:
    kind, key, op, value = clause.kind, clause.key, clause.op, clause.value
    if kind in (flt.TAG, flt.METADATA):
        table = "tags" if kind == flt.TAG else "metadata"
        if op == "IS NULL":
            params.append(key)
            return f"t.trace_id NOT IN (SELECT trace_id FROM {table} WHERE key = ?)"
        params.append(key)
        if op == "IS NOT NULL":
            return f"t.trace_id IN (SELECT trace_id FROM {table} WHERE key = ?)"
        if op == "!=":  # MLflow: a trace without the key does not match
            params.append(value)
            return f"t.trace_id IN (SELECT trace_id FROM {table} WHERE key = ? AND value != ?)"
        condition = _compare("value", op, value, params)
        return f"t.trace_id IN (SELECT trace_id FROM {table} WHERE key = ? AND {condition})"
    if kind == flt.ATTRIBUTE:
        if key in _NUMERIC_COLUMNS:
            return _compare(_NUMERIC_COLUMNS[key], op, value, params)
        if key in _STRING_COLUMNS:
            column = _STRING_COLUMNS[key]
            return f"({column} IS NOT NULL AND {_compare(column, op, value, params)})"
    if kind == flt.SPAN and key in _SPAN_COLUMNS:
        if op in ("!=", "NOT IN"):  # MLflow: some span of the trace does not have it
            positive = {"!=": "=", "NOT IN": "IN"}[op]
            condition = _compare(_SPAN_COLUMNS[key], positive, value, params)
            return f"t.trace_id IN (SELECT trace_id FROM span_index WHERE NOT ({condition}))"
        condition = _compare(_SPAN_COLUMNS[key], op, value, params)
        return f"t.trace_id IN (SELECT trace_id FROM span_index WHERE {condition})"
    raise flt.unsupported(clause, "the local trace store", _SUPPORTED)


def _order_sql(keys: list[flt.OrderKey], params: list[Any]) -> str:
    parts = []
    for key in keys:
        direction = "ASC" if key.ascending else "DESC"
        if key.kind == flt.ATTRIBUTE and key.key in _ORDER_COLUMNS:
            parts.append(f"{_ORDER_COLUMNS[key.key]} {direction}")
            if key.key == "timestamp_ms":  # traces started in the same ms: in the order they were filed
                parts.append(f"t.rowid {direction}")
        elif key.kind in (flt.TAG, flt.METADATA):
            table = "tags" if key.kind == flt.TAG else "metadata"
            if key.kind == flt.TAG and key.key == conv.TRACE_NAME:
                parts.append(f"t.name {direction}")
                continue
            params.append(key.key)
            parts.append(f"(SELECT value FROM {table} WHERE trace_id = t.trace_id AND key = ?) {direction}")
        else:
            raise MlflowException.invalid_parameter_value(
                f"The local trace store cannot order by {key.key!r}."
            )
    if not any(k.kind == flt.ATTRIBUTE and k.key == "timestamp_ms" for k in keys):
        parts.append("t.request_time DESC, t.rowid DESC")
    parts.append("t.trace_id ASC")
    return ", ".join(parts)


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(page_token: Optional[str]) -> int:
    if not page_token:
        return 0
    try:
        return max(0, int(json.loads(base64.urlsafe_b64decode(page_token.encode()))["offset"]))
    except (ValueError, KeyError, TypeError):
        raise MlflowException.invalid_parameter_value(f"Invalid page token {page_token!r}.") from None


class LocalStore:
    """MLflow's read API on the local store (``records/store.py``'s ``TraceStore``)."""

    def __init__(
        self,
        path: str,
        traces_file: Optional[str] = None,
        pending: Optional[PendingAssessments] = None,
        counters: Optional[Counters] = None,
    ) -> None:
        """``pending`` and ``counters``: as the writer's (a read indexes what the file holds beyond
        the store first); a store read outside a traced process (``mlflow-otel show``) counts into
        a table of its own."""
        self.counters = counters if counters is not None else Counters()
        self._db = _Db(path)
        self.path = self._db.path
        self.traces_file = traces_file if traces_file is not None else traces_file_of(self.path)
        self._index = (
            LocalTraceWriter(
                self.path, traces_file=self.traces_file, db=self._db, pending=pending, counters=self.counters
            )
            if self.traces_file
            else None
        )

    def describe(self) -> str:
        return f"the local trace store {self.path}"

    def _conn(self) -> Optional[sqlite3.Connection]:
        """A connection to a store that has indexed every line of the traces file: a read sees each
        trace the file holds, even one whose writer ended (or was killed) before indexing it."""
        index = self._index
        if (
            index is not None
            and os.path.exists(index.traces_file or "")
            and (not self._db.exists() or index.behind())
        ):
            try:
                index.index()
            except OSError as exc:  # the file went away meanwhile: read what is indexed
                warn_limited("store_index", "Could not index %s: %r", self.traces_file, exc)
        if not self._db.exists():
            return None  # nothing written yet: every read is empty
        return self._db.connect()

    @contextlib.contextmanager
    def _readable(self) -> Iterator[None]:
        """A store SQLite cannot read (a damaged file, or not a database) is moved aside and
        rebuilt from the traces file; the call raises ``MlflowException`` saying so (the next one
        reads the rebuilt store), never a raw ``sqlite3`` error."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise self._rebuilt(exc) from None

    def _rebuilt(self, exc: BaseException) -> MlflowException:
        self._db.forget()
        aside = f"{self.path}.damaged-{time.strftime('%Y%m%dT%H%M%S')}"
        try:
            with _REBUILD_LOCK:
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(self.path + suffix):
                        os.replace(self.path + suffix, aside + suffix)
                done = rebuild(self.path, self.traces_file, self.counters) if self.traces_file else None
        except Exception as failed:
            return MlflowException(
                f"{self.describe()} cannot be read ({exc}) and could not be rebuilt: {failed!r}.",
                error_code="INTERNAL_ERROR",
            )
        source = f"rebuilt from {self.traces_file} ({done} traces)" if done is not None else "started anew"
        return MlflowException(
            f"{self.describe()} could not be read ({exc}): it was moved to {aside} and {source}. "
            "Call again to read the rebuilt store.",
            error_code="INTERNAL_ERROR",
        )

    # --- reads -------------------------------------------------------------------------------------
    def get_trace(self, trace_id: str) -> Optional[Trace]:
        with self._readable():
            conn = self._conn()
            if conn is None:
                return None
            rows = self._rows(conn, "t.trace_id = ?", [_normal_id(trace_id)], "", 1, 0, True)
        return rows[0] if rows else None

    def search_traces(
        self,
        experiment_ids: Optional[Sequence[str]],
        filter_string: Optional[str],
        max_results: Optional[int],
        order_by: Optional[Sequence[str]],
        page_token: Optional[str] = None,
        include_spans: bool = True,
    ) -> tuple[list[Trace], Optional[str]]:
        clauses = flt.parse_filter(filter_string)
        keys = flt.parse_order_by(order_by)
        params: list[Any] = []
        where = [_clause_sql(c, params) for c in clauses]
        if experiment_ids:
            ids = [str(e) for e in experiment_ids]
            where.append(f"t.experiment_id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        order = _order_sql(keys, params)
        offset = _offset(page_token)
        limit = max_results if max_results is not None else 1 << 62
        with self._readable():
            conn = self._conn()
            if conn is None:
                return [], None
            traces = self._rows(
                conn, " AND ".join(where) or "1", params, order, limit + 1, offset, include_spans
            )
        if len(traces) > limit:
            return traces[:limit], _token(offset + limit)
        return traces, None

    def _rows(
        self,
        conn: sqlite3.Connection,
        where: str,
        params: list[Any],
        order: str,
        limit: int,
        offset: int,
        include_spans: bool,
    ) -> list[Trace]:
        blob = "t.spans" if include_spans else "NULL"
        sql = f"SELECT {_TRACE_COLUMNS}, {blob} FROM traces t WHERE {where}"
        if order:
            sql += f" ORDER BY {order}"
        sql += " LIMIT ? OFFSET ?"
        rows = conn.execute(sql, [*params, limit, offset]).fetchall()
        if not rows:
            return []
        ids = [r[0] for r in rows]
        tags, metadata, assessments = self._children(conn, ids)
        out = []
        for trace_id, experiment_id, request_time, duration, state, crid, req, resp, spans_blob in rows:
            try:
                spans = _unpack(spans_blob) if spans_blob is not None else []
                state = TraceState(state)
            except (ValueError, TypeError, KeyError, AttributeError, zlib.error) as exc:
                # A row this version cannot use (written by another tool, or damaged): skipped,
                # counted and said, never a failure of the whole read.
                self.counters.add("local_store_unreadable_rows")
                warn_limited(
                    "local_store_row", "Skipped trace %s of %s: unreadable (%r).", trace_id, self.path, exc
                )
                continue
            info = TraceInfo(
                trace_id=trace_id,
                trace_location={
                    "type": "MLFLOW_EXPERIMENT",
                    "mlflow_experiment": {"experiment_id": experiment_id},
                },
                request_time=request_time,
                execution_duration=duration,
                state=state,
                request_preview=req,
                response_preview=resp,
                client_request_id=crid,
                trace_metadata=metadata.get(trace_id, {}),
                tags=tags.get(trace_id, {}),
                assessments=assessments.get(trace_id, []),
            )
            out.append(Trace(info, TraceData(spans)))
        return out

    @staticmethod
    def _children(
        conn: sqlite3.Connection, trace_ids: list[str]
    ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]], dict[str, list[Assessment]]]:
        tags: dict[str, dict[str, str]] = {}
        metadata: dict[str, dict[str, str]] = {}
        assessments: dict[str, list[Assessment]] = {}
        for start in range(0, len(trace_ids), 500):
            chunk = trace_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for trace_id, key, value in conn.execute(
                f"SELECT trace_id, key, value FROM tags WHERE trace_id IN ({marks})", chunk
            ):
                tags.setdefault(trace_id, {})[key] = value
            for trace_id, key, value in conn.execute(
                f"SELECT trace_id, key, value FROM metadata WHERE trace_id IN ({marks})", chunk
            ):
                metadata.setdefault(trace_id, {})[key] = value
            for trace_id, data in conn.execute(
                f"SELECT trace_id, data FROM assessments WHERE trace_id IN ({marks})", chunk
            ):
                assessments.setdefault(trace_id, []).append(Assessment.from_dictionary(json.loads(data)))
        return tags, metadata, assessments

    # --- writes the read API makes -----------------------------------------------------------------
    def _require(self, conn: Optional[sqlite3.Connection], trace_id: str) -> sqlite3.Connection:
        if (
            conn is None
            or conn.execute("SELECT 1 FROM traces WHERE trace_id = ?", (trace_id,)).fetchone() is None
        ):
            raise MlflowException(
                f"Trace with ID '{trace_id}' not found in {self.describe()}.",
                error_code="RESOURCE_DOES_NOT_EXIST",
            )
        return conn

    def delete_traces(
        self,
        experiment_id: Optional[str],
        max_timestamp_millis: Optional[int] = None,
        max_traces: Optional[int] = None,
        trace_ids: Optional[Sequence[str]] = None,
    ) -> int:
        """MLflow's rule: either ``trace_ids``, or ``max_timestamp_millis`` (traces at or before it),
        optionally at most ``max_traces`` of them, oldest first."""
        if trace_ids and (max_timestamp_millis is not None or max_traces is not None):
            raise MlflowException.invalid_parameter_value(
                "Either `max_timestamp_millis` or `trace_ids` can be specified, but not both."
            )
        if not trace_ids and max_timestamp_millis is None:
            raise MlflowException.invalid_parameter_value(
                "Either `max_timestamp_millis` or `trace_ids` must be specified."
            )
        conn = self._conn()
        if conn is None:
            return 0
        where, params = "1", []  # type: ignore[var-annotated]
        if experiment_id is not None:
            where, params = "experiment_id = ?", [str(experiment_id)]
        if trace_ids:
            ids = [_normal_id(t) for t in trace_ids]
            where += f" AND trace_id IN ({','.join('?' * len(ids))})"
            params += ids
        else:
            where += " AND request_time <= ?"
            params.append(int(max_timestamp_millis))  # type: ignore[arg-type]
        sql = f"SELECT trace_id FROM traces WHERE {where} ORDER BY request_time"
        if max_traces is not None:
            sql += f" LIMIT {int(max_traces)}"
        conn.execute("BEGIN IMMEDIATE")
        try:
            doomed = [r[0] for r in conn.execute(sql, params)]
            deleted = _delete(conn, doomed)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return deleted

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        trace_id = _normal_id(trace_id)
        self._require(self._conn(), trace_id).execute(
            "INSERT OR REPLACE INTO tags VALUES (?,?,?)", (trace_id, str(key), str(value))
        )

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        trace_id = _normal_id(trace_id)
        cursor = self._require(self._conn(), trace_id).execute(
            "DELETE FROM tags WHERE trace_id = ? AND key = ?", (trace_id, str(key))
        )
        if cursor.rowcount == 0:
            raise MlflowException(
                f"No trace tag with key '{key}' for trace with ID '{trace_id}'",
                error_code="RESOURCE_DOES_NOT_EXIST",
            )

    def log_assessment(self, trace_id: str, assessment: Assessment) -> Assessment:
        trace_id = _normal_id(trace_id)
        conn = self._require(self._conn(), trace_id)
        assessment.trace_id = trace_id
        if assessment.assessment_id is None:
            assessment.assessment_id = "a-" + uuid.uuid4().hex
        if assessment.valid is None:
            assessment.valid = True
        data = assessment.to_dictionary()
        if assessment.overrides:
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._invalidate(conn, assessment.overrides)
                conn.execute(
                    "INSERT OR REPLACE INTO assessments VALUES (?,?,?)",
                    (assessment.assessment_id, trace_id, json.dumps(data)),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        else:
            conn.execute(
                "INSERT OR REPLACE INTO assessments VALUES (?,?,?)",
                (assessment.assessment_id, trace_id, json.dumps(data)),
            )
        return assessment

    @staticmethod
    def _invalidate(conn: sqlite3.Connection, assessment_id: str) -> None:
        row = conn.execute(
            "SELECT data FROM assessments WHERE assessment_id = ?", (assessment_id,)
        ).fetchone()
        if row is not None:
            data = json.loads(row[0])
            data["valid"] = False
            conn.execute(
                "UPDATE assessments SET data = ? WHERE assessment_id = ?", (json.dumps(data), assessment_id)
            )

    def update_assessment(self, trace_id: str, assessment_id: str, assessment: Assessment) -> Assessment:
        """Replace name, value and rationale of a stored assessment; metadata is merged, the new
        keys winning (MLflow's update)."""
        old = self.get_assessment(trace_id, assessment_id)
        data = old.to_dictionary()
        new = assessment.to_dictionary()
        for key in ("assessment_name", "expectation", "feedback", "rationale"):
            if key in new:
                data[key] = new[key]
        if "metadata" in new:
            data["metadata"] = {**(data.get("metadata") or {}), **new["metadata"]}
        if "expectation" in new:
            data.pop("feedback", None)
        elif "feedback" in new:
            data.pop("expectation", None)
        data["last_update_time"] = new["last_update_time"]
        conn = self._require(self._conn(), _normal_id(trace_id))
        sql = "UPDATE assessments SET data = ? WHERE assessment_id = ?"
        conn.execute(sql, (json.dumps(data), assessment_id))
        return Assessment.from_dictionary(data)

    def get_assessment(self, trace_id: str, assessment_id: str) -> Assessment:
        conn = self._conn()
        row = None
        if conn is not None:
            row = conn.execute(
                "SELECT data FROM assessments WHERE assessment_id = ? AND trace_id = ?",
                (assessment_id, _normal_id(trace_id)),
            ).fetchone()
        if row is None:
            raise MlflowException(
                f"Assessment with ID '{assessment_id}' not found for trace '{trace_id}'",
                error_code="RESOURCE_DOES_NOT_EXIST",
            )
        return Assessment.from_dictionary(json.loads(row[0]))

    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        conn = self._conn()
        if conn is not None:
            conn.execute(
                "DELETE FROM assessments WHERE assessment_id = ? AND trace_id = ?",
                (assessment_id, _normal_id(trace_id)),
            )

    def count(self) -> int:
        conn = self._conn()
        return 0 if conn is None else int(conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0])


_REBUILD_LOCK = threading.Lock()


def rebuild(path: str, traces_file: str, counters: Optional[Counters] = None) -> int:
    """A store at ``path`` indexing the traces file's generations from their start; lines it cannot
    use are skipped. Returns the traces it holds. (The file does not record experiments: every trace
    is filed under the default experiment.)"""
    LocalTraceWriter(path, traces_file=traces_file, counters=counters or Counters()).index()
    return LocalStore(path).count()


def _generation(path: str) -> Optional[tuple[int, int]]:
    """Which file ``path`` is: its inode, and a checksum of its first line (up to 4 KiB), since a
    file created after another was removed may get the same inode. None if there is none."""
    try:
        with open(path, "rb") as fh:
            inode = os.fstat(fh.fileno()).st_ino
            head = fh.read(4096)
    except OSError:
        return None
    cut = head.find(b"\n")
    return inode, zlib.crc32(head[: cut + 1] if cut >= 0 else head)


def _read_lines(name: str, offset: int, until: Optional[int]) -> bytes:
    """Whole lines of ``name`` from ``offset``: about ``INDEX_CHUNK_BYTES`` (more for a longer line),
    up to ``until`` if given (where a line of this process starts: what is before it is whole, a
    torn line included). Empty at the end, or when only part of a line is there yet."""
    with open(name, "rb") as fh:
        fh.seek(offset)
        if until is not None and until - offset <= INDEX_CHUNK_BYTES:
            return fh.read(until - offset)
        data = fh.read(INDEX_CHUNK_BYTES)
        while True:
            cut = data.rfind(b"\n") + 1
            if cut:
                return data[:cut]
            more = fh.read(INDEX_CHUNK_BYTES)
            if not more:
                return b""
            data += more


def _spans_of_lines(data: bytes, counters: Counters) -> Iterator[Mapping[str, Any]]:
    """The spans of whole lines of the traces file (``ExportTraceServiceRequest`` per line); a line
    that is not one (torn by a full disk, another shape) is skipped and counted."""
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            spans = [
                span
                for span in span_objects(request)
                if isinstance(span.get("traceId"), str) and isinstance(span.get("spanId"), str)
            ]
        except (ValueError, TypeError, AttributeError):
            counters.add("local_store_skipped_lines")
            continue
        yield from spans


def _normal_id(trace_id: str) -> str:
    """MLflow's ``tr-<32 hex>``; bare hex is accepted too."""
    text = str(trace_id).strip()
    if not text.startswith("tr-") and len(text) == 32:
        return "tr-" + text.lower()
    return text
