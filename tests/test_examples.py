"""Every script in examples/ runs, against the embedded default sink or a real backend the tests start."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import ROOT
from tests.openai_server import OpenAiServer

EXAMPLES = ROOT / "examples"


def run_example(name: str, env: dict[str, str], cwd: Path, args: tuple[str, ...] = (), timeout: float = 120):
    """Run ``examples/<name>`` as a user would: a fresh interpreter, only the given variables set."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_", "OPENAI_"))}
    full_env.update(env)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result


def load_example(name: str) -> ModuleType:
    """Import an example as a fresh module (each test gets its own module-level state)."""
    spec = importlib.util.spec_from_file_location(f"example_{uuid.uuid4().hex[:8]}", EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the example's annotations through it
    spec.loader.exec_module(module)
    return module


def _value(v: dict):
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    (kind, raw), *_ = v.items()
    return int(raw) if kind == "intValue" else raw


def read_jsonl_spans(path: Path) -> list[dict]:
    """Spans of an OTLP JSON lines file, each with ``attrs`` (a plain dict)."""
    spans = []
    for line in path.read_text().splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    span["attrs"] = {a["key"]: _value(a["value"]) for a in span.get("attributes", [])}
                    spans.append(span)
    return spans


def by_name(spans: list[dict]) -> dict[str, dict]:
    return {s["name"]: s for s in spans}


@pytest.fixture(scope="module")
def openai_server():
    with OpenAiServer() as server:
        yield server


def _experiment() -> str:
    return f"examples-{uuid.uuid4().hex[:8]}"


# --- OpenAI: the seeds' quickstart and the production FastAPI app, read back from MLflow --------------


@pytest.mark.backend
def test_openai_quickstart_traces_to_an_mlflow_server(mlflow_server, openai_server, tmp_path):
    experiment = _experiment()
    result = run_example(
        "openai_quickstart.py",
        {
            "OPENAI_BASE_URL": openai_server.base_url,
            "OPENAI_API_KEY": "sk-test",
            "MLFLOW_TRACKING_URI": mlflow_server.uri,
            "MLFLOW_EXPERIMENT_NAME": experiment,
        },
        tmp_path,
    )
    assert result.stdout.strip() == "Echo: What is MLflow Tracing?"
    (trace,) = mlflow_server.wait_for_traces(experiment, 1)
    (span,) = trace["spans"]
    assert span["name"] == "Completions" and span["span_type"] == "CHAT_MODEL"
    assert span["inputs"]["messages"][1] == {"role": "user", "content": "What is MLflow Tracing?"}
    assert span["outputs"]["choices"][0]["message"]["content"] == "Echo: What is MLflow Tracing?"
    usage = json.loads(trace["metadata"]["mlflow.trace.tokenUsage"])
    assert usage["input_tokens"] == 9 and usage["output_tokens"] == 5 and usage["total_tokens"] == 14
    assert span["attributes"]["mlflow.llm.model"] == "gpt-4o-mini-2024-08-06"


@pytest.mark.backend
def test_fastapi_app_traces_requests_with_their_context_to_mlflow(mlflow_server, openai_server, monkeypatch):
    from fastapi.testclient import TestClient

    import mlflow_otel as mlflow

    experiment = _experiment()
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    mlflow.set_tracking_uri(mlflow_server.uri)
    app = load_example("fastapi_app.py")
    try:
        with TestClient(app.app) as http:
            first = http.post(
                "/chat",
                json={"message": "hello"},
                headers={"X-Request-ID": "req-1", "X-Session-ID": "sess-9", "X-User-ID": "ann"},
            )
            second = http.post("/chat", json={"message": "again"}, headers={"X-Request-ID": "req-2"})
        assert first.status_code == 200 and first.json()["reply"] == "Echo: hello"
        assert second.json()["reply"] == "Echo: again"
        assert mlflow.flush_trace_async_logging()
    finally:
        mlflow.openai.autolog(disable=True)

    traces = mlflow_server.wait_for_traces(experiment, 2)
    assert len(traces) == 2
    by_request = {t["spans"][0]["attributes"].get("mlflow.trace.clientRequestId"): t for t in traces}
    hello = by_request["req-1"]
    assert hello["trace_id"][3:] == first.json()["trace_id"][3:]
    spans = {s["name"]: s for s in hello["spans"]}
    assert spans["chat"]["span_type"] == "AGENT" and spans["Completions"]["span_type"] == "CHAT_MODEL"
    assert spans["Completions"]["parent_id"] == spans["chat"]["span_id"]
    assert hello["tags"]["environment"] == "production" and hello["tags"]["app_version"] == "1.0.0"
    assert hello["metadata"]["mlflow.trace.session"] == "sess-9"
    assert hello["metadata"]["mlflow.trace.user"] == "ann"
    assert json.loads(hello["metadata"]["mlflow.trace.tokenUsage"])["total_tokens"] == 8
    assert "mlflow.trace.session" not in by_request["req-2"]["metadata"]
    found = mlflow_server.read(experiment, filter_string="span.type = 'CHAT_MODEL'")
    assert len(found) == 2


# --- the embedded default ----------------------------------------------------------------------------


def test_quickstart_writes_the_embedded_sink_and_the_cli_shows_it(tmp_path):
    result = run_example("quickstart.py", {}, tmp_path)
    assert result.stdout.startswith("An answer built from")
    spans = read_jsonl_spans(tmp_path / "mlflow-otel-traces.jsonl")
    assert sorted(s["name"] for s in spans) == ["answer", "format_prompt", "generate", "retrieve"]
    shown = subprocess.run(
        [sys.executable, "-m", "mlflow_otel", "show"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))},
            "PYTHONPATH": str(ROOT),
        },
    )
    assert shown.returncode == 0 and "answer" in shown.stdout and "format_prompt" in shown.stdout


def test_streaming_reduces_chunks_and_ends_early_closed_generators(tmp_path):
    result = run_example("streaming.py", {}, tmp_path)
    assert result.stdout.splitlines()[-1] == "Streaming an"
    spans = read_jsonl_spans(tmp_path / "mlflow-otel-traces.jsonl")
    generates = [s for s in spans if s["name"] == "generate"]
    assert len(generates) == 3  # one per trace, each ended, including the one closed after two words
    outputs = sorted(json.loads(s["attrs"]["mlflow.spanOutputs"]) for s in generates)
    assert outputs == [
        "Streaming an ",
        "Streaming an answer to 'what is a span?' ",
        "Streaming an answer to 'what is a trace?' ",
    ]
    assert all(e["name"].startswith("mlflow.chunk.item.") for s in generates for e in s.get("events", []))


def test_threads_and_asyncio_keep_one_trace_per_request(tmp_path):
    run_example("threads_and_asyncio.py", {}, tmp_path)
    spans = read_jsonl_spans(tmp_path / "mlflow-otel-traces.jsonl")
    roots = {s["name"]: s for s in spans if s["name"] in ("threaded", "concurrent")}
    for root_name, child_name, count in (("threaded", "search", 4), ("concurrent", "fetch", 3)):
        root = roots[root_name]
        children = [s for s in spans if s["traceId"] == root["traceId"] and s is not root]
        assert len(children) == count and all(c["parentSpanId"] == root["spanId"] for c in children)
        assert {c["name"].split("_")[0] for c in children} == {child_name}  # search, search_1, ...


def test_redaction_and_trimming_example_masks_and_trims(tmp_path):
    run_example("redaction_and_trimming.py", {}, tmp_path)
    (span,) = read_jsonl_spans(tmp_path / "mlflow-otel-traces.jsonl")
    inputs = json.loads(span["attrs"]["mlflow.spanInputs"])
    assert inputs["api_key"] == "****" and "sk-proj-" not in json.dumps(span)
    assert inputs["image_png"].startswith("<image/png base64,")  # summarised, not 400 KB
    assert "ann@corp.example" not in span["attrs"]["mlflow.spanOutputs"]  # the shared policy's PII rule
    assert len(json.dumps(span)) < 64 * 1024
    assert span["attrs"]["redaction.masked.count"] >= 1


def test_two_destinations_route_each_endpoint(tmp_path):
    run_example("two_destinations.py", {}, tmp_path)
    public = read_jsonl_spans(tmp_path / "public-traces.jsonl")
    internal = read_jsonl_spans(tmp_path / "internal-traces.jsonl")
    assert sorted(s["name"] for s in public) == ["lookup", "public_endpoint"]
    assert sorted(s["name"] for s in internal) == ["evaluate", "lookup"]
    assert not (tmp_path / "mlflow-otel-traces.jsonl").exists()  # nothing fell through to the default


def test_serverless_handler_flushes_before_the_process_is_frozen(tmp_path):
    # The script ends with os._exit(0), as a frozen or killed function would: no atexit flush runs,
    # so whatever arrived was flushed by the handler itself.
    run_example("serverless_handler.py", {}, tmp_path)
    spans = read_jsonl_spans(tmp_path / "mlflow-otel-traces.jsonl")
    assert len(spans) == 2
    by_request = {s["attrs"]["mlflow.trace.clientRequestId"]: s for s in spans}
    assert by_request["inv-1"]["status"]["code"] == 1 and by_request["inv-2"]["status"]["code"] == 2


def test_prefork_workers_each_export_their_own_spans(tmp_path):
    result = run_example("prefork_workers.py", {"WORKERS": "3", "REQUESTS_PER_WORKER": "4"}, tmp_path)
    assert "failed: []" in result.stdout
    spans = read_jsonl_spans(tmp_path / "mlflow-otel-traces.jsonl")
    assert [s["name"] for s in spans].count("master_startup") == 1  # not re-exported by children
    served = [s for s in spans if s["name"] == "handle_request"]
    assert len(served) == 12 and len({s["spanId"] for s in served}) == 12
    workers = {json.loads(s["attrs"]["mlflow.spanInputs"])["worker"] for s in served}
    assert workers == {0, 1, 2}


@pytest.mark.backend
def test_jaeger_via_collector_example(jaeger, tmp_path):
    from tests.backends import Otelcol, otelcol_binary

    try:
        otelcol_binary()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    agent = Otelcol.agent(tmp_path, jaeger.grpc_target).start()
    service = f"demo-{uuid.uuid4().hex[:8]}"
    try:
        result = run_example(
            "jaeger_via_collector.py",
            {
                "OTEL_SERVICE_NAME": service,
                "OTEL_EXPORTER_OTLP_ENDPOINT": agent.otlp_grpc,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            },
            tmp_path,
        )
        assert result.stdout.splitlines()[-1] == "exported"
        spans = jaeger.wait_for_spans(service, 3)
    finally:
        agent.stop()
    tags = {s["operationName"]: s["tagmap"] for s in spans}
    assert tags["generate"]["mlflow.spanType"] == "LLM"
    assert tags["ask"]["mlflow.traceTag.environment"] == "demo"
    found = jaeger.traces(service, tags={"mlflow.spanType": "RETRIEVER"})
    assert len(found) == 1
