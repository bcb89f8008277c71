"""One clear message, never a silent loss: misconfiguration and common mistakes, tried as a new
user would with only the import changed. Each test runs the mistake and checks the one message and
that traces still land somewhere (the default destination) rather than vanish."""

from __future__ import annotations

import json
import time

import pytest

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel.destinations import MlflowExperimentLocation
from tests.conftest import run_python


def _one_trace() -> None:
    @mlflow.trace
    def work():
        return 1

    work()


def test_otlp_endpoint_without_scheme_is_refused_with_the_fix(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318")
    tracing.reset()
    _one_trace()
    assert mlflow.flush_trace_async_logging(timeout_s=5)
    message = [r.getMessage() for r in caplog.records if "OTEL_EXPORTER_OTLP_ENDPOINT" in r.getMessage()]
    assert len(message) == 1
    assert "'127.0.0.1:4318'" in message[0] and "http://host:4318" in message[0]
    assert (tmp_path / "traces.jsonl").exists()  # the trace went to the default destination


def test_grpc_host_port_without_scheme_is_accepted(monkeypatch, caplog):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    tracing.reset()
    from mlflow_otel._state import STATE

    assert STATE.settings().otlp is not None
    assert "cannot be used" not in caplog.text


@pytest.mark.parametrize("uri", ["https://:5000", "http://"])
def test_tracking_uri_without_host_is_refused(uri, caplog):
    mlflow.set_tracking_uri(uri)
    assert mlflow.get_tracking_uri() is None
    assert caplog.text.count("cannot be used: it has no host") == 1
    assert "http://host:5000" in caplog.text


def test_set_experiment_without_a_tracking_uri_says_where_traces_go(caplog, tmp_path):
    mlflow.set_experiment("my-experiment")
    assert "no tracking URI is set" in caplog.text
    assert str(tmp_path / "traces.jsonl") in caplog.text


def test_misspelled_variable_gets_one_did_you_mean(tmp_path):
    result = run_python(
        "import mlflow_otel as m\n@m.trace\ndef f(): return 1\nf(); f()\nm.tracing.reset()\n",
        {"MLFLOW_TRACE_SAMPLNG_RATIO": "0.1", "MLFLOW_OTEL_TRACES_FILE": str(tmp_path / "t.jsonl")},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("did you mean MLFLOW_TRACE_SAMPLING_RATIO?") == 1


def test_invalid_value_is_reported_once_in_the_usual_format(tmp_path):
    result = run_python(
        "import mlflow_otel as m\n@m.trace\ndef f(): return 1\nf()\nm.tracing.reset()\nf()\n",
        {"MLFLOW_TRACING_ENABLED": "maybe", "MLFLOW_OTEL_TRACES_FILE": str(tmp_path / "t.jsonl")},
        tmp_path,
    )
    lines = [line for line in result.stderr.splitlines() if "MLFLOW_TRACING_ENABLED" in line]
    assert len(lines) == 1
    assert " WARNING mlflow_otel: " in lines[0]  # the same format as every later message


def test_full_mlflow_names_say_where_they_belong():
    with pytest.raises(AttributeError, match="full MLflow package"):
        mlflow.start_run()
    with pytest.raises(AttributeError, match="full MLflow package"):
        mlflow.log_metric("x", 1)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        mlflow.nonexistent  # noqa: B018


def test_set_destination_in_a_request_handler_is_cheap_with_a_dead_server(caplog):
    """MLflow's FAQ sets the destination inside the handler; with a dead server that used to cost
    2 s per request. Now it costs a dict write, logs nothing, and the trace is routed."""
    mlflow.set_tracking_uri("http://127.0.0.1:9")  # nothing listens on port 9

    @mlflow.trace
    def handler(i):
        tracing.set_destination(MlflowExperimentLocation(str(i % 2)))
        return i

    start = time.perf_counter()
    for i in range(20):
        handler(i)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, elapsed  # was 38 s for 20 requests
    assert "Sending traces to" not in caplog.text or caplog.text.count("Sending traces to") <= 2


def test_header_pairs_are_redacted_by_name(otlp_http):
    @mlflow.trace
    def asgi(scope):
        return "ok"

    asgi({"headers": [["cookie", "sessionid=abc123secret"], ["accept", "text/html"]]})
    (span,) = otlp_http(1)
    inputs = json.loads(span.attributes["mlflow.spanInputs"])
    assert inputs["scope"]["headers"][0][1] != "sessionid=abc123secret"
    assert inputs["scope"]["headers"][1] == ["accept", "text/html"]


def test_none_values_are_omitted_not_sent_as_null(mlflow_traces):
    @mlflow.trace
    def handler():
        mlflow.update_current_trace(
            tags={"mlflow.trace.session": None, "kept": "yes"}, session_id=None, user=None
        )

    handler()
    info = mlflow_traces.wait(1)[0].info
    assert "mlflow.trace.session" not in info.tags and info.tags["kept"] == "yes"
    assert "mlflow.trace.session" not in info.trace_metadata


def test_flush_says_false_when_spans_were_dropped_and_does_not_wait_for_a_dead_collector(monkeypatch):
    from tests.backends import free_port

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing there
    monkeypatch.setenv("MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT", "0.5")
    tracing.reset()
    _one_trace()
    start = time.monotonic()
    first = mlflow.flush_trace_async_logging()  # learns the destination refuses connections
    _one_trace()
    assert mlflow.flush_trace_async_logging() is False  # dropped, or still held: not delivered
    assert first is False
    assert time.monotonic() - start < 5.5  # the default deadline, and less once it is known dead
    assert (
        any(k.startswith("dropped.") for k in tracing.stats())
        or tracing.stats().get("spans_delivered", 0) == 0
    )


def test_blocking_mode_exports_before_the_call_returns(otlp_http, monkeypatch, receiver):
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # no help from the schedule
    tracing.reset()
    _one_trace()
    assert len(receiver.spans()) == 1  # already there when the traced call returned


def _traced_and_flushed() -> dict:
    _one_trace()
    mlflow.flush_trace_async_logging(timeout_s=10)
    return tracing.stats()


def test_http_to_a_grpc_port_says_which_protocol_to_set(receiver, monkeypatch, caplog):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.grpc_port}")
    tracing.reset()
    stats = _traced_and_flushed()
    assert stats.get("dropped.protocol_mismatch") == 1
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in caplog.text
    assert "retries" not in stats  # permanent: not retried


def test_grpc_to_an_http_port_says_which_protocol_to_set(receiver, monkeypatch, caplog):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.http_port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    tracing.reset()
    stats = _traced_and_flushed()
    assert stats.get("dropped.protocol_mismatch") == 1
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in caplog.text


def test_a_web_app_answering_200_html_is_not_a_delivery(monkeypatch, caplog):
    import http.server
    import threading

    class Html(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b"<html><body>Welcome</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        tracing.reset()
        stats = _traced_and_flushed()
    finally:
        server.shutdown()
    assert stats.get("dropped.not_otlp") == 1 and "spans_delivered" not in stats
    assert "not an OTLP receiver" in caplog.text


def test_a_tracking_uri_that_is_not_mlflow_says_so(caplog):
    import http.server
    import threading

    class Html(http.server.BaseHTTPRequestHandler):
        def _page(self):
            body = b"<html>hello</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._page()

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._page()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        mlflow.set_tracking_uri(f"http://127.0.0.1:{server.server_port}")
        mlflow.set_experiment("x")
    finally:
        server.shutdown()
    assert "is not an MLflow tracking server" in caplog.text
    assert "Expecting value" not in caplog.text
