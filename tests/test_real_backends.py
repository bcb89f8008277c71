"""The pipeline against real components: Jaeger v2 (an OTel Collector distribution), an MLflow
tracking server read back with MLflow's own client, and rotel (an independent Rust collector)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel.entities import SpanType
from tests.backends import Jaeger, Rotel

pytestmark = pytest.mark.backend


def _service() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


def _agent_app():
    """A small traced app: an agent calling a retriever and an LLM, with trace tags and usage."""

    @mlflow.trace(span_type=SpanType.RETRIEVER)
    def retrieve(query):
        return [{"doc": "otel"}]

    @mlflow.trace(span_type=SpanType.LLM)
    def llm(prompt):
        mlflow.get_current_active_span().set_attributes(
            {
                "mlflow.chat.tokenUsage": {"input_tokens": 12, "output_tokens": 30, "total_tokens": 42},
                "mlflow.llm.model": "gpt-4o-mini",
            }
        )
        return "OpenTelemetry is a standard."

    @mlflow.trace(span_type=SpanType.AGENT)
    def agent(query):
        mlflow.update_current_trace(
            tags={"environment": "production", "mlflow.trace.session": "sess-1", "mlflow.trace.user": "ann"}
        )
        return llm(str(retrieve(query)))

    return agent


# --- Jaeger ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_jaeger_receives_spans_with_attributes_and_searchable_tags(jaeger, monkeypatch, protocol):
    service = _service()
    monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_grpc if protocol == "grpc" else jaeger.otlp_http
    )
    tracing.reset()
    agent = _agent_app()
    agent("what is otel?")
    with pytest.raises(ValueError), mlflow.start_span("failing"):
        raise ValueError("boom")
    assert mlflow.flush_trace_async_logging()

    spans = {s["operationName"]: s for s in jaeger.wait_for_spans(service, 4)}
    assert set(spans) == {"agent", "retrieve", "llm", "failing"}
    root = spans["agent"]["tagmap"]
    assert root["mlflow.spanType"] == "AGENT"
    assert root["mlflow.traceTag.environment"] == "production"
    assert root["session.id"] == "sess-1" and root["user.id"] == "ann"
    assert spans["llm"]["references"][0]["spanID"] == spans["agent"]["spanID"]
    assert spans["failing"]["tagmap"]["otel.status_code"] == "ERROR"
    tagged = jaeger.spans(service, tags={"mlflow.traceTag.environment": "production"})
    assert {s["operationName"] for s in tagged} == {"agent", "retrieve", "llm"}  # whole trace found by tag


def test_collector_in_the_middle_killed_and_restarted(jaeger, monkeypatch, tmp_path, request):
    """SDK -> Jaeger as a plain OTel Collector (OTLP in, batch, OTLP out) -> storing Jaeger.

    The collector is stopped mid-run and started again on the same ports. Afterwards every span the
    app produced is accounted for exactly (delivered + counted drops), and what was produced during
    the outage (well under the queue capacity) is delivered all the way to storage.
    """
    collector = Jaeger(tmp_path, upstream=jaeger.grpc_target, name="collector").start()
    request.addfinalizer(collector.stop)  # whichever process is running then, even on a failure
    service = _service()
    monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.otlp_grpc)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    tracing.reset()

    @mlflow.trace
    def handle(i):
        return i

    produced = 0
    stop = threading.Event()

    def produce():
        nonlocal produced
        while not stop.is_set():
            handle(produced)
            produced += 1
            time.sleep(0.005)

    producer = threading.Thread(target=produce)
    try:
        producer.start()
        time.sleep(1.5)
        collector.stop()  # SIGTERM: the collector flushes what it acknowledged, then exits
        outage_start = produced
        time.sleep(3.0)
        outage_produced = produced - outage_start
        collector.start()  # same config, same ports
        time.sleep(1.5)
    finally:
        stop.set()
        producer.join()
    assert outage_produced > 100
    assert mlflow.flush_trace_async_logging(timeout_s=60)
    stats = tracing.stats()
    drops = sum(v for k, v in stats.items() if k.startswith("dropped."))
    assert stats["spans_started"] == produced
    assert stats["spans_delivered"] + drops == produced
    assert drops == 0  # the outage produced far less than the queue holds
    stored = jaeger.wait_for_spans(service, produced, timeout=60)
    assert len({s["spanID"] for s in stored}) == produced
    assert stats["retries"] >= 1
    collector.stop()


# --- rotel -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_rotel_as_an_independent_collector(jaeger, monkeypatch, tmp_path, protocol):
    try:
        rotel = Rotel(tmp_path, upstream_grpc=jaeger.otlp_grpc).start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        service = _service()
        monkeypatch.setenv("OTEL_SERVICE_NAME", service)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        monkeypatch.setenv(
            "OTEL_EXPORTER_OTLP_ENDPOINT", rotel.otlp_grpc if protocol == "grpc" else rotel.otlp_http
        )
        tracing.reset()
        _agent_app()("via rotel")
        assert mlflow.flush_trace_async_logging()
        spans = {s["operationName"]: s for s in jaeger.wait_for_spans(service, 3)}
        assert set(spans) == {"agent", "retrieve", "llm"}
        assert spans["agent"]["tagmap"]["mlflow.traceTag.environment"] == "production"
        assert '"doc": "otel"' in spans["retrieve"]["tagmap"]["mlflow.spanOutputs"]
        assert tracing.stats()["spans_delivered"] == 3
    finally:
        rotel.stop()


# --- MLflow tracking server ------------------------------------------------------------------------------


def test_mlflow_server_reads_back_what_we_sent(mlflow_server):
    experiment = f"exp-{uuid.uuid4().hex[:8]}"
    mlflow.set_tracking_uri(mlflow_server.uri)
    assert mlflow.set_experiment(experiment).experiment_id is not None
    agent = _agent_app()
    agent("what is otel?")
    with pytest.raises(RuntimeError), mlflow.start_span("broken", span_type=SpanType.TOOL):
        raise RuntimeError("tool failed")
    assert mlflow.flush_trace_async_logging()

    traces = mlflow_server.wait_for_traces(experiment, 2)
    assert len(traces) == 2
    ok = next(t for t in traces if any(s["name"] == "agent" for s in t["spans"]))
    bad = next(t for t in traces if t is not ok)
    spans = {s["name"]: s for s in ok["spans"]}
    assert {n: s["span_type"] for n, s in spans.items()} == {
        "agent": "AGENT",
        "retrieve": "RETRIEVER",
        "llm": "LLM",
    }
    assert spans["agent"]["inputs"] == {"query": "what is otel?"}
    assert spans["agent"]["outputs"] == "OpenTelemetry is a standard."
    assert spans["retrieve"]["outputs"] == [{"doc": "otel"}]
    assert ok["state"] == "OK" and spans["agent"]["status"] == "OK"
    assert ok["tags"]["environment"] == "production"
    assert ok["metadata"]["mlflow.trace.session"] == "sess-1" and ok["metadata"]["mlflow.trace.user"] == "ann"
    assert '"total_tokens": 42' in ok["metadata"]["mlflow.trace.tokenUsage"]
    assert bad["state"] == "ERROR"
    assert bad["spans"][0]["status_message"] == "RuntimeError: tool failed"

    llm_traces = mlflow_server.read(experiment, filter_string="span.type = 'LLM'")
    assert [t["trace_id"] for t in llm_traces] == [ok["trace_id"]]
    prod = mlflow_server.read(experiment, filter_string="tags.environment = 'production'")
    assert [t["trace_id"] for t in prod] == [ok["trace_id"]]
    assert ok["trace_id"] == "tr-" + ok["trace_id"][3:]  # the OTel trace id, MLflow-formatted


def test_dual_export_to_mlflow_and_jaeger(mlflow_server, jaeger, monkeypatch):
    experiment = f"dual-{uuid.uuid4().hex[:8]}"
    service = _service()
    monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_http)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)  # resolved (and created) by the export thread
    monkeypatch.setenv("MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT", "true")  # MLflow's switch for both
    tracing.reset()
    _agent_app()("both")
    assert mlflow.flush_trace_async_logging(timeout_s=30)
    in_jaeger = jaeger.wait_for_spans(service, 3)
    in_mlflow = mlflow_server.wait_for_traces(experiment, 1)
    assert {s["operationName"] for s in in_jaeger} == {"agent", "retrieve", "llm"}
    assert len(in_mlflow) == 1 and {s["name"] for s in in_mlflow[0]["spans"]} == {"agent", "retrieve", "llm"}
    assert in_mlflow[0]["trace_id"][3:] == in_jaeger[0]["traceID"]


# --- processors on a real backend --------------------------------------------------------------------


def test_jaeger_stores_redacted_and_trimmed_spans(jaeger, monkeypatch):
    service = _service()
    monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_grpc)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    tracing.reset()
    secret = "sk-proj-Q1w2E3r4T5y6U7i8O9p0A1s2D3f4"

    @mlflow.trace
    def call(settings, document):
        return {"status": "ok", "echo": f"used {secret}"}

    call({"provider": {"api_key": "plain-looking-value", "base_url": "http://llm"}}, "lorem ipsum " * 450_000)
    assert mlflow.flush_trace_async_logging(timeout_s=30)
    (span,) = jaeger.wait_for_spans(service, 1)
    tags = span["tagmap"]
    import json as _json

    inputs = _json.loads(tags["mlflow.spanInputs"])
    assert inputs["settings"]["provider"] == {"api_key": "****", "base_url": "http://llm"}
    assert "truncated" in inputs["document"]
    assert _json.loads(tags["mlflow.spanOutputs"])["echo"] == "used ****"
    # Capture cut the 5.4 MB document on the way in (the marker keeps its original size), so the
    # span was under the trimming budget when it left.
    assert inputs["document"].endswith(f"of {len('lorem ipsum ' * 450_000)} chars]")
    assert secret not in _json.dumps(tags) and "plain-looking-value" not in _json.dumps(tags)


def test_mlflow_trace_tags_hold_the_users_resource_attributes_not_the_sdk_defaults(
    mlflow_server, monkeypatch
):
    # MLflow 3.18 files OTLP resource attributes as trace tags: the OTel SDK's defaults
    # (unknown_service:python, a random service.instance.id) are left out, what the user set stays.
    tags = {}
    for service in (None, "checkout"):
        experiment = f"res-{uuid.uuid4().hex[:8]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
        monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
        if service:
            monkeypatch.setenv("OTEL_SERVICE_NAME", service)
            monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
        tracing.reset()
        with mlflow.start_span("handler"):
            mlflow.update_current_trace(tags={"team": "search"})
        assert mlflow.flush_trace_async_logging()
        (trace,) = mlflow_server.wait_for_traces(experiment, 1)
        tags[service] = {k: v for k, v in trace["tags"].items() if not k.startswith("mlflow.")}
    assert tags[None] == {"team": "search"}
    assert tags["checkout"] == {
        "team": "search",
        "service.name": "checkout",
        "deployment.environment": "prod",
    }
