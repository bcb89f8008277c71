"""OTLP export configured by the spec's variables, flush at exit, and the embedded default sink."""

from __future__ import annotations

import io
import json
import time

import pytest

import mlflow_otel as mlflow
from mlflow_otel import cli, tracing
from mlflow_otel._settings import load as load_settings
from mlflow_otel._settings import parse_headers
from tests.conftest import ROOT, run_python

# --- endpoint and header rules (OTel spec, protocol/exporter.md) ----------------------------------


@pytest.mark.parametrize(
    ("env", "protocol", "endpoint"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "http/protobuf", "http://c:4318/v1/traces"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/base/"},
            "http/protobuf",
            "http://c:4318/base/v1/traces",
        ),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom"},
            "http/protobuf",
            "http://c:4318/custom",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:2/x",
            },
            "http/protobuf",
            "http://b:2/x",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "grpc",
            "http://c:4317",
        ),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
            "http/protobuf",
            "http://localhost:4318/v1/traces",
        ),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc", "http://localhost:4317"),
    ],
)
def test_endpoint_rules(env, protocol, endpoint):
    otlp = load_settings(env).otlp
    assert (otlp.protocol, otlp.endpoint) == (protocol, endpoint)


def test_no_endpoint_means_embedded_default():
    assert load_settings({}).otlp is None


def test_headers_are_url_decoded_and_split_on_first_equals():
    assert parse_headers("api-key=abc%3D%3D==,Authorization=Bearer%20tok, x = 1 ,broken") == {
        "api-key": "abc====",
        "authorization": "Bearer tok",
        "x": "1",
    }


def test_unknown_protocol_warns_naming_the_variable(caplog):
    otlp = load_settings(
        {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1"}
    ).otlp
    assert otlp.protocol == "http/protobuf"
    assert "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" in caplog.text and "http/json" in caplog.text


def test_timeout_is_milliseconds_per_spec():
    assert (
        load_settings(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500"}
        ).otlp.timeout_s
        == 2.5
    )


# --- what arrives at a receiver -----------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_headers_resource_and_compression_arrive(receiver, monkeypatch, protocol):
    receiver.clear()
    endpoint = receiver.http_endpoint if protocol == "http/protobuf" else receiver.grpc_endpoint
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s%20ecret,x-tenant=acme")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=traces-team")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "chat-api")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,team=ml")
    tracing.reset()

    with mlflow.start_span("op"):
        pass
    assert mlflow.flush_trace_async_logging()
    (span,) = receiver.wait_for_spans(1)
    assert span.transport == ("http" if protocol == "http/protobuf" else "grpc")
    assert span.headers["x-api-key"] == "s ecret"
    assert span.headers["x-tenant"] == "traces-team"
    if protocol == "http/protobuf":
        assert span.headers["content-encoding"] == "gzip"
    else:
        # grpc-python's server hides the message encoding from handlers; check the built exporter.
        from mlflow_otel import _runtime

        assert [e.compression for e in _runtime.running().pipeline.exporters()] == ["gzip"]
    assert span.resource["service.name"] == "chat-api"
    assert span.resource["deployment.environment"] == "prod" and span.resource["team"] == "ml"


def test_spans_flushed_at_exit_without_user_call(receiver, tmp_path):
    receiver.clear()
    code = """
import mlflow_otel as mlflow
@mlflow.trace
def handler(i): return i
for i in range(50): handler(i)
"""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint, "OTEL_BSP_SCHEDULE_DELAY": "60000"}
    result = run_python(code, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(receiver.wait_for_spans(50, timeout=5)) == 50


def test_exit_with_dead_collector_is_bounded(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = """
import mlflow_otel as mlflow
@mlflow.trace
def handler(i): return i
for i in range(100): handler(i)
"""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "MLFLOW_OTEL_EXIT_TIMEOUT_SECONDS": "1"}
    start = time.monotonic()
    result = run_python(code, env, tmp_path)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert elapsed < 6, f"exit took {elapsed:.1f}s"  # interpreter start + 1 s flush deadline


def test_missing_grpc_exporter_warns_and_falls_back_to_file(tmp_path):
    code = """
import sys
sys.modules["grpc"] = None  # as if grpcio were not installed
import mlflow_otel as mlflow
with mlflow.start_span("kept-locally"): pass
mlflow.flush_trace_async_logging()
"""
    traces = tmp_path / "fallback.jsonl"
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "MLFLOW_OTEL_TRACES_FILE": str(traces)}
    result = run_python(code, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "opentelemetry-exporter-otlp-proto-grpc" in result.stderr
    assert "kept-locally" in traces.read_text()


# --- embedded default ---------------------------------------------------------------------------


def test_embedded_default_writes_otlp_json_and_cli_shows_tree(tmp_path, capsys):
    code = (ROOT / "examples" / "quickstart.py").read_text()
    result = run_python(code, {}, tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "mlflow-otel-traces.jsonl"
    assert result.stderr.count("Sending traces to the local file") == 1
    assert str(path) in result.stderr

    line = json.loads(path.read_text().splitlines()[0])
    (rs,) = line["resourceSpans"]
    spans = rs["scopeSpans"][0]["spans"]
    assert {s["name"] for s in spans} == {"answer", "retrieve", "generate", "format_prompt"}
    root = next(s for s in spans if s["name"] == "answer")
    assert len(root["traceId"]) == 32 and len(root["spanId"]) == 16  # hex ids, per OTLP/JSON
    assert root["kind"] == 1 and root["status"] == {"code": 1}
    assert isinstance(root["startTimeUnixNano"], str)

    assert cli.main(["show", "--file", str(path), "-v"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("trace tr-" + root["traceId"]) and "environment=quickstart" in lines[0]
    assert any(line.startswith("  answer  [AGENT]") and line.endswith("OK") for line in lines)
    assert any("└─ format_prompt  [PARSER]" in line for line in lines)
    assert 'in: {"question": "What is OpenTelemetry?"}' in out


def test_cli_module_entry_point_and_missing_file(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "mlflow_otel", "show", "--file", str(tmp_path / "none.jsonl")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1 and "No traces file" in result.stderr


def test_cli_shows_errors_and_limits(tmp_path, monkeypatch, capsys):
    path = tmp_path / "t.jsonl"
    monkeypatch.setenv("MLFLOW_OTEL_TRACES_FILE", str(path))
    tracing.reset()
    for i in range(3):
        with mlflow.start_span(f"request-{i}"):
            pass
    with pytest.raises(ZeroDivisionError), mlflow.start_span("bad"):
        1 / 0  # noqa: B018
    assert mlflow.flush_trace_async_logging()
    assert cli.main(["show", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("trace tr-") == 2
    assert "request-2" in out and "request-1" not in out
    assert "ERROR (ZeroDivisionError: division by zero)" in out


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_partial_success_counts_every_span_once_and_says_why(receiver, monkeypatch, caplog, protocol):
    receiver.clear()
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint,
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    tracing.reset()
    receiver.partial_success = (7, "attribute value too long")
    try:

        @mlflow.trace
        def work(i):
            return i

        for i in range(100):
            work(i)
        mlflow.flush_trace_async_logging(timeout_s=10)  # False: some spans were rejected
        stats = tracing.stats()
    finally:
        receiver.partial_success = None
    # The receiver rejects 7 of every request; a loaded machine may send the 100 spans in two.
    requests = len(receiver.received)
    assert requests >= 1 and stats["dropped.rejected"] == 7 * requests
    assert stats["spans_delivered"] == 100 - 7 * requests
    assert stats["spans_started"] == stats["spans_delivered"] + stats["dropped.rejected"]
    assert "spans_export_failed" not in stats
    assert "attribute value too long" in caplog.text


def test_cli_show_survives_a_broken_or_hostile_file(tmp_path, capsys):
    """Lines of another shape are skipped and counted; a span that is its own parent and a parent
    cycle are shown as roots (the view crashed or recursed forever); control characters from traced
    input are escaped, never written to the terminal."""
    spans = [
        {"traceId": "aa" * 16, "spanId": "01" * 8, "parentSpanId": "01" * 8, "name": "self\x1b[31mred\nfake",
         "startTimeUnixNano": "5", "endTimeUnixNano": "9"},
        {"traceId": "bb" * 16, "spanId": "02" * 8, "parentSpanId": "03" * 8, "name": "a",
         "startTimeUnixNano": "5", "endTimeUnixNano": "9"},
        {"traceId": "bb" * 16, "spanId": "03" * 8, "parentSpanId": "02" * 8, "name": "b",
         "startTimeUnixNano": "6", "endTimeUnixNano": "9"},
    ]  # fmt: skip
    request = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {"name": "x"}, "spans": spans}]}]}
    lines = [json.dumps([1, 2]), json.dumps({"resourceSpans": 5}), '{"torn', json.dumps(request)]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n")
    for args in (["--limit", "5"], ["--limit", "0"], ["--trace-id", "bb" * 16]):
        assert cli.main(["show", "--file", str(path), *args]) == 0
        out, err = capsys.readouterr()
        assert ("\x1b" not in out and "self\\x1b[31mred\\x0afake" in out) or "--trace-id" in args
        assert "  a  " in out and "  b  " in out
        assert "Skipped 3 line(s)" in err


def test_cli_show_reads_the_latest_traces_from_the_end(tmp_path, capsys):
    """The latest traces only: the file is read from its end, not parsed whole."""
    from mlflow_otel.cli import latest_spans

    path = tmp_path / "t.jsonl"
    with open(path, "w") as fh:
        for i in range(2000):
            span = {"traceId": f"{i:032x}", "spanId": f"{i:016x}", "name": f"t{i}",
                    "startTimeUnixNano": str(i), "endTimeUnixNano": str(i + 1)}  # fmt: skip
            fh.write(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) + "\n")

    class Counting(io.BufferedReader):
        read_bytes = 0

        def read(self, size: int = -1) -> bytes:
            data = super().read(size)
            Counting.read_bytes += len(data)
            return data

    with Counting(io.FileIO(path)) as fh:
        spans = latest_spans(fh, 3)
    assert Counting.read_bytes < path.stat().st_size / 4  # stopped well before the start
    assert sorted(s.name for s in spans) == ["t1997", "t1998", "t1999"]
    assert cli.main(["show", "--file", str(path), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "t1999" in out and "t1998" in out and "t1997" not in out
