"""The ``mlflow_traces`` pytest fixture (``mlflow_otel/pytest_plugin.py``, ``mlflow_otel/testing.py``):
traces captured after the whole pipeline and sent nowhere else; the wait for traces other threads
and asyncio tasks still produce; ``spans`` / ``clear`` / ``get_trace``; and a real pytest run with
pytest-xdist workers, the plugin found through its ``pytest11`` entry point."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel.entities import SpanType
from mlflow_otel.testing import TraceCapture

ROOT = Path(__file__).resolve().parent.parent


@mlflow.trace(span_type=SpanType.CHAT_MODEL)
def chat(message: str) -> str:
    return f"echo {message}"


@mlflow.trace(span_type=SpanType.TOOL)
def lookup(key: str) -> str:
    return key.upper()


@mlflow.trace(span_type=SpanType.AGENT)
def agent(question: str) -> str:
    return chat(lookup(question))


# --- the pipeline runs, nothing else receives -------------------------------------------------------
def test_traces_are_captured_after_the_pipeline_and_sent_nowhere_else(monkeypatch, tmp_path):
    beside = InMemorySpanExporter()
    tracing.add_destination(beside)  # a destination set before the test must hear nothing
    traces_file = Path(os.environ["MLFLOW_OTEL_TRACES_FILE"])

    def tag(span):
        span.set_attribute("hooked", True)

    with TraceCapture() as capture:
        with tracing.configure(span_processors=[tag]):
            agent("key sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4")
            (trace,) = capture.wait(1)
    root = trace.data.spans[0]
    assert root.name == "agent" and root.get_attribute("hooked") is True
    # Redaction's default policy ran before the capture saw the span, as before any backend.
    assert "sk-proj-A1b2" not in json.dumps(root.inputs)
    assert "****" in json.dumps(root.inputs)
    assert beside.get_finished_spans() == ()
    assert not traces_file.exists()

    # After the capture, the process's destinations are back.
    agent("after")
    assert mlflow.flush_trace_async_logging()
    assert {s.name for s in beside.get_finished_spans()} == {"agent", "lookup", "chat"}
    assert len(capture.traces) == 1  # the capture saw none of it


def test_entities_spans_filters_get_trace_page_and_clear(mlflow_traces, tmp_path):
    agent("a")
    agent("b")
    first, second = mlflow_traces.wait(2)
    assert [s.name for s in first.data.spans] == ["agent", "lookup", "chat"]
    assert first.info.state == "OK" and second.data.spans[0].inputs == {"question": "b"}
    assert [s.inputs for s in mlflow_traces.spans(name="chat")] == [{"message": "A"}, {"message": "B"}]
    assert [s.name for s in mlflow_traces.spans(span_type=SpanType.TOOL)] == ["lookup", "lookup"]
    assert len(mlflow_traces.spans(name=re.compile("^(agent|chat)$"))) == 4
    assert mlflow_traces.spans(name="chat", span_type=SpanType.TOOL) == []
    assert mlflow_traces.get_trace(second.trace_id).data.spans[0].outputs == "echo B"
    assert mlflow_traces.get_trace("tr-" + "0" * 32) is None
    assert len(mlflow_traces) == 2 and [t.trace_id for t in mlflow_traces] == [
        first.trace_id,
        second.trace_id,
    ]

    page = Path(mlflow_traces.write_html(tmp_path / "traces.html")).read_text("utf-8")
    assert page.count('<section class="trace"') == 2 and page.count('class="row') == 6

    mlflow_traces.clear()
    assert mlflow_traces.traces == [] and mlflow_traces.wait(0) == []
    agent("c")
    (third,) = mlflow_traces.wait(1)
    assert third.data.spans[0].inputs == {"question": "c"}


# --- the wait ------------------------------------------------------------------------------------------
def test_wait_returns_once_a_trace_open_in_another_thread_ends(mlflow_traces):
    started, release = threading.Event(), threading.Event()

    def worker():
        with mlflow.start_span("slow-request"):
            started.set()
            release.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert started.wait(5)
        (open_id,) = mlflow_traces.open_trace_ids()
        # Nothing delivered yet, and the wait says which trace it waited for.
        with pytest.raises(AssertionError, match=r"0 delivered, 1 still open \(" + open_id):
            mlflow_traces.wait(1, timeout=0.2)
        # wait(0) still waits for the open trace: the count is a minimum, not a target.
        threading.Timer(0.2, release.set).start()
        began = time.monotonic()
        (trace,) = mlflow_traces.wait(0, timeout=10)
        assert time.monotonic() - began >= 0.15
        assert trace.trace_id == open_id and trace.data.spans[0].name == "slow-request"
    finally:
        release.set()
        thread.join(5)


def test_wait_gathers_every_trace_of_many_threads(mlflow_traces):
    def worker(n):
        for i in range(20):
            with mlflow.start_span(f"t{n}-{i}") as span:
                span.set_inputs({"n": n, "i": i})
                lookup(str(i))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    traces = mlflow_traces.wait(160, timeout=30)
    for t in threads:
        t.join(5)
    assert len(traces) == 160
    assert all(len(t.data.spans) == 2 for t in traces)
    assert {t.data.spans[0].name for t in traces} == {f"t{n}-{i}" for n in range(8) for i in range(20)}


def test_wait_skips_the_callers_own_trace(mlflow_traces):
    with mlflow.start_span("test-body"):
        thread = threading.Thread(target=agent, args=("from a thread",))
        thread.start()
        thread.join(5)
        (trace,) = mlflow_traces.wait(1, timeout=5)  # the test-body trace is open: not waited for
    assert trace.data.spans[0].name == "agent"
    assert {t.data.spans[0].name for t in mlflow_traces.wait(2)} == {"agent", "test-body"}


def test_wait_ignores_traces_open_before_the_capture():
    before = mlflow.start_span_no_context("opened-before")  # open, but not the current span
    with TraceCapture() as capture:
        agent("inside")
        began = time.monotonic()
        (trace,) = capture.wait(1, timeout=5)
        assert time.monotonic() - began < 2
        assert capture.open_trace_ids() == []
    before.end()
    assert trace.data.spans[0].name == "agent"


def test_wait_ignores_other_threads_traces_open_before_the_capture():
    started, release = threading.Event(), threading.Event()

    def background():
        with mlflow.start_span("background"):
            started.set()
            release.wait(10)

    thread = threading.Thread(target=background)
    thread.start()
    try:
        assert started.wait(5)
        with TraceCapture() as capture:
            agent("x")
            assert [t.data.spans[0].name for t in capture.wait(1, timeout=5)] == ["agent"]
    finally:
        release.set()
        thread.join(5)


# --- asyncio -------------------------------------------------------------------------------------------
@mlflow.trace(span_type=SpanType.RETRIEVER)
async def retrieve(query: str, delay: float) -> list[str]:
    await asyncio.sleep(delay)
    return [query]


async def test_wait_async_lets_running_tasks_finish(mlflow_traces):
    tasks = [asyncio.ensure_future(retrieve(f"q{i}", 0.05 + i * 0.01)) for i in range(10)]
    await asyncio.sleep(0)  # the tasks start their spans
    assert len(mlflow_traces.open_trace_ids()) == 10
    traces = await mlflow_traces.wait_async(10, timeout=10)
    assert sorted(t.data.spans[0].inputs["query"] for t in traces) == sorted(f"q{i}" for i in range(10))
    assert all(t.data.spans[0].span_type == SpanType.RETRIEVER for t in traces)
    assert all(task.done() for task in tasks)


async def test_blocking_wait_in_an_async_test_says_to_await(mlflow_traces):
    gate = asyncio.Event()

    @mlflow.trace
    async def held():
        await gate.wait()

    task = asyncio.ensure_future(held())
    await asyncio.sleep(0)
    with pytest.raises(AssertionError, match=r"await mlflow_traces.wait_async"):
        mlflow_traces.wait(1, timeout=0.2)  # blocks the loop: the task cannot end meanwhile
    gate.set()
    await task
    (trace,) = await mlflow_traces.wait_async(1)
    assert trace.data.spans[0].name == "held"


# --- a real pytest run: entry point, threads, asyncio, xdist workers ----------------------------------------
SAMPLE = """
import asyncio, json, os, threading
import mlflow_otel as mlflow

OUT = os.environ["SAMPLE_OUT"]


def record(name, traces):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(os.path.join(OUT, name + ".json"), "w") as fh:
        json.dump({"worker": worker, "names": [t.data.spans[0].name for t in traces]}, fh)


@mlflow.trace
def step(i):
    return i


def test_plain(mlflow_traces):
    step(1)
    record("plain", mlflow_traces.wait(1))
    assert [s.outputs for s in mlflow_traces.spans(name="step")] == [1]


def test_threads(mlflow_traces):
    threads = [threading.Thread(target=step, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    traces = mlflow_traces.wait(5)
    record("threads", traces)
    assert len(traces) == 5


async def test_asyncio(mlflow_traces):
    @mlflow.trace
    async def fetch(i):
        await asyncio.sleep(0.01 * i)
        return i

    tasks = [asyncio.ensure_future(fetch(i)) for i in range(4)]
    traces = await mlflow_traces.wait_async(4)
    record("asyncio", traces)
    assert sorted(t.data.spans[0].outputs for t in traces) == [0, 1, 2, 3]
    await asyncio.gather(*tasks)


def test_isolated_a(mlflow_traces):
    step(10)
    record("isolated_a", mlflow_traces.wait(1))


def test_isolated_b(mlflow_traces):
    step(20)
    step(21)
    record("isolated_b", mlflow_traces.wait(2))
"""


def test_fixture_under_pytest_xdist_workers(tmp_path):
    project = tmp_path / "project"
    out = tmp_path / "out"
    project.mkdir()
    out.mkdir()
    (project / "test_sample.py").write_text(SAMPLE)
    (project / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_", "PYTEST_"))}
    env.update(
        SAMPLE_OUT=str(out),
        MLFLOW_OTEL_TRACES_FILE=str(tmp_path / "traces.jsonl"),
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "xdist",
            "-n",
            "2",
            "-p",
            "no:cacheprovider",
            "-q",
            "test_sample.py",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout
    seen = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(seen) == {"plain", "threads", "asyncio", "isolated_a", "isolated_b"}
    # Both workers ran tests, and each test saw exactly its own traces.
    assert {v["worker"] for v in seen.values()} == {"gw0", "gw1"}
    assert seen["plain"]["names"] == ["step"] and seen["isolated_a"]["names"] == ["step"]
    assert seen["threads"]["names"] == ["step"] * 5 and seen["isolated_b"]["names"] == ["step"] * 2
    assert seen["asyncio"]["names"] == ["fetch"] * 4
    # Nothing reached the default destination (the local file).
    assert not (tmp_path / "traces.jsonl").exists()


# --- docs/testing.md's CI path: a suite exporting to Jaeger through the repository's gateway --------------
CI_SUITE = """
import mlflow_otel as mlflow


@mlflow.trace(span_type="LLM")
def answer(question):
    return question.upper()


@mlflow.trace(span_type="CHAIN")
def handle(question):
    mlflow.update_current_trace(tags={"suite": "ci"})
    return answer(question)


def test_asserted_in_process(mlflow_traces):
    handle("captured")
    (trace,) = mlflow_traces.wait(1)
    assert [(s.name, s.span_type) for s in trace.data.spans] == [("handle", "CHAIN"), ("answer", "LLM")]


def test_exported():
    assert handle("exported") == "EXPORTED"
"""


@pytest.mark.backend
@pytest.mark.parametrize(
    "overlay",
    [
        "exporters/jaeger.yaml",
        # Tempo itself is not run here: its overlay's OTLP/gRPC exporter (tenant and auth headers)
        # is pointed at Jaeger, which accepts any OTLP/gRPC client.
        "exporters/tempo.yaml",
    ],
)
def test_ci_suite_exports_to_jaeger_through_the_gateway_overlay(jaeger, tmp_path, overlay):
    from tests.backends import Otelcol, otelcol_binary

    try:
        otelcol_binary()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    backend = {
        "exporters/jaeger.yaml": {"JAEGER_ENDPOINT": jaeger.grpc_target, "JAEGER_INSECURE": "true"},
        "exporters/tempo.yaml": {
            "TEMPO_ENDPOINT": jaeger.grpc_target,
            "TEMPO_INSECURE": "true",
            "TEMPO_TENANT": "ci",
        },
    }[overlay]
    gateway = Otelcol.gateway(
        tmp_path,
        overlay=overlay,
        TAIL_DECISION_WAIT="1s",
        TAIL_SAMPLE_PERCENT="100",
        DEPLOYMENT_ENVIRONMENT="ci",
        **backend,
    ).start()
    service = f"ci-suite-{overlay.split('/')[1][:-5]}-{os.getpid()}"
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_app.py").write_text(CI_SUITE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_", "PYTEST_"))}
    env.update(
        OTEL_SERVICE_NAME=service,
        OTEL_EXPORTER_OTLP_ENDPOINT=gateway.otlp_grpc,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_app.py"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        jaeger.wait_for_spans(service, 2, timeout=60)
        time.sleep(2.5)  # past another decision wait and batch: a leaked captured trace would be here
        spans = jaeger.spans(service)
    finally:
        gateway.stop()
    # The test without the fixture exported its trace through the gateway; the one with the
    # fixture kept its trace in the process.
    assert sorted(s["operationName"] for s in spans) == ["answer", "handle"]
    handle = next(s["tagmap"] for s in spans if s["operationName"] == "handle")
    assert handle["mlflow.spanInputs"] == '{"question": "exported"}'  # MLflow's JSON text
    assert handle["mlflow.traceTag.suite"] == "ci" and handle["mlflow.spanType"] == "CHAIN"
    assert all(s["tagmap"]["deployment.environment.name"] == "ci" for s in spans)  # via the gateway


def test_traces_with_their_own_destination_are_captured_too(mlflow_traces, tmp_path):
    from mlflow_otel.destinations import FileDestination

    elsewhere = tmp_path / "elsewhere.jsonl"

    @mlflow.trace(trace_destination=FileDestination(str(elsewhere)))
    def routed():
        return 1

    routed()
    (trace,) = mlflow_traces.wait(1)
    assert trace.data.spans[0].name == "routed"
    assert not elsewhere.exists()  # sent nowhere else during the test
