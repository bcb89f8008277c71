"""Nothing lost, nothing leaked: exit, SIGTERM, outages, forks, unreadable policies.

Each scenario runs a real application process (``python app.py``, gunicorn, uvicorn) against the
in-test receiver (fault injection) or real collectors (Jaeger v2, the repository's collector build,
rotel), and asserts exact accounting from the SDK's own counters (``MLFLOW_OTEL_STATS_FILE``):
produced = delivered + spooled + counted drops, and what the destination holds matches. Every app
prints ``app ok`` after its traced work: nothing raised into it.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Optional

import pytest

from tests.backends import Jaeger, Otelcol, Rotel, free_port, otelcol_binary, wait_until
from tests.conftest import ROOT
from tests.otlp_receiver import OtlpReceiver

#: A traced app: APP_TRACES requests of 2 spans each; APP_MODE picks what happens after.
APP = """
import os, sys, threading, time
import mlflow_otel as mlflow

N = int(os.environ.get("APP_TRACES", "50"))
MODE = os.environ.get("APP_MODE", "")

@mlflow.trace
def step(i):
    return i

@mlflow.trace
def request(i):
    step(i)
    return i

if MODE == "chained":
    pass  # the handler was installed before mlflow_otel was imported (see APP_PRELUDE)
for i in range(N):
    request(i)
if MODE == "open-trace":
    def stuck():
        with mlflow.start_span("still-running"):
            with mlflow.start_span("inner"):
                time.sleep(60)
    threading.Thread(target=stuck, daemon=True).start()
    time.sleep(0.3)
print("app ok", flush=True)
if MODE in ("wait", "chained"):
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not getattr(sys, "stop_requested", False):
        time.sleep(0.05)
    print("app stopped by its handler", flush=True)
"""

#: An application that installs its own SIGTERM handler before importing the SDK.
APP_PRELUDE = """
import signal, sys
def app_handler(signum, frame):
    print("app handler ran", flush=True)
    sys.stop_requested = True
signal.signal(signal.SIGTERM, app_handler)
"""


def _env(tmp_path: Path, endpoint: Optional[str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "MLFLOW_OTEL_STATS_FILE": str(tmp_path / f"stats-{uuid.uuid4().hex[:6]}.json"),
            "MLFLOW_OTEL_TRACES_FILE": str(tmp_path / "traces.jsonl"),
            "OTEL_BSP_SCHEDULE_DELAY": "60000",  # nothing leaves before exit unless a batch fills
        }
    )
    if endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    env.update(extra)
    return env


def _start(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.Popen[str]:
    script = tmp_path / f"app-{uuid.uuid4().hex[:6]}.py"
    script.write_text(code)
    return subprocess.Popen(
        [sys.executable, str(script)], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _run(code: str, env: dict[str, str], tmp_path: Path, timeout: float = 60) -> tuple[int, str, str, float]:
    start = time.monotonic()
    proc = _start(code, env, tmp_path)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err, time.monotonic() - start


def _stats(env: dict[str, str]) -> dict[str, int]:
    return json.loads(Path(env["MLFLOW_OTEL_STATS_FILE"]).read_text())["counters"]


def _drops(stats: dict[str, int]) -> int:
    return sum(v for k, v in stats.items() if k.startswith("dropped."))


#: Drops of spans that had been spooled (exporters/spool.py): they are part of ``spans_spooled``.
SPOOLED_THEN_DROPPED = ("spool_evicted", "spool_rejected", "spool_unreadable")


def _accounted(stats: dict[str, int]) -> int:
    """Where every produced span went, by the SDK's own counters: delivered, spooled, or dropped
    for a counted reason (drops of already spooled spans are inside ``spans_spooled``)."""
    later = sum(stats.get(f"dropped.{r}", 0) for r in SPOOLED_THEN_DROPPED)
    return stats.get("spans_delivered", 0) + stats.get("spans_spooled", 0) + _drops(stats) - later


def _dead_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def fresh(receiver: OtlpReceiver) -> OtlpReceiver:
    receiver.clear()
    return receiver


# --- exit ----------------------------------------------------------------------------------------------
def test_open_traces_at_exit_are_ended_as_error_and_exported(fresh, tmp_path):
    env = _env(tmp_path, fresh.http_endpoint, APP_TRACES="5", APP_MODE="open-trace")
    code, out, err, _ = _run(APP, env, tmp_path)
    assert code == 0 and "app ok" in out, err
    spans = {s.name: s for s in fresh.wait_for_spans(12, timeout=5)}
    assert len(fresh.spans()) == 12  # 5 traces of 2, and the open one (root and child)
    for name in ("still-running", "inner"):
        assert spans[name].status == "ERROR"
        assert "exited before" in spans[name].status_message
    assert spans["inner"].parent_id == spans["still-running"].span_id
    stats = _stats(env)
    assert stats["traces_ended_at_exit"] == 1
    assert stats["spans_started"] == 12 == stats["spans_delivered"] and _drops(stats) == 0
    assert "not delivered" not in err  # nothing dropped: no exit warning


def test_busy_collector_at_exit_gets_its_retries(fresh, tmp_path):
    # The scenario: 503 with Retry-After: 1, twice, as the process exits. The 2 s budget of
    # a healthy exit would run out; a destination that answers gets the busy budget instead.
    fresh.http_faults = [(503, {"Retry-After": "1"}), (503, {"Retry-After": "1"})]
    env = _env(tmp_path, fresh.http_endpoint)
    code, out, err, elapsed = _run(APP, env, tmp_path)
    assert code == 0 and "app ok" in out, err
    assert len(fresh.wait_for_spans(100, timeout=5)) == 100
    stats = _stats(env)
    assert stats["spans_delivered"] == 100 == stats["spans_started"] and _drops(stats) == 0
    assert stats["retries"] == 2
    print(f"busy collector (2 x 503 Retry-After: 1) at exit: delivered in {elapsed:.2f} s")


def test_busy_collector_past_the_budget_is_counted_and_announced(fresh, tmp_path):
    fresh.http_faults = [(503, {"Retry-After": "1"})] * 20
    env = _env(tmp_path, fresh.http_endpoint, MLFLOW_OTEL_EXIT_BUSY_TIMEOUT_SECONDS="2.5")
    code, out, err, elapsed = _run(APP, env, tmp_path)
    assert code == 0 and "app ok" in out, err
    stats = _stats(env)
    assert stats["spans_started"] == 100 == _accounted(stats)
    assert stats["dropped.shutdown"] == 100
    assert err.count("At exit, 100 spans were not delivered (shutdown: 100)") == 1, err
    assert elapsed < 2.5 + 3.0  # the budget, plus interpreter start and import


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_dead_collector_at_exit_is_fast_counted_and_announced_once(tmp_path, protocol):
    env = _env(tmp_path, _dead_endpoint(), APP_TRACES="500", OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    _, _, _, baseline = _run("import mlflow_otel\n", env, tmp_path)
    code, out, err, elapsed = _run(APP, env, tmp_path)
    assert code == 0 and "app ok" in out, err
    stats = _stats(env)
    assert stats["spans_started"] == 1000 == _accounted(stats) == _drops(stats)
    assert err.count("At exit, 1000 spans were not delivered") == 1, err
    print(f"dead collector at exit ({protocol}): {elapsed - baseline:.2f} s beyond import")
    assert elapsed - baseline < 1.0  # refused connections are not retried at exit


def test_long_outage_without_spool_drops_after_the_retry_timeout(tmp_path):
    env = _env(tmp_path, _dead_endpoint(), APP_TRACES="300", MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT="1",
               OTEL_BSP_SCHEDULE_DELAY="50", APP_MODE="")  # fmt: skip
    code, out, err, _ = _run(APP.replace('print("app ok"', 'time.sleep(2.5); print("app ok"'), env, tmp_path)
    assert code == 0 and "app ok" in out, err
    stats = _stats(env)
    assert stats["spans_started"] == 600 == _accounted(stats)
    assert stats["dropped.retry_timeout"] > 0  # the outage outlived the retry timeout


# --- SIGTERM -------------------------------------------------------------------------------------------
def _wait_ready(proc: subprocess.Popen[str]) -> str:
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        lines.append(line)
        if "ready" in line or not line:
            break
    return "".join(lines)


def test_sigterm_flushes_then_dies_of_sigterm(fresh, tmp_path):
    env = _env(tmp_path, fresh.http_endpoint, APP_MODE="wait")
    proc = _start(APP, env, tmp_path)
    assert "app ok" in _wait_ready(proc)
    assert fresh.spans() == []  # a 60 s schedule: nothing left yet
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == -signal.SIGTERM, err  # the supervisor sees the same death
    assert len(fresh.wait_for_spans(100, timeout=5)) == 100
    stats = _stats(env)
    assert stats["spans_delivered"] == 100 == stats["spans_started"]


def test_sigterm_handler_switched_off_loses_the_queue_as_before(fresh, tmp_path):
    env = _env(tmp_path, fresh.http_endpoint, APP_MODE="wait", MLFLOW_OTEL_HANDLE_SIGTERM="false")
    proc = _start(APP, env, tmp_path)
    assert "app ok" in _wait_ready(proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert proc.returncode == -signal.SIGTERM
    time.sleep(0.5)
    assert fresh.spans() == []  # Python's default action: no atexit, nothing flushed


def test_an_application_sigterm_handler_is_chained_not_replaced(fresh, tmp_path):
    env = _env(tmp_path, fresh.http_endpoint, APP_MODE="chained")
    proc = _start(APP_PRELUDE + APP, env, tmp_path)
    assert "app ok" in _wait_ready(proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert "app handler ran" in out and "app stopped by its handler" in out, err
    assert proc.returncode == 0  # the application decided how to stop
    assert len(fresh.wait_for_spans(100, timeout=5)) == 100


def test_docker_stop_sequence_sigterm_then_sigkill_after_grace(fresh, tmp_path):
    # docker stop: SIGTERM, then SIGKILL after the grace period (10 s by default; 5 s here). A busy
    # collector (Retry-After: 1, twice) still gets everything inside the grace period.
    fresh.http_faults = [(503, {"Retry-After": "1"}), (503, {"Retry-After": "1"})]
    env = _env(tmp_path, fresh.http_endpoint, APP_MODE="wait")
    proc = _start(APP, env, tmp_path)
    assert "app ok" in _wait_ready(proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    took = time.monotonic() - sent
    assert proc.returncode == -signal.SIGTERM, f"killed after the grace period ({took:.1f} s)"
    assert len(fresh.wait_for_spans(100, timeout=5)) == 100
    stats = _stats(env)
    assert stats["spans_delivered"] == 100 and _drops(stats) == 0
    print(f"docker-stop sequence, busy collector: SIGTERM to death {took:.2f} s, all 100 spans delivered")


WSGI_APP = """
import mlflow_otel as mlflow

@mlflow.trace
def work(i):
    return i

def app(environ, start_response):
    work(1)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""

ASGI_APP = """
import mlflow_otel as mlflow

@mlflow.trace
def work(i):
    return i

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    work(1)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""


@pytest.mark.parametrize("worker", ["sync", "uvicorn"])
def test_gunicorn_graceful_stop_delivers_every_span(fresh, tmp_path, worker):
    pytest.importorskip("gunicorn")
    if worker == "uvicorn":
        pytest.importorskip("uvicorn")
    (tmp_path / "served.py").write_text(WSGI_APP if worker == "sync" else ASGI_APP)
    port = free_port()
    env = _env(tmp_path, fresh.http_endpoint, PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path}")
    args = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
            "--graceful-timeout", "20", "served:app"]  # fmt: skip
    if worker == "uvicorn":
        args[3:3] = ["--worker-class", "uvicorn.workers.UvicornWorker"]
    server = subprocess.Popen(
        args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:

        def get() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                return r.read() == b"ok"

        wait_until(get, 30, "gunicorn")
        for _ in range(39):
            assert get()
        server.send_signal(signal.SIGTERM)  # graceful stop: workers finish, then exit
        out, _ = server.communicate(timeout=40)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, out
    spans = fresh.wait_for_spans(40, timeout=10)
    assert len(spans) == 40, out  # every request's span, from both workers
    assert "not delivered" not in out


# --- the spool -----------------------------------------------------------------------------------------
def test_spool_keeps_an_outage_for_the_next_run_exactly_once(fresh, tmp_path):
    spool = tmp_path / "spool"
    port = free_port()  # the collector's address: down for run 1
    env1 = _env(tmp_path, f"http://127.0.0.1:{port}", APP_TRACES="200", MLFLOW_OTEL_SPOOL_DIR=str(spool))
    code, out, err, elapsed = _run(APP, env1, tmp_path)
    assert code == 0 and "app ok" in out, err
    run1 = _stats(env1)
    assert run1["spans_started"] == 400 == run1["spans_spooled"] and _drops(run1) == 0
    assert "400 spans spooled" in err or "spooled to" in err
    print(f"run 1, collector down, spool on: exit {elapsed:.2f} s, {run1['spans_spooled']} spans spooled")
    # The collector comes up on the same address; two processes start with the same spool.
    proxy = _Forwarder(port, fresh.http_port).start()
    try:
        envs = [_env(tmp_path, f"http://127.0.0.1:{port}", APP_TRACES="25", MLFLOW_OTEL_SPOOL_DIR=str(spool))
                for _ in range(2)]  # fmt: skip
        procs = [_start(APP, env, tmp_path) for env in envs]
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0 and "app ok" in out, err
    finally:
        proxy.stop()
    runs = [_stats(env) for env in envs]
    spans = fresh.wait_for_spans(400 + 100, timeout=10)
    ids = [s.span_id for s in spans]
    assert len(ids) == len(set(ids)) == 500  # everything, and nothing twice
    assert sum(r.get("spans_replayed", 0) for r in runs) == 400
    assert all(r["spans_delivered"] == 50 and _drops(r) == 0 for r in runs)
    assert not [p for p in spool.rglob("*") if p.is_file()]  # nothing left behind


SAME_PROCESS_SPOOL = """
import os, time
from pathlib import Path
import mlflow_otel as mlflow
from mlflow_otel import tracing

@mlflow.trace
def request(i):
    return i

for i in range(100):
    request(i)
deadline = time.monotonic() + 20
while tracing.stats().get("spans_spooled", 0) < 100 and time.monotonic() < deadline:
    time.sleep(0.05)  # the outage outlives the retry timeout: the requests go to the spool
print("spooled", tracing.stats().get("spans_spooled", 0), flush=True)
while not Path(os.environ["GO_ON"]).exists() and time.monotonic() < deadline + 20:
    time.sleep(0.05)  # the collector comes back
for i in range(10):
    request(i)
assert mlflow.flush_trace_async_logging(timeout_s=20)
print("app ok", flush=True)
"""


def test_spool_is_replayed_by_the_same_process_when_the_collector_is_back(fresh, tmp_path):
    port = free_port()
    go_on = tmp_path / "go-on"
    env = _env(tmp_path, f"http://127.0.0.1:{port}", MLFLOW_OTEL_SPOOL_DIR=str(tmp_path / "spool"),
               MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT="1", OTEL_BSP_SCHEDULE_DELAY="50",
               GO_ON=str(go_on))  # fmt: skip
    proc = _start(SAME_PROCESS_SPOOL, env, tmp_path)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line.strip() == "spooled 100", line + proc.stderr.read()  # type: ignore[union-attr]
    proxy = _Forwarder(port, fresh.http_port).start()
    try:
        go_on.write_text("")
        out, err = proc.communicate(timeout=60)
    finally:
        proxy.stop()
    assert proc.returncode == 0 and "app ok" in out, err
    assert len(fresh.wait_for_spans(110, timeout=10)) == 110
    stats = _stats(env)
    assert stats["spans_spooled"] == 100 == stats["spans_replayed"]
    assert stats["spans_delivered"] == 10 and _drops(stats) == 0


def test_spool_over_its_cap_drops_the_oldest_counted(tmp_path):
    spool = tmp_path / "spool"
    env = _env(tmp_path, _dead_endpoint(), APP_TRACES="400", MLFLOW_OTEL_SPOOL_DIR=str(spool),
               MLFLOW_OTEL_SPOOL_MAX_BYTES="60000", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="100")  # fmt: skip
    code, out, err, _ = _run(APP, env, tmp_path)
    assert code == 0 and "app ok" in out, err
    stats = _stats(env)
    on_disk = sum(int(p.name.split(".otlp")[0].rsplit("-", 1)[1]) for p in spool.rglob("*.otlp"))
    assert stats["dropped.spool_evicted"] > 0
    assert stats["spans_started"] == 800 == stats["spans_spooled"] == _accounted(stats)
    assert on_disk + stats["dropped.spool_evicted"] == 800  # produced = on disk + evicted (counted)
    assert sum(p.stat().st_size for p in spool.rglob("*.otlp")) <= 60000


class _Forwarder:
    """A TCP forwarder on a fixed port: "the collector is back" at the address the app knows."""

    def __init__(self, port: int, target: int) -> None:
        import threading

        self.port, self.target = port, target
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", port))
        self._server.listen(64)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> _Forwarder:
        self._thread.start()
        return self

    def _accept(self) -> None:
        import threading

        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._server.close()


# --- fork from C ---------------------------------------------------------------------------------------
CTYPES_FORK = """
import ctypes, os, sys, time
import mlflow_otel as mlflow

with mlflow.start_span("parent-before-fork"):
    pass
assert mlflow.flush_trace_async_logging(timeout_s=10)
pid = ctypes.CDLL(None).fork()  # no Python at-fork hooks run: as uWSGI forks its workers
if pid == 0:
    for i in range(3):
        with mlflow.start_span(f"in-c-child-{i}"):
            pass
    ok = mlflow.flush_trace_async_logging(timeout_s=10)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
with mlflow.start_span("parent-after-fork"):
    pass
print("app ok", flush=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_child_forked_from_c_exports_its_own_spans(fresh, tmp_path):
    # The schedule stays at its long default (both processes flush explicitly): ctypes releases the
    # GIL around fork(), so a background thread that takes it at that instant (a schedule tick every
    # 100 ms) leaves the child waiting for a GIL its holder never gives back (CPython re-initialises
    # the GIL only in os.fork's child). The test forks with the parent's threads quiet.
    env = _env(tmp_path, fresh.http_endpoint)
    code, out, err, _ = _run(CTYPES_FORK, env, tmp_path)
    assert code == 0 and "app ok" in out, err
    names = sorted(s.name for s in fresh.wait_for_spans(5, timeout=10))
    assert names == [
        "in-c-child-0",
        "in-c-child-1",
        "in-c-child-2",
        "parent-after-fork",
        "parent-before-fork",
    ]


UWSGI_APP = """
import os
import time
import mlflow_otel as mlflow

@mlflow.trace
def work(i):
    return os.getpid()

with mlflow.start_span("loaded-in-master"):  # queued in the master when it forks its workers
    pass

def app(environ, start_response):
    pid = work(1)
    time.sleep(0.1)  # held, so that concurrent requests reach the other worker too
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(pid).encode()]
"""


def test_uwsgi_workers_forked_from_c_export_while_they_run(fresh, tmp_path):
    uwsgi = Path(sys.executable).parent / "uwsgi"
    if not uwsgi.exists():
        pytest.skip("uWSGI is not installed (pip install uwsgi)")
    (tmp_path / "served.py").write_text(UWSGI_APP)
    port = free_port()
    env = _env(tmp_path, fresh.http_endpoint, OTEL_BSP_SCHEDULE_DELAY="100",
               PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path}")  # fmt: skip
    args = [str(uwsgi), "--master", "--processes", "2", "--enable-threads", "--die-on-term",
            "--http-socket", f"127.0.0.1:{port}", "--wsgi-file", str(tmp_path / "served.py"),
            "--callable", "app", "--home", str(Path(sys.executable).parent.parent)]  # fmt: skip
    server = subprocess.Popen(
        args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    pids: set[bytes] = set()
    try:

        def get() -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                return r.read()

        wait_until(get, 30, "uWSGI")
        # Concurrent requests: one worker busy with a request leaves the next to the other (sequential
        # requests may all go to whichever worker accepts first).
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            pids.update(pool.map(lambda _: get(), range(29)))
        # Exported by the workers' own threads while they serve (a 100 ms schedule), not at exit.
        spans = fresh.wait_for_spans(31, timeout=10)
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    assert len(pids) == 2, out
    assert sorted(s.name for s in spans).count("work") == 30, out
    assert [s.name for s in spans].count("loaded-in-master") == 1  # the master's, once


# --- redaction fails closed ----------------------------------------------------------------------------
SSN_APP = """
import mlflow_otel as mlflow
from mlflow_otel.entities import SpanType

@mlflow.trace(span_type=SpanType.LLM)
def lookup(customer):
    mlflow.get_current_active_span().set_attribute("mlflow.chat.tokenUsage", {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7})
    return {"ssn": "078-05-1120"}

lookup({"name": "Ann", "ssn": "078-05-1120"})
print("app ok", flush=True)
"""


@pytest.mark.parametrize(
    ("case", "policy", "prelude"),
    [
        ("missing file", None, ""),
        ("invalid YAML", "blocked_key_patterns: [ssn\n  - oops: [", ""),
        ("invalid regex", "blocked_key_patterns: ['(ssn']\n", ""),
        ("unknown key", "blocked_key_pattern: ['ssn']\n", ""),  # a typo must not protect nothing
        ("no PyYAML", "blocked_key_patterns: ['ssn']\n", "import sys; sys.modules['yaml'] = None\n"),
    ],
)
def test_a_policy_that_cannot_be_loaded_fails_closed(fresh, tmp_path, case, policy, prelude):
    path = tmp_path / "policy.yaml"
    if policy is not None:
        path.write_text(policy)
    env = _env(tmp_path, fresh.http_endpoint, MLFLOW_OTEL_REDACTION_CONFIG=str(path))
    code, out, err, _ = _run(prelude + SSN_APP, env, tmp_path)
    assert code == 0 and "app ok" in out, err
    (span,) = fresh.wait_for_spans(1, timeout=5)
    wire = json.dumps(span.attributes) + json.dumps(span.events)
    assert "078-05-1120" not in wire and "Ann" not in wire, case  # never what the policy should mask
    assert "mlflow.spanInputs" not in span.attributes and "mlflow.spanOutputs" not in span.attributes
    assert span.name == "lookup" and span.attributes["mlflow.spanType"] == "LLM"  # shape kept
    assert "mlflow.chat.tokenUsage" in span.attributes  # usage kept
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "content capture is OFF" in errors[0] and str(path) in errors[0], err


def test_the_shared_yaml_policy_loads_out_of_the_box(fresh, tmp_path):
    env = _env(tmp_path, fresh.http_endpoint,
               MLFLOW_OTEL_REDACTION_CONFIG=str(ROOT / "collector-config" / "redaction-policy.yaml"))  # fmt: skip
    code, out, err, _ = _run(SSN_APP, env, tmp_path)
    assert code == 0 and "app ok" in out, err
    (span,) = fresh.wait_for_spans(1, timeout=5)
    assert "mlflow.spanInputs" in span.attributes and " ERROR " not in err


# --- real collectors: an outage and a restart, with and without the spool -------------------------------
class _Collector:
    """One of the real collectors on a fixed OTLP/HTTP address, stopped and started again at will;
    ``count(service)`` says how many spans of ``service`` reached the end of the line."""

    def __init__(self, kind: str, tmp_path: Path, receiver: OtlpReceiver) -> None:
        self.kind, self.tmp_path, self.receiver = kind, tmp_path, receiver
        self.jaeger: Optional[Jaeger] = None
        self.rotel: Optional[Rotel] = None
        self.otelcol: Optional[Otelcol] = None
        self.http = free_port()
        if kind == "jaeger":
            (tmp_path / "jaeger-store").mkdir(exist_ok=True)
            try:
                self.jaeger = Jaeger(tmp_path / "jaeger-store")
            except FileNotFoundError as exc:
                pytest.skip(str(exc))
            self.http = self.jaeger.http_port
        elif kind == "rotel":
            try:
                self.rotel = Rotel(tmp_path, receiver.grpc_endpoint)
            except FileNotFoundError as exc:
                pytest.skip(str(exc))
            self.http = self.rotel.http_port
        elif kind == "otelcol":
            try:
                otelcol_binary()
            except FileNotFoundError as exc:
                pytest.skip(str(exc))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def start(self) -> None:
        if self.jaeger is not None:
            self.jaeger.start()
        elif self.rotel is not None:
            self.rotel.start()
        elif self.kind == "otelcol":
            upstream = self.receiver.grpc_endpoint.split("://")[1]
            self.otelcol = Otelcol.inline(self.tmp_path, f"otelcol-{self.http}", {"batch": "{timeout: 100ms}"},
                                          upstream, http_port=self.http).start()  # fmt: skip

    def stop(self) -> None:
        for part in (self.jaeger, self.rotel, self.otelcol):
            if part is not None:
                part.stop()

    def count(self, service: str, expected: int) -> int:
        if self.jaeger is not None:
            return len(self.jaeger.wait_for_spans(service, expected, timeout=30))
        spans = [s for s in self.receiver.wait_for_spans(expected, timeout=30)
                 if s.resource.get("service.name") == service]  # fmt: skip
        return len(spans)


@pytest.mark.backend
@pytest.mark.parametrize("kind", ["jaeger", "otelcol", "rotel"])
def test_collector_down_then_up_with_the_spool_loses_nothing(receiver, tmp_path, kind):
    receiver.clear()
    service = f"rel-{kind}-{uuid.uuid4().hex[:6]}"
    collector = _Collector(kind, tmp_path, receiver)
    spool = tmp_path / "spool"
    env1 = _env(tmp_path, collector.endpoint, APP_TRACES="150", MLFLOW_OTEL_SPOOL_DIR=str(spool),
                OTEL_SERVICE_NAME=service)  # fmt: skip
    code, out, err, _ = _run(APP, env1, tmp_path)  # the collector is down
    assert code == 0 and "app ok" in out, err
    run1 = _stats(env1)
    assert run1["spans_started"] == 300 == run1["spans_spooled"] and _drops(run1) == 0
    collector.start()
    try:
        env2 = _env(tmp_path, collector.endpoint, APP_TRACES="50", MLFLOW_OTEL_SPOOL_DIR=str(spool),
                    OTEL_SERVICE_NAME=service)  # fmt: skip
        code, out, err, _ = _run(APP, env2, tmp_path)
        assert code == 0 and "app ok" in out, err
        run2 = _stats(env2)
        assert run2["spans_replayed"] == 300 and run2["spans_delivered"] == 100 and _drops(run2) == 0
        # produced = delivered + counted drops, across both runs, and the backend holds exactly that
        assert collector.count(service, 400) == 400 == run2["spans_delivered"] + run2["spans_replayed"]
    finally:
        collector.stop()


@pytest.mark.backend
@pytest.mark.parametrize("kind", ["jaeger", "otelcol", "rotel", "receiver"])
def test_collector_outage_without_spool_is_counted_exactly(receiver, tmp_path, kind):
    """A collector down for the whole run (no spool): every span is a counted drop, announced once,
    exit stays fast; then the collector is up and a second run is delivered whole."""
    receiver.clear()
    service = f"out-{kind}-{uuid.uuid4().hex[:6]}"
    if kind == "receiver":
        endpoint, collector = receiver.http_endpoint, None
        dead = _dead_endpoint()
    else:
        collector = _Collector(kind, tmp_path, receiver)
        endpoint = dead = collector.endpoint
    env1 = _env(tmp_path, dead, APP_TRACES="100", OTEL_SERVICE_NAME=service)
    code, out, err, _ = _run(APP, env1, tmp_path)
    assert code == 0 and "app ok" in out, err
    run1 = _stats(env1)
    assert run1["spans_started"] == 200 == _drops(run1) == _accounted(run1)
    assert err.count("At exit, 200 spans were not delivered") == 1
    if collector is not None:
        collector.start()
    try:
        env2 = _env(tmp_path, endpoint, APP_TRACES="100", OTEL_SERVICE_NAME=service)
        code, out, err, _ = _run(APP, env2, tmp_path)
        assert code == 0 and "app ok" in out, err
        run2 = _stats(env2)
        assert run2["spans_delivered"] == 200 == run2["spans_started"] and _drops(run2) == 0
        got = collector.count(service, 200) if collector is not None else len(receiver.wait_for_spans(200))
        assert got == 200
    finally:
        if collector is not None:
            collector.stop()


# --- many destinations -----------------------------------------------------------------------------------
#: One trace per tenant, each routed to the tenant's own destination (issue's pattern: one OTLP
#: endpoint/header set or one MLflow experiment per tenant); threads and open files measured.
TENANTS_APP = """
import json, os, sys, threading, time
from mlflow_otel.pipeline import workers
workers.IDLE_S = 1.0  # close idle connections within the test's patience (30 s by default)
import mlflow_otel as mlflow
from mlflow_otel.destinations import MlflowExperimentLocation, OtlpDestination

def fds():
    return len(os.listdir("/proc/self/fd"))

mode, target, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "otlp":
    dests = [OtlpDestination(target, headers={"x-tenant": f"t{i}"}) for i in range(n)]
else:
    mlflow.set_tracking_uri(target)
    ids = [mlflow.set_experiment(f"tenant-{sys.argv[4]}-{i}").experiment_id for i in range(n)]
    dests = [MlflowExperimentLocation(experiment_id=e) for e in ids]
    mlflow.set_experiment(f"tenant-{sys.argv[4]}-home")  # the process-wide destination
with mlflow.start_span("warm-up"):  # the pipeline and its first connection, before counting
    pass
mlflow.flush_trace_async_logging()
base_threads, base_fds = threading.active_count(), fds()
peak_threads = 0
for i, dest in enumerate(dests):
    @mlflow.trace(name=f"tenant-{i}", trace_destination=dest)
    def handle(i=i):
        with mlflow.start_span("work"):
            return i
    handle()
    peak_threads = max(peak_threads, threading.active_count())
assert mlflow.flush_trace_async_logging(timeout_s=60)
peak_threads = max(peak_threads, threading.active_count())
flushed_fds = fds()
time.sleep(3.0)  # idle: extra threads end, connections close
from mlflow_otel import _runtime
print(json.dumps({"base_threads": base_threads, "base_fds": base_fds, "peak_threads": peak_threads,
                  "flushed_fds": flushed_fds, "idle_threads": threading.active_count(), "idle_fds": fds(),
                  "pool_max": _runtime.running().pipeline.pool.max_threads,
                  "stats": mlflow.tracing.stats()}))
"""


def _tenants(tmp_path: Path, *args: str) -> dict:
    env = _env(tmp_path, None, OTEL_BSP_SCHEDULE_DELAY="200", OTEL_SERVICE_NAME="tenants")
    script = tmp_path / "tenants.py"
    script.write_text(TENANTS_APP)
    proc = subprocess.run([sys.executable, str(script), *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_forty_tenants_share_a_few_export_threads_and_release_their_sockets(jaeger, tmp_path):
    # Before: 2 threads and a socket per destination, never released (40 tenants -> 83 threads).
    result = _tenants(tmp_path, "otlp", jaeger.otlp_http + "/v1/traces", "40")
    # The pool: at most 4 threads (2 x MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS) beside what was there.
    assert result["peak_threads"] - result["base_threads"] <= 3, result
    # Connections of idle destinations are closed; the extra threads end.
    assert result["idle_fds"] <= result["base_fds"], result
    assert result["idle_threads"] <= result["base_threads"], result
    counters = result["stats"]
    assert counters["spans_delivered"] == 1 + 40 * 2 and not any(k.startswith("dropped") for k in counters)
    spans = jaeger.wait_for_spans("tenants", 81)
    assert {s["operationName"] for s in spans} >= {f"tenant-{i}" for i in range(40)}


def test_tenants_on_mlflow_experiments_share_the_pool(mlflow_server, tmp_path):
    run = uuid.uuid4().hex[:6]
    result = _tenants(tmp_path, "mlflow", mlflow_server.uri, "12", run)
    assert result["peak_threads"] - result["base_threads"] <= 3, result
    assert result["idle_fds"] <= result["base_fds"], result
    for i in range(12):
        (trace,) = mlflow_server.wait_for_traces(f"tenant-{run}-{i}", 1)
        assert {s["name"] for s in trace["spans"]} == {f"tenant-{i}", "work"}
