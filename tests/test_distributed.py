"""One trace across services: MLflow's distributed-tracing calls on W3C trace context, with real
processes talking HTTP on loopback (``examples/two_services.py``: a gateway and an agent service)
with Jaeger v2 and a real MLflow 3.18 server as backends, plus the API's own rules in one process."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import mlflow_otel as mlflow
from mlflow_otel import tracing

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "two_services.py"


# --- the API in one process (MLflow's test_distributed.py behaviours) -------------------------------------
def test_headers_inside_a_span_carry_its_context():
    with mlflow.start_span("client") as span:
        headers = tracing.get_tracing_context_headers_for_http_request()
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, flags) == ("00", "01")
    assert "tr-" + trace_id == span.trace_id and span_id == span.span_id


def test_no_headers_outside_a_span(caplog):
    assert tracing.get_tracing_context_headers_for_http_request() == {}
    assert "No active span" in caplog.text


@pytest.mark.parametrize("spelling", ["traceparent", "Traceparent", "TRACEPARENT"])
def test_callee_spans_are_children_of_the_caller(mlflow_traces, spelling):
    with mlflow.start_span("client") as client:
        headers = tracing.get_tracing_context_headers_for_http_request()
    with tracing.set_tracing_context_from_http_request_headers({spelling: headers["traceparent"]}):
        assert mlflow.get_current_active_span() is None  # the caller's span lives elsewhere
        with mlflow.start_span("server") as server:
            pass
    assert server.trace_id == client.trace_id and server.parent_id == client.span_id
    assert mlflow.get_current_active_span() is None


@pytest.mark.parametrize(
    "headers", [{}, {"traceparent": "garbage"}, {"traceparent": "00-" + "0" * 32 + "-" + "0" * 16 + "-01"}]
)
def test_missing_or_malformed_context_starts_a_fresh_trace_without_raising(mlflow_traces, headers):
    with tracing.set_tracing_context_from_http_request_headers(headers):
        with mlflow.start_span("server") as span:
            pass
    assert span.parent_id is None
    assert len(mlflow_traces.wait(1)) == 1


def test_sampled_out_caller_means_no_fragment_in_the_callee(mlflow_traces):
    @mlflow.trace(sampling_ratio_override=0.0)
    def caller():
        return tracing.get_tracing_context_headers_for_http_request()

    headers = caller()
    assert headers["traceparent"].endswith("-00")  # the id travels, with sampled=0
    with tracing.set_tracing_context_from_http_request_headers(headers):
        with mlflow.start_span("server"):
            pass
    assert mlflow_traces.wait(0) == []


def test_baggage_is_opt_in_and_never_carries_what_redaction_masks(monkeypatch, mlflow_traces):
    def round_trip() -> dict:
        @mlflow.trace
        def caller():
            mlflow.update_current_trace(
                session_id="session-7", user="ann", tags={"env": "prod", "api_key": "sk-ant-" + "x" * 30}
            )
            return tracing.get_tracing_context_headers_for_http_request()

        headers = caller()
        with tracing.set_tracing_context_from_http_request_headers(headers):
            with mlflow.start_span("callee_root"):
                pass
        return headers

    headers = round_trip()
    assert "baggage" not in headers  # off by default
    monkeypatch.setenv("MLFLOW_OTEL_PROPAGATE", "session,user,tags")
    tracing.reset()
    headers = round_trip()
    assert "session-7" in headers["baggage"] and "env=prod" in headers["baggage"]
    assert "sk-ant-" not in headers["baggage"] and "api_key" not in headers["baggage"]
    first, second = mlflow_traces.wait(2)  # the callee's fragment shares the caller's trace id
    callee_off = first.search_spans(name="callee_root")[0]
    callee_on = second.search_spans(name="callee_root")[0]
    assert "session.id" not in callee_off.attributes
    assert callee_on.attributes["session.id"] == "session-7" and callee_on.attributes["user.id"] == "ann"
    assert callee_on.attributes["mlflow.traceTag.env"] == "prod"
    assert "mlflow.traceTag.api_key" not in callee_on.attributes


# --- two real services and Jaeger ---------------------------------------------------------------------------
def _run_example(jaeger, tmp_path: Path, **env: str) -> tuple[str, str, subprocess.CompletedProcess[str]]:
    suffix = uuid.uuid4().hex[:8]
    gateway, agent = f"gateway-{suffix}", f"agent-{suffix}"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    if jaeger is not None:
        full_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = jaeger.otlp_http
    full_env.update(
        {
            "OTEL_SERVICE_NAME": gateway,
            "AGENT_SERVICE_NAME": agent,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "PYTHONPATH": str(ROOT),
            **env,
        }
    )
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env=full_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return gateway, agent, result


@pytest.mark.backend
def test_two_services_one_trace_in_jaeger(jaeger, tmp_path):
    gateway, agent, result = _run_example(jaeger, tmp_path)
    trace_ids = [line.split()[1][3:] for line in result.stdout.splitlines() if line.startswith("trace ")]
    assert len(trace_ids) == 2
    spans = jaeger.wait_for_spans(agent, 8, timeout=30)
    traces = {t["traceID"]: t for t in jaeger.traces(gateway)}
    for trace_id in trace_ids:
        trace = traces[trace_id]
        services = {p["serviceName"] for p in trace["processes"].values()}
        assert services == {gateway, agent}  # one trace, both services' fragments
        by_id = {s["spanID"]: s for s in trace["spans"]}
        roots = [s for s in trace["spans"] if not s.get("references")]
        assert len(roots) == 1 and trace["processes"][roots[0]["processID"]]["serviceName"] == gateway
        for span in trace["spans"]:  # nothing detached: every parent is in the trace
            for ref in span.get("references", []):
                assert ref["spanID"] in by_id
        names = [s["operationName"] for s in trace["spans"]]
        assert names.count("answer") == 1 and names.count("retrieve") == 1  # no duplicates
        answer = next(s for s in trace["spans"] if s["operationName"] == "answer")
        assert trace["processes"][answer["processID"]]["serviceName"] == agent
    assert {s["operationName"] for s in spans} >= {"answer", "retrieve"}


@pytest.mark.backend
def test_sampled_out_gateway_leaves_no_fragment_in_the_agent(jaeger, tmp_path):
    gateway, agent, _ = _run_example(jaeger, tmp_path, MLFLOW_TRACE_SAMPLING_RATIO="0")
    assert jaeger.spans(gateway) == []
    assert jaeger.wait_for_spans(agent, 1, timeout=3) == []


@pytest.mark.backend
def test_baggage_reaches_the_agent_only_when_enabled(jaeger, tmp_path):
    _, agent_off, _ = _run_example(jaeger, tmp_path)
    _, agent_on, _ = _run_example(jaeger, tmp_path, MLFLOW_OTEL_PROPAGATE="session,user")
    on = _spans_of(jaeger, agent_on, 8)
    off = _spans_of(jaeger, agent_off, 8)
    assert any(s["tagmap"].get("session.id") == "session-7" for s in on)
    assert off and all("session.id" not in s["tagmap"] for s in off)


def _spans_of(jaeger, service: str, count: int) -> list[dict]:
    """The spans that ``service`` itself exported (Jaeger's query returns whole traces)."""
    jaeger.wait_for_spans(service, count, timeout=30)
    out = []
    for trace in jaeger.traces(service):
        mine = {pid for pid, p in trace["processes"].items() if p["serviceName"] == service}
        for span in trace["spans"]:
            if span["processID"] in mine:
                out.append({**span, "tagmap": {t["key"]: t["value"] for t in span.get("tags", [])}})
    return out


def run_two_services_on_mlflow(mlflow_server, tmp_path: Path) -> tuple[str, list[str]]:
    """The example with both services sending to ``mlflow_server``; its experiment and trace ids."""
    experiment = f"two-services-{uuid.uuid4().hex[:8]}"
    _, _, result = _run_example(
        None, tmp_path, MLFLOW_TRACKING_URI=mlflow_server.uri, MLFLOW_EXPERIMENT_NAME=experiment
    )
    trace_ids = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("trace ")]
    return experiment, trace_ids


@pytest.mark.backend
def test_two_services_one_trace_on_mlflow_with_the_callees_keys_merged(mlflow_server, tmp_path):
    # MLflow 3.18 read back with MLflow's own client: one trace per request (no second record),
    # both services' spans in one tree, the record of the service holding the root (client
    # request id, previews, state), the callee's tags and metadata merged without overwriting.
    experiment, trace_ids = run_two_services_on_mlflow(mlflow_server, tmp_path)
    assert len(trace_ids) == 2
    traces = {t["trace_id"]: t for t in mlflow_server.wait_for_traces(experiment, 2)}
    assert sorted(traces) == sorted(trace_ids)
    for trace_id in trace_ids:
        trace = traces[trace_id]
        spans = {s["name"]: s for s in trace["spans"]}
        by_id = {s["span_id"]: s for s in trace["spans"]}
        roots = [s for s in trace["spans"] if s["parent_id"] is None]
        assert len(roots) == 1 and roots[0]["name"].startswith("gateway_")
        assert all(s["parent_id"] in by_id for s in trace["spans"] if s["parent_id"])  # nothing detached
        assert by_id[spans["retrieve"]["parent_id"]]["name"] == "answer"
        assert spans["answer"]["span_type"] == "AGENT" and spans["answer"]["outputs"].startswith("answer to")
        assert trace["state"] == "OK" and trace["tags"]["mlflow.traceName"] == roots[0]["name"]
        assert trace["tags"]["served_by"] == "agent-service"  # the callee's tag, merged
        assert trace["metadata"]["agent.version"] == "2"  # the callee's metadata, merged
    manual = next(t for t in traces.values() if t["tags"]["mlflow.traceName"] == "gateway_manual")
    assert manual["client_request_id"] == "req-manual", {k: v for k, v in manual.items() if k != "spans"}
    assert manual["request_preview"] == '{"question": "what is MLflow?"}'
    assert manual["tags"]["tier"] == "gateway"  # the root's value wins: never overwritten
    assert manual["metadata"]["mlflow.trace.session"] == "session-7"
    auto = next(t for t in traces.values() if t["tags"]["mlflow.traceName"] == "gateway_auto")
    assert auto["tags"]["tier"] == "agent"  # the root set none: the callee's is merged
