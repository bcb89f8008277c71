"""Nothing lost where users start: the embedded default at exit, multiprocessing children, forks from C.

Each scenario runs a real application process and reads what reached the local file and store (or the
in-test OTLP receiver), with the SDK's own counters (``MLFLOW_OTEL_STATS_FILE``): ended = delivered
+ dropped, and what the sink holds matches.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel._runtime import RUNTIME
from mlflow_otel._telemetry import Counters
from mlflow_otel.pipeline.batch import BatchProcessor
from mlflow_otel.records.local import LocalStore
from mlflow_otel.records.otlp_file import read_spans
from tests.conftest import ROOT


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        MLFLOW_OTEL_STATS_FILE=str(tmp_path / "stats.json"),
        MLFLOW_OTEL_TRACES_FILE=str(tmp_path / "traces.jsonl"),
    )
    env.update(extra)
    return env


def _run(code: str, env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _file_spans(tmp_path: Path) -> list:
    with open(tmp_path / "traces.jsonl", encoding="utf-8") as fh:
        return read_spans(fh)


EVALUATION = """
import sys
import mlflow_otel as mlflow
from mlflow_otel._runtime import RUNTIME

@mlflow.trace
def retrieve(q):
    return [{"page_content": "doc " + q, "metadata": {"k": 1}}]

@mlflow.trace(span_type="LLM")
def llm(q, docs):
    return "answer to " + q

@mlflow.trace
def pipeline(q):
    return llm(q, retrieve(q))

for i in range(int(sys.argv[1])):
    pipeline(f"question {i}")
print("app ok", flush=True)
"""


def test_a_batch_script_that_simply_ends_leaves_every_trace_in_the_file_and_the_store(tmp_path):
    """10,000 traces of 3 spans and no flush: the exit deadline (2 s) bounds remote sinks only; what
    is queued for the local file and store is written whole (it was cut: 12,800 of 30,000 spans)."""
    env = _env(tmp_path)
    done = _run(EVALUATION, env, tmp_path, "10000")
    assert done.returncode == 0 and "app ok" in done.stdout, done.stderr
    assert "not delivered" not in done.stderr, done.stderr
    spans = _file_spans(tmp_path)
    assert len(spans) == 30000
    assert len({s.span_id for s in spans}) == 30000
    # Indexed by the process itself before it ended (no read catching up yet), in its experiment.
    with contextlib.closing(sqlite3.connect(tmp_path / "traces.db")) as db:
        assert db.execute("SELECT COUNT(*) FROM traces WHERE experiment_id = '0'").fetchone()[0] == 10000
    assert LocalStore(str(tmp_path / "traces.db")).count() == 10000
    stats = json.loads((tmp_path / "stats.json").read_text())["counters"]
    assert stats["spans_ended"] == stats["spans_delivered"] == 30000
    assert not [k for k in stats if k.startswith("dropped.")], stats


CHILDREN = """
import multiprocessing as mp, sys, time
import mlflow_otel as mlflow

@mlflow.trace
def work(i):
    with mlflow.start_span("inner"):
        time.sleep(0.002)  # so that both Pool workers take chunks, even on a loaded machine
        return i * 2

def child(n):
    for i in range(n):
        work(i)

if __name__ == "__main__":
    method = sys.argv[1]
    if method == "pool":
        with mp.get_context("fork").Pool(2) as pool:  # __exit__ terminates the workers (SIGTERM)
            assert sum(pool.map(work, range(100))) == 9900
    else:
        process = mp.get_context(method).Process(target=child, args=(100,))
        process.start()
        process.join()
        assert process.exitcode == 0, process.exitcode
    print("app ok", flush=True)
"""


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn", "pool"])
def test_multiprocessing_children_deliver_every_span(tmp_path, method):
    """fork and forkserver children end with ``os._exit`` (no atexit): they flush through
    multiprocessing's own exit path; Pool workers are terminated while they flush (SIGTERM waits
    for the flush). Before: fork 0 of 200 spans, forkserver 0, Pool 50-100."""
    env = _env(tmp_path)
    done = _run(CHILDREN, env, tmp_path, method)
    assert done.returncode == 0 and "app ok" in done.stdout, done.stderr
    spans = _file_spans(tmp_path)
    assert sorted(s.name for s in spans) == ["inner"] * 100 + ["work"] * 100
    assert len({s.span_id for s in spans}) == 200
    # The stats file adds up every process that wrote to it (it kept the last writer's alone).
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["counters"]["spans_ended"] == stats["counters"]["spans_delivered"] == 200
    assert len(stats["processes"]) >= 1 + (method == "pool")


C_FORK = """
import ctypes, os, sys
import mlflow_otel as mlflow

for i in range(5):
    with mlflow.start_span(f"queued-in-parent-{i}"):
        pass
# Nothing has left yet (a 60 s schedule): the child inherits the parent's queued spans.
pid = ctypes.CDLL(None).fork()  # no Python at-fork hook runs: as uWSGI forks its workers
if pid == 0:
    with mlflow.start_span("in-child"):
        pass
    ok = mlflow.flush_trace_async_logging(timeout_s=10)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
with mlflow.start_span("parent-after-fork"):  # the child must not have drawn the same ids
    pass
print("app ok", flush=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_child_forked_from_c_sends_none_of_its_parents_queued_spans(receiver, tmp_path):
    """The parent's queued spans are the parent's to send: the child drops them (every such span
    arrived twice before), and draws ids of its own (Python re-seeds ``random`` only after
    ``os.fork``)."""
    receiver.clear()
    env = _env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint, OTEL_BSP_SCHEDULE_DELAY="60000")
    done = _run(C_FORK, env, tmp_path)
    assert done.returncode == 0 and "app ok" in done.stdout, done.stderr
    receiver.wait_for_spans(7, timeout=10)
    time.sleep(0.5)  # a duplicate would arrive with the child's flush, before the parent's exit
    spans = receiver.spans()
    names = sorted(s.name for s in spans)
    assert names == ["in-child", "parent-after-fork"] + [f"queued-in-parent-{i}" for i in range(5)]
    assert len({s.trace_id for s in spans}) == 7


# --- fast: the drain at exit -------------------------------------------------------------------------
class _SlowExporter(SpanExporter):
    """Takes ``delay_s`` per batch; ``stuck`` makes the next export hang until released."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.exported = 0
        self.stuck = False
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.stuck:
            self.release.wait(10)
        time.sleep(self.delay_s)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


def test_drain_waits_as_long_as_exports_finish():
    """A local sink slower than the stall window in total is still drained whole."""
    exporter = _SlowExporter(0.02)
    stage = BatchProcessor(
        exporter, max_queue_size=10_000, max_export_batch_size=10, schedule_delay_s=60, counters=Counters()
    )
    for _ in range(200):  # 20 batches of 20 ms: 0.4 s, four times the stall window
        stage.on_end_many([object()])  # type: ignore[list-item]
    assert stage.drain(stall_timeout_millis=100)
    assert exporter.exported == 200
    stage.shutdown(1000)


def test_drain_gives_up_after_the_stall_window_without_progress():
    exporter = _SlowExporter(0.0)
    exporter.stuck = True
    stage = BatchProcessor(
        exporter, max_queue_size=100, max_export_batch_size=10, schedule_delay_s=60, counters=Counters()
    )
    for _ in range(30):
        stage.on_end_many([object()])  # type: ignore[list-item]
    start = time.monotonic()
    assert not stage.drain(stall_timeout_millis=200)
    assert time.monotonic() - start < 2
    exporter.release.set()
    stage.shutdown(2000)


# --- files: private, never continuing a torn line -----------------------------------------------------
def test_every_file_holding_traces_is_private_whatever_the_umask(tmp_path):
    """The file, the store with its -wal and -shm, the stats file: 0600 under a umask of 0 (they
    were 0644 under the usual 022); a folder the SDK makes is 0700."""
    env = _env(tmp_path, MLFLOW_OTEL_TRACES_FILE=str(tmp_path / "made" / "here" / "traces.jsonl"))
    code = "import os\nos.umask(0)\n" + EVALUATION
    done = _run(code, env, tmp_path, "10")
    assert done.returncode == 0 and "app ok" in done.stdout, done.stderr
    made = tmp_path / "made"
    files = [made / "here" / n for n in ("traces.jsonl", "traces.db")] + [tmp_path / "stats.json"]
    files += list((made / "here").glob("traces.db-*"))  # gone if the last connection checkpointed
    modes = {f.name: oct(f.stat().st_mode & 0o777) for f in files}
    assert set(modes.values()) == {"0o600"}, modes
    assert oct(made.stat().st_mode & 0o777) == oct((made / "here").stat().st_mode & 0o777) == "0o700"


def test_a_torn_last_line_costs_only_itself(tmp_path):
    """A process killed mid-write (or a full disk) leaves a line without its end: the next batch
    starts on a fresh line, so it stays readable (it was glued to the torn line before)."""
    path = tmp_path / "traces.jsonl"
    path.write_text(
        '{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"scope":{"name":"x"},"spa'
    )
    done = _run(EVALUATION, _env(tmp_path), tmp_path, "5")
    assert done.returncode == 0 and "app ok" in done.stdout, done.stderr
    assert len(_file_spans(tmp_path)) == 15


def test_a_read_only_working_directory_falls_back_to_a_private_folder_of_the_user(monkeypatch):
    from mlflow_otel._settings import default_traces_file

    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as root, no folder is read-only
    path = default_traces_file()
    assert os.path.dirname(path) == os.path.join(tempfile.gettempdir(), f"mlflow-otel-{os.getuid()}")


def test_a_folder_in_a_shared_directory_is_used_only_if_it_is_ours_and_closed(tmp_path):
    """Another user could make the fallback folder first, open to all, and read every trace."""
    from mlflow_otel._files import private_dir

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    private_dir(str(shared / "mine"))
    assert oct((shared / "mine").stat().st_mode & 0o777) == "0o700"
    planted = shared / "planted"
    planted.mkdir()
    planted.chmod(0o777)
    with pytest.raises(PermissionError):
        private_dir(str(planted))
    if os.getuid() == 0:  # CI runs as root: a folder of another user's can be made
        other = shared / "other"
        other.mkdir(0o700)
        os.chown(other, 65534, 65534)  # nobody's
        with pytest.raises(PermissionError):
            private_dir(str(other))


# --- secrets in endpoints and headers ----------------------------------------------------------------
def test_credentials_in_an_endpoints_query_string_are_never_printed_or_stored(tmp_path):
    """``?api_key=`` (a gateway's key) and ``user:password@``: masked in the INFO line, the exit
    report, the warnings about the endpoint and the stats file."""
    endpoint = "http://alice:s3cr3t@127.0.0.1:9/v1/traces?api_key=TOPSECRET&team=a"  # port 9: refused
    env = _env(tmp_path, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=endpoint, MLFLOW_OTEL_EXIT_TIMEOUT_SECONDS="0.5")
    done = _run(EVALUATION, env, tmp_path, "3")
    assert done.returncode == 0 and "app ok" in done.stdout, done.stderr
    stats = (tmp_path / "stats.json").read_text()
    assert "127.0.0.1:9/v1/traces?api_key=REDACTED&team=REDACTED" in stats
    for text in (done.stderr, stats):
        assert "TOPSECRET" not in text and "s3cr3t" not in text and "alice" not in text


def test_a_header_with_a_line_break_is_one_configuration_error(tmp_path, receiver):
    """Every request would fail in the HTTP client and be retried until the deadline: the header
    is left out with one error naming it (not its value), and the spans go."""
    receiver.clear()
    env = _env(
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
        OTEL_EXPORTER_OTLP_HEADERS="x-tenant=acme,authorization=Bearer%20abc%0D%0AX-Evil:%201",
    )
    done = _run(EVALUATION, env, tmp_path, "2")
    assert done.returncode == 0 and "app ok" in done.stdout, done.stderr
    assert done.stderr.count("Skipping header 'authorization'") == 1 and "abc" not in done.stderr
    spans = receiver.wait_for_spans(6, timeout=10)
    assert spans[0].headers.get("x-tenant") == "acme" and "authorization" not in spans[0].headers
    stats = json.loads((tmp_path / "stats.json").read_text())["counters"]
    assert stats.get("retries", 0) == 0 and stats["spans_delivered"] == 6


# --- a damaged store -----------------------------------------------------------------------------------
def test_a_damaged_store_raises_mlflows_error_and_is_rebuilt_from_the_file(tmp_path, monkeypatch):
    """A store SQLite cannot read (a disk fault, another tool) raised a raw sqlite3 error from every
    read, for ever: now one MlflowException saying what happened, and the next read works."""
    from mlflow_otel.exceptions import MlflowException

    done = _run(EVALUATION, _env(tmp_path), tmp_path, "20")
    assert done.returncode == 0, done.stderr
    store = tmp_path / "traces.db"
    for extra in tmp_path.glob("traces.db-*"):
        extra.unlink()
    store.write_bytes(b"this is not a database" * 100)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_OTEL_TRACES_FILE", str(tmp_path / "traces.jsonl"))
    for name in [n for n in os.environ if n.startswith("MLFLOW_TRACKING") or n.startswith("OTEL_EXPORTER")]:
        monkeypatch.delenv(name)
    import mlflow_otel as mlflow

    mlflow.tracing.reset()
    try:
        with pytest.raises(MlflowException, match=r"rebuilt from .*traces.jsonl \(20 traces\)"):
            mlflow.search_traces(return_type="list")
        traces = mlflow.search_traces(return_type="list")
        assert len(traces) == 20 and {len(t.data.spans) for t in traces} == {3}
        assert list(tmp_path.glob("traces.db.damaged-*"))
    finally:
        mlflow.tracing.reset()


def test_a_row_the_store_cannot_use_is_skipped_and_counted(tmp_path):
    import sqlite3

    done = _run(EVALUATION, _env(tmp_path), tmp_path, "3")
    assert done.returncode == 0, done.stderr
    store = LocalStore(str(tmp_path / "traces.db"))
    first = store.search_traces(None, None, None, None)[0][0].info.trace_id
    with sqlite3.connect(tmp_path / "traces.db") as conn:
        conn.execute("UPDATE traces SET spans = ? WHERE trace_id = ?", (b"\x78garbage", first))
    counters = Counters()
    traces, _ = LocalStore(str(tmp_path / "traces.db"), counters=counters).search_traces(
        None, None, None, None
    )
    assert len(traces) == 2 and first not in {t.info.trace_id for t in traces}
    assert counters.get("local_store_unreadable_rows") == 1


def test_a_spooled_request_left_claimed_is_in_doubt_not_reported_lost(tmp_path):
    """A process that ended mid-send left its claim: the request may well have arrived. It is not
    sent again (at most once) and not counted as a drop: the exit report said 1536 spans were
    not delivered for a request that had arrived."""
    from mlflow_otel import tracing
    from mlflow_otel.exporters import spool as spool_module

    spool = spool_module.Spool(
        str(tmp_path), "otlp|http|http://127.0.0.1:1/v1/traces|", 10 << 20, RUNTIME.counters
    )
    assert spool.write(b"request", 7)
    (name,) = [n for n in os.listdir(spool.dir) if n.endswith(spool_module.SUFFIX)]
    claimed = os.path.join(spool.dir, f"{name}{spool_module.CLAIM}999999-dead")
    os.rename(os.path.join(spool.dir, name), claimed)
    old = time.time() - spool_module.STALE_CLAIM_S - 1
    os.utime(claimed, (old, old))
    before = tracing.stats()
    sent: list[bytes] = []
    spool.replay(lambda body: sent.append(body) or ("ok", 0), lambda: False, 10)
    after = tracing.stats()
    assert sent == [] and os.listdir(spool.dir) == []
    assert after.get("spool_in_doubt", 0) - before.get("spool_in_doubt", 0) == 7
    assert {k: v for k, v in after.items() if k.startswith("dropped.")} == {
        k: v for k, v in before.items() if k.startswith("dropped.")
    }
