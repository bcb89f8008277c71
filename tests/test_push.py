"""``mlflow-otel push``: traces recorded with no endpoint (the embedded default), replayed later into
real backends through the exporters a live run uses.

Recorded in this process to the local file and store (``MLFLOW_OTEL_TRACES_FILE`` in tmp_path),
then pushed with the CLI (``cli.main``) and read back from each backend as its own users read it:
Jaeger's query API (compared span by span with a live export of the same spans to another Jaeger),
MLflow 3.18 with MLflow's own client (``search_traces`` by client request id; a second push changes
nothing), Phoenix's GraphQL API. Also: selection (``--filter``, ``--trace-id``, ``--since``), the
dry run, unreadable lines, a refused destination, redaction as configured at push time, and a
file the OTel Collector's ``file`` exporter wrote.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import mlflow_otel as mlflow
from mlflow_otel import MlflowClient, cli, tracing
from mlflow_otel.destinations import FileDestination, OtlpDestination
from mlflow_otel.entities import AssessmentSource, SpanType
from mlflow_otel.records.otlp_file import read_spans
from tests.backends import Jaeger, Otelcol, free_port, wait_until
from tests.backends.mlflow_extra import query, wait_query


def _record(run: str, count: int = 3, env: str = "dev") -> list[str]:
    """``count`` traces of two spans each to the embedded default; their trace ids."""

    @mlflow.trace(span_type=SpanType.TOOL)
    def lookup(i: int) -> dict:
        return {"order": i, "status": "shipped"}

    @mlflow.trace(name="handle")
    def handle(i: int) -> str:
        mlflow.update_current_trace(
            client_request_id=f"req-{run}-{i}", tags={"env": env, "i": str(i)}, metadata={"batch": run}
        )
        return f"order {lookup(i)['order']} shipped"

    ids = []
    for i in range(count):
        handle(i)
        ids.append(mlflow.get_last_active_trace_id())
    assert mlflow.flush_trace_async_logging(timeout_s=30)
    return ids


def _push(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["push", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _file(tmp_path: Path) -> Path:
    return tmp_path / "traces.jsonl"


# --- selection, dry run, unreadable lines, failures (no backend) ---------------------------------------
def test_dry_run_says_what_would_go_where_and_selection_narrows_it(tmp_path, capsys):
    run = uuid.uuid4().hex[:6]
    dev = _record(run, 2, env="dev")
    prod = _record(run + "p", 2, env="prod")
    with open(_file(tmp_path), "a", encoding="utf-8") as fh:
        fh.write('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 7}]}]}]}\n')  # another shape
        fh.write('{"resourceSpans": [{"resou\n')  # torn at a crash
    to = "http://127.0.0.1:4318"
    code, out, err = _push(capsys, "--to", to, "--dry-run")
    assert code == 0
    assert (
        "Would push 4 trace(s), 8 span(s) of 4 recorded" in out and "http://127.0.0.1:4318/v1/traces" in out
    )
    assert all(t in out for t in dev + prod) and f"client_request_id=req-{run}-0" in out
    assert "Skipped 2 unreadable line(s)" in err

    _, out, _ = _push(capsys, "--to", to, "--dry-run", "--filter", "tags.env = 'prod'")
    assert "Would push 2 trace(s)" in out and all(t in out for t in prod) and dev[0] not in out
    _, out, _ = _push(capsys, "--to", to, "--dry-run", "--trace-id", dev[1], "--trace-id", prod[0][3:])
    assert "Would push 2 trace(s)" in out and dev[1] in out and prod[0] in out
    _, out, _ = _push(capsys, "--to", to, "--dry-run", "--since", "10m")
    assert "Would push 4 trace(s)" in out
    _, out, _ = _push(capsys, "--to", to, "--dry-run", "--since", "2999-01-01T00:00:00")
    assert "Would push 0 trace(s)" in out
    # The filter grammar is search_traces' also for a file without a store beside it (a copy).
    copy = tmp_path / "elsewhere" / "copy.jsonl"
    copy.parent.mkdir()
    shutil.copy(_file(tmp_path), copy)
    _, out, _ = _push(
        capsys, str(copy), "--to", to, "--dry-run", "--filter", f"trace.client_request_id = 'req-{run}-1'"
    )
    assert "Would push 1 trace(s)" in out and dev[1] in out
    code, _, err = _push(capsys, "--to", to, "--dry-run", "--filter", "tags.env ~ 'x'")
    assert code == 2 and "tags.env" in err


def test_a_refused_destination_fails_fast_and_says_why(tmp_path, capsys):
    _record(uuid.uuid4().hex[:6], 3)
    started = time.monotonic()
    code, out, _ = _push(capsys, "--to", f"http://127.0.0.1:{free_port()}")
    assert code == 1 and time.monotonic() - started < 10
    assert "0 of 6 span(s) delivered" in out and "refused: 6 span(s), destination_unavailable" in out
    assert "Connection refused" in out
    code, _, err = _push(capsys, str(tmp_path / "missing.jsonl"), "--to", "http://127.0.0.1:1")
    assert code == 2 and "No traces file" in err


def test_push_to_an_otlp_receiver_keeps_ids_and_redacts_as_configured_now(
    tmp_path, capsys, receiver, monkeypatch
):
    """The recording was made with redaction off; the push's own policy masks the secret, and the
    spans arrive with their original ids, parents, times, status, events and resource."""
    receiver.clear()
    monkeypatch.setenv("MLFLOW_OTEL_REDACTION_DEFAULTS", "false")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "recorded-svc")
    tracing.reset()
    secret = "sk-proj-" + "Z9y8X7w6V5u4T3s2R1q0P9o8"

    @mlflow.trace
    def leaky(key: str) -> str:
        span = mlflow.get_current_active_span()
        span.add_event(mlflow.entities.SpanEvent("checked", attributes={"n": 1}))
        raise ValueError("bad key")

    with pytest.raises(ValueError):
        leaky(secret)
    ids = _record("r", 2)
    assert mlflow.flush_trace_async_logging(timeout_s=30)
    with open(_file(tmp_path), encoding="utf-8") as fh:
        recorded = {s.span_id: s for s in read_spans(fh)}
    assert secret in json.dumps([s.to_dict() for s in recorded.values()])  # recorded as is
    monkeypatch.delenv("MLFLOW_OTEL_REDACTION_DEFAULTS")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=blue")  # the push's OTLP settings
    tracing.reset()
    code, out, _ = _push(capsys, "--to", receiver.http_endpoint)
    assert code == 0, out
    assert "5 of 5 span(s) delivered" in out
    spans = {s.span_id: s for s in receiver.wait_for_spans(5, 10)}
    assert set(spans) == set(recorded)
    for span_id, got in spans.items():
        want = recorded[span_id]
        assert got.trace_id == want.trace_id[3:] and got.parent_id == want.parent_id
        assert (got.start_ns, got.end_ns, got.name) == (want.start_time_ns, want.end_time_ns, want.name)
        assert got.resource["service.name"] == "recorded-svc" and got.headers["x-team"] == "blue"
    bad = next(s for s in spans.values() if s.name == "leaky")
    assert bad.status == "ERROR" and bad.status_message and ("checked", {"n": 1}) in bad.events
    assert secret not in json.dumps([s.attributes for s in spans.values()])
    assert {s.trace_id for s in spans.values()} >= {t[3:] for t in ids}
    receiver.clear()  # the same over gRPC, one trace chosen
    grpc = "grpc://" + receiver.grpc_endpoint.split("://")[-1]
    code, out, _ = _push(capsys, "--to", grpc, "--trace-id", ids[0])
    assert code == 0 and "2 of 2 span(s) delivered" in out and "OTLP/gRPC" in out, out
    assert {(s.trace_id, s.transport) for s in receiver.wait_for_spans(2, 10)} == {(ids[0][3:], "grpc")}


# --- real backends ----------------------------------------------------------------------------------
@pytest.mark.backend
def test_push_to_jaeger_matches_a_live_export_span_for_span(jaeger, tmp_path, capsys, monkeypatch):
    """Recorded and exported live to one Jaeger at once; the recording pushed to a second Jaeger
    later: the same traces, span trees, tags and process, span for span."""
    service = f"push-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    tracing.reset()
    tracing.set_destination(
        [FileDestination(str(_file(tmp_path))), OtlpDestination(jaeger.otlp_http + "/v1/traces")]
    )
    ids = _record(service, 3)
    live = jaeger.wait_for_spans(service, 6)
    tracing.reset()
    (tmp_path / "j2").mkdir()
    later = Jaeger(tmp_path / "j2", name="jaeger-push").start()
    try:
        code, out, err = _push(capsys, "--to", later.otlp_http)
        assert code == 0, out + err
        pushed = later.wait_for_spans(service, 6)
    finally:
        later.stop()

    def keyed(spans: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        return {
            (s["traceID"], s["spanID"]): {
                "name": s["operationName"],
                "refs": sorted((r["refType"], r["spanID"]) for r in s.get("references", [])),
                "start": s["startTime"],
                "duration": s["duration"],
                "tags": s["tagmap"],
                "logs": s.get("logs"),
            }
            for s in spans
        }

    assert len(live) == len(pushed) == 6
    assert keyed(pushed) == keyed(live)
    assert {s["traceID"] for s in pushed} == {t[3:] for t in ids}


def _mlflow_view(trace: dict[str, Any]) -> dict[str, Any]:
    return {**trace, "spans": sorted(trace["spans"], key=lambda s: s["span_id"])}


@pytest.mark.backend
def test_push_to_mlflow_records_whole_traces_once(mlflow_server, tmp_path, capsys):
    """Tags and feedback added to the local store after the traces ended go with them; MLflow's
    client finds each by its client request id under its original trace id; a second push changes
    nothing (the record is an upsert by trace id, assessments merged by id)."""
    run = uuid.uuid4().hex[:8]
    ids = _record(run, 3)
    MlflowClient().set_trace_tag(ids[0], "reviewed", "yes")
    mlflow.log_feedback(
        trace_id=ids[0], name="quality", value=4, source=AssessmentSource("HUMAN", "ann"), rationale="ok"
    )
    experiment = f"push-{run}"
    code, out, _ = _push(capsys, "--to", mlflow_server.uri, "--experiment", experiment)
    assert code == 0, out
    assert "6 of 6 span(s) delivered" in out and "MLflow records sent: 3" in out
    first = {t["trace_id"]: _mlflow_view(t) for t in wait_query(mlflow_server, experiment, 3)}
    assert set(first) == set(ids)
    found = query(mlflow_server, experiment, f"trace.client_request_id = 'req-{run}-0'")
    assert [t["trace_id"] for t in found] == [ids[0]]
    one = first[ids[0]]
    assert one["tags"]["reviewed"] == "yes" and one["tags"]["env"] == "dev"
    assert one["tags"]["mlflow.traceName"] == "handle"
    assert one["metadata"]["batch"] == run and one["metadata"]["mlflow.traceInputs"] == '{"i": 0}'
    assert one["request_preview"] == '{"i": 0}' and one["state"] == "OK"
    [feedback] = one["assessments"]
    assert (feedback["name"], feedback["value"], feedback["source_id"]) == ("quality", 4, "ann")
    spans = {s["name"]: s for s in one["spans"]}
    assert spans["lookup"]["parent_id"] == spans["handle"]["span_id"] and spans["handle"]["parent_id"] is None
    assert spans["lookup"]["span_type"] == "TOOL" and spans["lookup"]["outputs"] == {
        "order": 0,
        "status": "shipped",
    }
    assert spans["handle"]["inputs"] == {"i": 0} and spans["handle"]["outputs"] == "order 0 shipped"

    code, out, _ = _push(capsys, "--to", mlflow_server.uri, "--experiment", experiment)
    assert code == 0, out
    again = {t["trace_id"]: _mlflow_view(t) for t in query(mlflow_server, experiment)}
    assert again == first


@pytest.mark.backend
def test_push_to_phoenix_renders_as_a_live_export(phoenix, tmp_path, capsys, monkeypatch):
    """The RAG app of tests/test_phoenix.py recorded with no endpoint, pushed with Phoenix's
    conventions: Phoenix shows what it shows for the live export (same checks), same trace id."""
    from tests.test_phoenix import EXPECTED_SPANS, _check_rendering, _run_app, _spans

    project = f"rag-push-{uuid.uuid4().hex[:8]}"
    _run_app(monkeypatch, phoenix, project)
    with open(_file(tmp_path), encoding="utf-8") as fh:
        recorded = {s.trace_id[3:] for s in read_spans(fh)}
    code, out, _ = _push(capsys, "--to", phoenix.otlp_http, "--semconv", "openinference")
    assert code == 0, out
    spans = _spans(phoenix, project, EXPECTED_SPANS)
    assert len(spans) == EXPECTED_SPANS, sorted(spans)
    _check_rendering(spans)
    assert {s["trace"]["traceId"] for s in spans.values()} == recorded


@pytest.mark.backend
def test_a_collector_file_exporter_file_pushes_too(jaeger, receiver, tmp_path, capsys, monkeypatch):
    """collector-config/gateway.yaml archives what it exports with the Collector's ``file`` exporter;
    that archive pushes like our own file (ids, names, the attribute the gateway added)."""
    gateway = Otelcol.gateway(
        tmp_path, TRACES_ENDPOINT=jaeger.grpc_target, TAIL_DECISION_WAIT="1s", TAIL_SAMPLE_PERCENT="100",
        DEPLOYMENT_ENVIRONMENT="archive",
    ).start()  # fmt: skip
    archive = tmp_path / "gateway-archive.jsonl"
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", gateway.otlp_http + "/v1/traces")
        tracing.reset()
        ids = _record("col", 3)

        def archived() -> bool:
            return archive.exists() and sum(1 for _ in read_spans(archive.open(encoding="utf-8"))) >= 6

        wait_until(archived, 30, "the gateway's archive")
    finally:
        gateway.stop()
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    tracing.reset()
    receiver.clear()
    code, out, _ = _push(capsys, str(archive), "--to", receiver.http_endpoint)
    assert code == 0, out
    spans = receiver.wait_for_spans(6, 10)
    assert {s.trace_id for s in spans} == {t[3:] for t in ids}
    assert sorted(s.name for s in spans) == ["handle"] * 3 + ["lookup"] * 3
    assert all(s.attributes["deployment.environment.name"] == "archive" for s in spans)  # the gateway added


def test_the_progress_bar_draws_only_on_a_terminal():
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown, piped = Terminal(), io.StringIO()
    for out in (shown, piped):
        bar = cli._Bar(out)
        bar(50, 100)
        bar(100, 100)
        bar.end()
    assert piped.getvalue() == ""
    assert "\r[###############" in shown.getvalue() and "100% 100/100 spans" in shown.getvalue()
