"""The export pipeline against an OTLP receiver with fault injection: sampling, queueing, retries,
size limits, deadlines, fork, routing, self-telemetry."""

from __future__ import annotations

import json
import random
import threading
import time

import grpc
import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel.destinations import OtlpDestination
from mlflow_otel.spans.sampling import TraceRatioSampler
from tests.conftest import run_python
from tests.otlp_receiver import OtlpReceiver


@pytest.fixture
def fresh_receiver():
    r = OtlpReceiver().start()
    yield r
    r.stop()


def use(monkeypatch, receiver, protocol="http/protobuf", **env):
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        receiver.http_endpoint if protocol != "grpc" else receiver.grpc_endpoint,
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    tracing.reset()


# --- sampling ----------------------------------------------------------------------------------------


def test_sampler_decides_exactly_as_the_otel_sdk_rule():
    ours, sdk = TraceRatioSampler(0.3), TraceIdRatioBased(0.3)
    rng = random.Random(7)
    for _ in range(5000):
        tid = rng.getrandbits(128)
        assert ours.should_sample(None, tid, "x").decision == sdk.should_sample(None, tid, "x").decision


def test_ratio_keeps_or_drops_whole_traces(monkeypatch, fresh_receiver):
    use(monkeypatch, fresh_receiver, MLFLOW_TRACE_SAMPLING_RATIO="0.5")
    all_ids = []

    @mlflow.trace
    def child():
        span = mlflow.get_current_active_span()
        span.set_attribute("k", "v")  # a no-op on a sampled-out span, never an AttributeError
        return 1

    @mlflow.trace
    def root():
        all_ids.append(mlflow.get_current_active_span().trace_id[3:])
        return child()

    for _ in range(200):
        root()
    assert mlflow.flush_trace_async_logging()
    spans = fresh_receiver.wait_for_spans(1)
    rule = TraceIdRatioBased(0.5)
    expected = {
        t for t in all_ids if rule.should_sample(None, int(t, 16), "r").decision == Decision.RECORD_AND_SAMPLE
    }
    by_trace: dict[str, set[str]] = {}
    for s in spans:
        by_trace.setdefault(s.trace_id, set()).add(s.name)
    assert set(by_trace) == expected
    assert 60 < len(expected) < 140
    assert all(names == {"root", "child"} for names in by_trace.values())
    stats = tracing.stats()
    assert stats["spans_sampled_out"] == 2 * (200 - len(expected))


def test_otel_sampler_env_and_mlflow_ratio_precedence(monkeypatch, fresh_receiver):
    use(
        monkeypatch,
        fresh_receiver,
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
    )
    with mlflow.start_span("dropped"):
        pass
    assert mlflow.flush_trace_async_logging()
    assert fresh_receiver.spans() == []
    use(monkeypatch, fresh_receiver, MLFLOW_TRACE_SAMPLING_RATIO="1.0")  # beats OTEL_TRACES_SAMPLER
    with mlflow.start_span("kept"):
        pass
    assert mlflow.flush_trace_async_logging()
    assert [s.name for s in fresh_receiver.wait_for_spans(1)] == ["kept"]


def test_sampling_ratio_override_at_the_root(monkeypatch, fresh_receiver):
    use(monkeypatch, fresh_receiver, MLFLOW_TRACE_SAMPLING_RATIO="0")

    @mlflow.trace(sampling_ratio_override=1.0)
    def important():
        return helper()

    @mlflow.trace(sampling_ratio_override=0.0)  # ignored: not a root
    def helper():
        return 1

    @mlflow.trace
    def ordinary():
        return 1

    important()
    ordinary()
    assert mlflow.flush_trace_async_logging()
    spans = fresh_receiver.wait_for_spans(2)
    assert sorted(s.name for s in spans) == ["helper", "important"]
    assert all("mlflow_otel.sampling_ratio_override" not in s.attributes for s in spans)


@pytest.mark.parametrize(("flags", "kept"), [("01", True), ("00", False)])
def test_parent_decision_from_another_process_is_followed(monkeypatch, fresh_receiver, flags, kept):
    use(monkeypatch, fresh_receiver, MLFLOW_TRACE_SAMPLING_RATIO="0.5")
    # Trace ids picked so that our own ratio would decide the other way: the caller's decision wins.
    trace_id = "f" * 16 + ("0" * 16 if not kept else "f" * 16)
    carrier = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-{flags}"}
    token = otel_context.attach(propagate.extract(carrier))
    try:
        with mlflow.start_span("downstream"):
            pass
    finally:
        otel_context.detach(token)
    assert mlflow.flush_trace_async_logging()
    time.sleep(0.1)
    assert [s.trace_id for s in fresh_receiver.spans()] == ([trace_id] if kept else [])


# --- queue and drops -------------------------------------------------------------------------------


def test_full_queue_drops_are_counted_and_accounting_is_exact(monkeypatch, fresh_receiver, caplog):
    fresh_receiver.delay_s = 0.3  # a slow collector
    use(
        monkeypatch,
        fresh_receiver,
        MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE=20,
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE=10,
    )

    @mlflow.trace
    def work(i):
        return i

    start = time.monotonic()
    for i in range(300):
        work(i)
    app_time = time.monotonic() - start
    assert app_time < 2.0  # the app thread never waited for the slow collector
    # Drops may still happen while it waits (then it says False); it waits for the rest either way.
    mlflow.flush_trace_async_logging(timeout_s=30)
    stats = tracing.stats()
    delivered = len(fresh_receiver.spans())
    assert stats["dropped.queue_full"] > 0
    assert delivered == stats["spans_delivered"]
    assert delivered + stats["dropped.queue_full"] == 300
    assert caplog.text.count("queue for") == 1  # rate-limited warning


# --- retries -----------------------------------------------------------------------------------------


def test_503_with_retry_after_is_retried_then_delivered(monkeypatch, fresh_receiver):
    fresh_receiver.http_faults = [(503, {"Retry-After": "1"}), (429, {"Retry-After": "0"})]
    use(monkeypatch, fresh_receiver)
    with mlflow.start_span("root"):  # one trace: one request, whatever the machine's load
        for i in range(4):
            with mlflow.start_span(f"s{i}"):
                pass
    assert mlflow.flush_trace_async_logging(timeout_s=20)
    assert len(fresh_receiver.wait_for_spans(5)) == 5
    attempts = fresh_receiver.attempts
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.95  # Retry-After honoured
    stats = tracing.stats()
    # Exactly two retries reached the receiver (above); the process-wide counter may also hold a
    # retry of an earlier test's pipeline still shutting down on this xdist worker.
    assert stats["retries"] >= 2 and stats["spans_delivered"] == 5


def test_400_is_not_retried_and_is_counted(monkeypatch, fresh_receiver, caplog):
    fresh_receiver.http_faults = [(400, {})]
    use(monkeypatch, fresh_receiver)
    with mlflow.start_span("rejected"):
        pass
    assert not mlflow.flush_trace_async_logging(timeout_s=10) or True
    assert len(fresh_receiver.attempts) == 1
    assert tracing.stats()["dropped.rejected"] == 1
    assert "HTTP 400" in caplog.text
    with mlflow.start_span("later"):
        pass
    assert mlflow.flush_trace_async_logging()
    assert [s.name for s in fresh_receiver.wait_for_spans(1)] == ["later"]


def test_grpc_unavailable_with_retry_info(monkeypatch, fresh_receiver):
    fresh_receiver.grpc_faults = [
        (grpc.StatusCode.UNAVAILABLE, 0.6),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 0.1),
    ]
    use(monkeypatch, fresh_receiver, protocol="grpc")
    with mlflow.start_span("retried"):
        pass
    assert mlflow.flush_trace_async_logging(timeout_s=20)
    assert [s.name for s in fresh_receiver.wait_for_spans(1)] == ["retried"]
    a = fresh_receiver.attempts
    assert len(a) == 3 and a[1] - a[0] >= 0.55
    # Two answered retries; a loaded machine can add one more before the channel connects.
    assert tracing.stats()["retries"] >= 2


def test_grpc_invalid_argument_is_not_retried(monkeypatch, fresh_receiver):
    fresh_receiver.grpc_faults = [(grpc.StatusCode.INVALID_ARGUMENT, None)]
    use(monkeypatch, fresh_receiver, protocol="grpc")
    with mlflow.start_span("bad"):
        pass
    mlflow.flush_trace_async_logging(timeout_s=5)
    assert len(fresh_receiver.attempts) == 1
    assert tracing.stats()["dropped.rejected"] == 1


def test_flush_deadline_is_honoured_while_retrying(monkeypatch, fresh_receiver):
    fresh_receiver.http_faults = [(503, {})] * 1000
    use(monkeypatch, fresh_receiver)
    with mlflow.start_span("stuck"):
        pass
    start = time.monotonic()
    assert mlflow.flush_trace_async_logging(timeout_s=0.5) is False
    assert time.monotonic() - start < 0.9


# --- size limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize("client_side_limit", [True, False])
def test_5mb_span_to_4mib_grpc_receiver_small_ones_delivered(monkeypatch, fresh_receiver, client_side_limit):
    env = {} if client_side_limit else {"MLFLOW_OTEL_MAX_REQUEST_BYTES": 64 * 1024 * 1024}
    # Trimming (which would shrink the span to fit) is set out of the way: this is the exporter's test.
    env.update(MLFLOW_OTEL_MAX_ATTRIBUTE_BYTES=10**9, MLFLOW_OTEL_MAX_SPAN_BYTES=10**9)
    use(monkeypatch, fresh_receiver, protocol="grpc", OTEL_BSP_SCHEDULE_DELAY=60000, **env)
    for i in range(10):
        with mlflow.start_span(f"small-{i}"):
            pass
    with mlflow.start_span("huge") as span:
        span.set_inputs("x" * (5 * 1024 * 1024))
    for i in range(10, 20):
        with mlflow.start_span(f"small-{i}"):
            pass
    mlflow.flush_trace_async_logging(timeout_s=30)
    names = {s.name for s in fresh_receiver.wait_for_spans(20)}
    assert names == {f"small-{i}" for i in range(20)}
    assert tracing.stats()["dropped.too_large"] == 1


def test_http_413_splits_the_batch(monkeypatch, fresh_receiver):
    fresh_receiver.max_http_body = 60_000
    use(monkeypatch, fresh_receiver, OTEL_BSP_SCHEDULE_DELAY=60000)
    for i in range(40):
        with mlflow.start_span(f"s{i}") as span:
            span.set_inputs("y" * 5000)
    assert mlflow.flush_trace_async_logging(timeout_s=20)
    assert len(fresh_receiver.wait_for_spans(40)) == 40
    assert tracing.stats().get("dropped.too_large", 0) == 0


# --- routing -------------------------------------------------------------------------------------------


def test_trace_destination_and_context_local_routing(monkeypatch, fresh_receiver, receiver):
    receiver.clear()
    use(monkeypatch, receiver)  # the default destination
    other = OtlpDestination(endpoint=f"{fresh_receiver.http_endpoint}/v1/traces")

    @mlflow.trace(trace_destination=other)
    def routed():
        return inner()

    @mlflow.trace
    def inner():
        return 1

    routed()
    with mlflow.start_span("default-route"):
        pass

    def in_thread():
        tracing.set_destination(other, context_local=True)
        with mlflow.start_span("thread-routed"):
            pass

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    with mlflow.start_span("still-default"):
        pass
    assert mlflow.flush_trace_async_logging()
    assert sorted(s.name for s in fresh_receiver.wait_for_spans(3)) == ["inner", "routed", "thread-routed"]
    assert sorted(s.name for s in receiver.wait_for_spans(2)) == ["default-route", "still-default"]


def test_dead_destination_does_not_stall_the_other(monkeypatch, fresh_receiver):
    from tests.backends import free_port

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nobody there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_receiver.http_endpoint)  # an "MLflow server"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "7")
    monkeypatch.setenv("MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT", "true")  # MLflow's switch for both
    tracing.reset()
    for i in range(20):
        with mlflow.start_span(f"s{i}"):
            pass
    spans = fresh_receiver.wait_for_spans(20, timeout=5)
    assert len(spans) == 20
    assert spans[0].headers["x-mlflow-experiment-id"] == "7"
    from tests.backends import wait_until

    # The live destination's exporter counts once the receiver has answered; the dead one adds nothing.
    wait_until(lambda: tracing.stats().get("spans_delivered", 0) == 20, 5, "delivery count")


# --- fork and exit -------------------------------------------------------------------------------------


def test_forked_child_exports_its_own_spans(receiver, tmp_path):
    receiver.clear()
    code = """
import os, sys
import mlflow_otel as mlflow
with mlflow.start_span("parent-before-fork"):
    pass
pid = os.fork()
if pid == 0:
    with mlflow.start_span("in-child"):
        pass
    ok = mlflow.flush_trace_async_logging(timeout_s=10)
    os._exit(0 if ok else 3)
with mlflow.start_span("parent-after-fork"):
    pass
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    for protocol, endpoint in (("http/protobuf", receiver.http_endpoint), ("grpc", receiver.grpc_endpoint)):
        receiver.clear()
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
        result = run_python(code, env, tmp_path)
        assert result.returncode == 0, result.stderr
        names = sorted(s.name for s in receiver.wait_for_spans(3))
        assert names == ["in-child", "parent-after-fork", "parent-before-fork"], protocol


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_exit_with_dead_collector_is_fast_and_drops_are_counted(tmp_path, protocol):
    from tests.backends import free_port

    code = """
import mlflow_otel as mlflow
@mlflow.trace
def handler(i): return i
for i in range(1000): handler(i)
"""
    stats_file = tmp_path / "stats.json"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "MLFLOW_OTEL_STATS_FILE": str(stats_file),
    }
    start = time.monotonic()
    run_python("import mlflow_otel\n", env, tmp_path)
    baseline = time.monotonic() - start
    start = time.monotonic()
    result = run_python(code, env, tmp_path)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    print(f"exit with dead collector ({protocol}): {elapsed:.2f}s vs {baseline:.2f}s for import only")
    # Nothing listens: at exit a refused connection is not retried, so exit costs about one
    # connection attempt per batch, far below MLFLOW_OTEL_EXIT_TIMEOUT_SECONDS (2 s).
    assert elapsed - baseline < 1.0
    counters = json.loads(stats_file.read_text())["counters"]
    assert counters["spans_started"] == 1000
    assert sum(v for k, v in counters.items() if k.startswith("dropped.")) == 1000


def test_joining_the_applications_global_provider(receiver, tmp_path):
    receiver.clear()
    code = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
trace.set_tracer_provider(TracerProvider())  # the app's provider, e.g. for FastAPI instrumentation
import mlflow_otel as mlflow
app_tracer = trace.get_tracer("fastapi-like")
with app_tracer.start_as_current_span("GET /chat"):
    with mlflow.start_span("agent"):
        with app_tracer.start_as_current_span("httpx POST"):
            pass
mlflow.flush_trace_async_logging()
"""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint,
        "MLFLOW_USE_DEFAULT_TRACER_PROVIDER": "false",
    }
    result = run_python(code, env, tmp_path)
    assert result.returncode == 0, result.stderr
    spans = {s.name: s for s in receiver.wait_for_spans(3)}
    assert set(spans) == {"GET /chat", "agent", "httpx POST"}  # one pipeline for all of them
    assert spans["agent"].parent_id == spans["GET /chat"].span_id
    assert spans["httpx POST"].parent_id == spans["agent"].span_id


# --- self-telemetry ----------------------------------------------------------------------------------


def test_stats_are_readable_and_written_for_the_cli(monkeypatch, tmp_path, capsys):
    from mlflow_otel import cli

    with mlflow.start_span("counted"):
        pass
    assert mlflow.flush_trace_async_logging()
    stats = tracing.stats()
    assert stats["spans_started"] == 1 and stats["spans_exported"] == 1
    path = tmp_path / "traces.jsonl.stats.json"
    data = json.loads(path.read_text())
    assert data["counters"]["spans_exported"] == 1
    assert cli.main(["stats"]) == 0
    out = capsys.readouterr().out
    assert "spans_exported" in out and "1" in out


def test_queue_shrinks_while_the_destination_is_unreachable_and_recovers(monkeypatch):
    """A dead collector keeps a quarter of the queue (bounded memory); once it answers again the
    whole queue is available for bursts."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from mlflow_otel import _runtime
    from mlflow_otel._runtime import RUNTIME

    COUNTERS = RUNTIME.counters
    from tests.backends import free_port

    class Accepting(BaseHTTPRequestHandler):  # an empty body is an empty ExportTraceServiceResponse
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    port = free_port()  # nothing listens here yet
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "400")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10")
    tracing.reset()

    @mlflow.trace
    def one(i):
        return i

    one(0)  # the first batch meets the closed port
    processor = _runtime.running().pipeline.router.defaults[0]
    deadline = time.monotonic() + 10
    while processor.queue_limit != 100 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processor.queue_limit == 100  # a quarter of 400
    for i in range(300):
        one(i)
    # The spans reach the destination's queue once the process stage has run the chain.
    assert _runtime.running().pipeline.process.force_flush(5000)
    assert processor.queued <= 100
    # 301 spans: at most 100 queued and two batches of 10 held by the workers' retries.
    assert COUNTERS.snapshot()["dropped.queue_full"] >= 301 - 100 - 2 * 10
    server = ThreadingHTTPServer(("127.0.0.1", port), Accepting)  # the collector comes back
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while processor.queue_limit != 400 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processor.queue_limit == 400
    finally:
        server.shutdown()
        server.server_close()


def test_destinations_that_cannot_be_hashed_still_get_their_traces(receiver):
    """``OtlpDestination(headers={...})`` and an exporter with ``__eq__`` but no ``__hash__``: the
    router cannot cache them by value, and routes them anyway (a failed batch loses every trace)."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from mlflow_otel.destinations import OtlpDestination

    class Unhashable(InMemorySpanExporter):
        def __eq__(self, other):
            return self is other

        __hash__ = None  # type: ignore[assignment]

    memory = Unhashable()
    receiver.clear()
    tracing.reset()
    tenant = OtlpDestination(f"{receiver.http_endpoint}/v1/traces", headers={"x-tenant": "a"})
    tracing.set_destination([memory, tenant])
    with mlflow.start_span("routed"):
        pass
    with mlflow.start_span("again"):
        pass
    assert mlflow.flush_trace_async_logging(timeout_s=10)
    assert sorted(s.name for s in memory.get_finished_spans()) == ["again", "routed"]
    assert sorted(s.name for s in receiver.wait_for_spans(2)) == ["again", "routed"]
    assert OtlpDestination("http://x/v1/traces", headers={"b": "2", "a": "1"}).headers == (
        ("a", "1"),
        ("b", "2"),
    )


def test_a_failing_process_stage_counts_every_span_of_its_traces(receiver, monkeypatch):
    from mlflow_otel.pipeline.route import Router

    def broken(self, spans, destinations):
        raise RuntimeError("routing failed")

    receiver.clear()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint)
    tracing.reset()
    monkeypatch.setattr(Router, "route", broken)
    with mlflow.start_span("root"):
        for name in ("a", "b"):
            with mlflow.start_span(name):
                pass
    mlflow.flush_trace_async_logging(timeout_s=5)
    stats = tracing.stats()
    assert stats["spans_started"] == 3 and stats["dropped.export_error"] == 3  # spans, not traces


def test_destinations_that_refuse_connections_do_not_hold_up_the_others(receiver, monkeypatch):
    # Export threads are shared by every destination (pipeline/workers.py). Three tenants whose
    # collectors are down each hold one thread while retrying; the live tenants' traces still leave
    # on schedule, and each dead tenant's spans stay counted in its own bounded queue.
    from mlflow_otel import _runtime
    from tests.backends import free_port

    receiver.clear()
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT", "30")
    tracing.reset()
    dead = [OtlpDestination(f"http://127.0.0.1:{free_port()}/v1/traces") for _ in range(3)]
    live = [
        OtlpDestination(f"{receiver.http_endpoint}/v1/traces", headers={"x-tenant": f"t{i}"})
        for i in range(5)
    ]
    for i, dest in enumerate(dead):

        @mlflow.trace(name=f"dead-{i}", trace_destination=dest)
        def to_dead() -> None:
            pass

        to_dead()
    time.sleep(0.5)  # their exports are in retry backoff now
    start = time.monotonic()
    for i, dest in enumerate(live):

        @mlflow.trace(name=f"live-{i}", trace_destination=dest)
        def to_live() -> None:
            pass

        to_live()
    got = receiver.wait_for_spans(5, timeout=10)
    elapsed = time.monotonic() - start
    assert sorted(s.name for s in got) == [f"live-{i}" for i in range(5)]
    assert elapsed < 3.0, elapsed  # the schedule (0.1 s), not the dead tenants' retries (30 s)
    pipeline = _runtime.running().pipeline
    assert pipeline.pool.threads <= pipeline.pool.max_threads == 4
    assert tracing.stats().get("retries", 0) >= 3


def test_terminate_shuts_down_and_keeps_what_code_set_and_open_traces(fresh_receiver, monkeypatch, tmp_path):
    use(monkeypatch, fresh_receiver)
    added = tmp_path / "added.jsonl"
    tracing.add_destination(mlflow.destinations.FileDestination(str(added)))
    started, release = threading.Event(), threading.Event()

    def other_thread() -> None:
        with mlflow.start_span("open_on_another_thread"):
            started.set()
            release.wait(10)

    worker = threading.Thread(target=other_thread)
    worker.start()
    assert started.wait(10)
    assert mlflow.flush_trace_async_logging(terminate=True)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # not re-read
    release.set()
    worker.join(10)
    tracing.disable()
    mlflow.flush_trace_async_logging(terminate=True)
    with mlflow.start_span("while_disabled"):
        pass
    tracing.enable()
    with mlflow.start_span("after"):
        pass
    assert mlflow.flush_trace_async_logging(timeout_s=10)
    names = sorted(s.name for s in fresh_receiver.wait_for_spans(2, 10))
    assert names == ["after", "open_on_another_thread"]
    assert "open_on_another_thread" in added.read_text() and "while_disabled" not in added.read_text()


def test_destinations_the_chains_last_spans_open_are_stopped_with_a_replaced_pipeline(monkeypatch):
    """A pipeline replaced (``tracing.reset``, new settings) runs its chain one last time; the
    destinations that opens are stopped with it, or their retries (up to the retry timeout) would
    outlive it and count drops into a later pipeline's flush."""
    from mlflow_otel._runtime import running

    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # the chain runs only when flushed
    tracing.reset()

    @mlflow.trace
    def handler(i: int) -> int:
        tracing.set_destination(OtlpDestination(f"http://127.0.0.1:9/v1/traces?tenant={i}"))  # refused
        return i

    for i in range(3):
        handler(i)
    pipeline = running().pipeline
    before = pipeline.router.stages()  # the default destination's: nothing routed yet
    tracing.reset()
    opened = [stage for stage in pipeline.router.stages() if stage not in before]
    assert len(opened) == 3 and all(stage._shutdown for stage in opened)
