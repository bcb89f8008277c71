"""collector-config/: every configuration passes ``validate`` with the collector its builder manifest
builds, and the agent -> gateway -> Jaeger topology runs end to end (tail sampling, the shared
redaction policy, fan-out), as does the gateway's MLflow overlay against a real MLflow server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

import mlflow_otel as mlflow
from mlflow_otel import _mlflow_server
from mlflow_otel.entities import SpanType
from tests.backends import COLLECTOR_CONFIG, Otelcol, otelcol_binary, wait_until

pytestmark = pytest.mark.backend

STANDALONE = ["agent.yaml", "gateway.yaml", "scale-out.yaml"]
OVERLAYS = sorted(p.name for p in (COLLECTOR_CONFIG / "exporters").glob("*.yaml"))


def _binary() -> Path:
    try:
        return otelcol_binary()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def _config_sets() -> list[list[str]]:
    return [[name] for name in STANDALONE] + [["gateway.yaml", f"exporters/{name}"] for name in OVERLAYS]


@pytest.mark.parametrize("configs", _config_sets(), ids=lambda c: "+".join(c))
def test_every_configuration_validates(configs):
    _binary()
    result = Otelcol(Path("/tmp"), configs, {}, "validate").validate()
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_manifest_builds_exactly_what_the_configurations_use():
    binary = _binary()
    built = yaml.safe_load(
        subprocess.run([str(binary), "components"], capture_output=True, text=True, check=True).stdout
    )
    available = {
        kind: {c["name"] for c in built.get(kind) or []}
        for kind in ("receivers", "processors", "exporters", "extensions")
    }
    used: dict[str, set[str]] = {kind: set() for kind in available}
    for path in [
        *(COLLECTOR_CONFIG / n for n in STANDALONE),
        *(COLLECTOR_CONFIG / "exporters").glob("*.yaml"),
    ]:
        config = yaml.safe_load(path.read_text())
        for kind in used:
            for component in (config.get(kind) or {}) if isinstance(config.get(kind), dict) else {}:
                used[kind].add(component.split("/", 1)[0])
    used["processors"].add("redaction")  # gateway.yaml loads it from the policy file
    for kind in used:
        assert used[kind] <= available[kind], f"{kind} used but not built: {used[kind] - available[kind]}"
        assert available[kind] <= used[kind], f"{kind} built but unused: {available[kind] - used[kind]}"
    manifest = yaml.safe_load((COLLECTOR_CONFIG / "builder-config.yaml").read_text())
    assert manifest["dist"]["name"] == "otelcol-mlflow"


def _traced_app(secret: str):
    @mlflow.trace(span_type=SpanType.CHAIN)
    def fast_ok(q):
        return q.upper()

    @mlflow.trace(span_type=SpanType.TOOL)
    def failing_tool(q):
        raise RuntimeError("tool exploded")

    @mlflow.trace(span_type=SpanType.AGENT)
    def failing(q):
        try:
            failing_tool(q)
        except RuntimeError:
            pass
        return "recovered"

    @mlflow.trace(span_type=SpanType.AGENT)
    def slow(q):
        time.sleep(0.6)
        return q

    @mlflow.trace(span_type=SpanType.LLM)
    def leaky(prompt, api_key):
        span = mlflow.get_current_active_span()
        span.set_attribute("llm.api_key", api_key)
        span.set_attribute("note", f"called with {api_key} by ann@corp.example")
        raise ValueError("provider said no")

    def run() -> None:
        for i in range(5):
            fast_ok(f"q{i}")
        failing("x")
        slow("y")
        with pytest.raises(ValueError):
            leaky("hello", secret)

    return run


def test_agent_gateway_jaeger_topology_samples_tail_and_redacts(jaeger, monkeypatch, tmp_path):
    _binary()
    service = f"topology-{uuid.uuid4().hex[:8]}"
    secret = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3"
    gateway = Otelcol.gateway(
        tmp_path,
        TRACES_ENDPOINT=jaeger.grpc_target,
        TAIL_DECISION_WAIT="1s",
        TAIL_SLOW_MS="400",
        TAIL_SAMPLE_PERCENT="0",
        DEPLOYMENT_ENVIRONMENT="ci",
    ).start()
    agent = Otelcol.agent(tmp_path, gateway.grpc_target).start()
    try:
        monkeypatch.setenv("OTEL_SERVICE_NAME", service)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", agent.otlp_grpc)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        # The app's own redaction is off here, so the secret leaves the process and the gateway
        # (with the same policy file) is what masks it.
        monkeypatch.setenv("MLFLOW_OTEL_REDACTION_DEFAULTS", "false")
        mlflow.tracing.reset()
        _traced_app(secret)()
        assert mlflow.flush_trace_async_logging()

        def kept():
            names = {s["operationName"] for s in jaeger.spans(service)}
            return names if {"failing", "failing_tool", "slow", "leaky"} <= names else None

        wait_until(kept, 30, "tail-sampled traces in Jaeger", interval=0.5)
        time.sleep(2.5)  # past another decision_wait: the fast traces had their chance to arrive
        spans = jaeger.spans(service)
        names = sorted(s["operationName"] for s in spans)
        assert names == ["failing", "failing_tool", "leaky", "slow"], names  # fast OK traces dropped
        leaky = next(s for s in spans if s["operationName"] == "leaky")
        tags = leaky["tagmap"]
        assert tags["llm.api_key"] == "****"  # blocked key pattern
        assert secret not in json.dumps(spans)  # nowhere: not in inputs, not in notes
        assert "****" in tags["mlflow.spanInputs"] and "ann@corp.example" not in tags["note"]
        assert int(tags["redaction.masked.count"]) >= 2
        assert all(s["tagmap"]["deployment.environment.name"] == "ci" for s in spans)
    finally:
        agent.stop()
        gateway.stop()
    # Fan-out: the gateway also archived the kept traces in OTLP JSON lines, which our CLI reads.
    archive = tmp_path / "gateway-archive.jsonl"
    shown = subprocess.run(
        [sys.executable, "-m", "mlflow_otel", "show", "--file", str(archive)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "failing_tool" in shown.stdout and "fast_ok" not in shown.stdout and secret not in shown.stdout


def test_gateway_mlflow_overlay_delivers_to_an_mlflow_server(mlflow_server, monkeypatch, tmp_path):
    _binary()
    experiment = f"gateway-{uuid.uuid4().hex[:8]}"
    experiment_id = _mlflow_server.get_or_create_experiment(mlflow_server.uri, experiment)
    gateway = Otelcol.gateway(
        tmp_path,
        overlay="exporters/mlflow.yaml",
        MLFLOW_TRACKING_URI=mlflow_server.uri,
        MLFLOW_EXPERIMENT_ID=str(experiment_id),
        TAIL_DECISION_WAIT="1s",
        TAIL_SAMPLE_PERCENT="100",
    ).start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", gateway.otlp_http)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        mlflow.tracing.reset()

        @mlflow.trace(span_type=SpanType.RETRIEVER)
        def retrieve(q):
            return ["doc"]

        @mlflow.trace(span_type=SpanType.AGENT)
        def agent(q):
            mlflow.update_current_trace(tags={"route": "gateway"})
            return retrieve(q)

        agent("via the gateway")
        assert mlflow.flush_trace_async_logging()
        (trace,) = mlflow_server.wait_for_traces(experiment, 1, timeout=60)
    finally:
        gateway.stop()
    assert {s["name"]: s["span_type"] for s in trace["spans"]} == {"agent": "AGENT", "retrieve": "RETRIEVER"}
    assert trace["tags"]["route"] == "gateway"
