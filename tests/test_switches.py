"""Turning tracing off, and the trace timeout."""

from __future__ import annotations

import threading
import time

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel.entities import NoOpSpan
from tests.conftest import by_name, run_python


def test_disable_and_enable(otlp_http, receiver):
    calls = []

    @mlflow.trace
    def f(x):
        calls.append(x)
        return x

    tracing.disable()
    assert not tracing.is_enabled()
    assert f(1) == 1
    with mlflow.start_span("ignored") as span:
        assert isinstance(span, NoOpSpan)
        span.set_inputs({"a": 1})
        span.set_attribute("k", "v")
    assert mlflow.get_current_active_span() is None
    client_span = mlflow.MlflowClient().start_trace("ignored")
    assert isinstance(client_span, NoOpSpan)
    tracing.enable()
    assert f(2) == 2
    spans = otlp_http(1)
    assert [decoded_input(s) for s in spans] == [{"x": 2}]
    assert calls == [1, 2]


def decoded_input(span):
    import json

    return json.loads(span.attributes["mlflow.spanInputs"])


def test_env_var_disables_tracing(receiver, tmp_path):
    receiver.clear()
    code = """
import mlflow_otel as mlflow
@mlflow.trace
def f(): return 41 + 1
print(f())
with mlflow.start_span("x") as s: print(type(s).__name__)
mlflow.flush_trace_async_logging()
"""
    result = run_python(
        code,
        {"MLFLOW_TRACING_ENABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["42", "NoOpSpan"]
    time.sleep(0.2)
    assert receiver.spans() == []
    assert not (tmp_path / "mlflow-otel-traces.jsonl").exists()


def test_invalid_env_value_warns_and_uses_default(receiver, tmp_path):
    code = "import mlflow_otel as m\n@m.trace\ndef f(): return 1\nf()\n"
    result = run_python(
        code,
        {"MLFLOW_TRACING_ENABLED": "maybe", "MLFLOW_OTEL_TRACES_FILE": str(tmp_path / "t.jsonl")},
        tmp_path,
    )
    assert result.returncode == 0
    assert "MLFLOW_TRACING_ENABLED" in result.stderr and "'maybe'" in result.stderr
    assert (tmp_path / "t.jsonl").exists()  # default (enabled) used


def test_trace_timeout_ends_and_exports_open_trace(otlp_http, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACE_TIMEOUT_SECONDS", "0.3")
    monkeypatch.setenv("MLFLOW_TRACE_TIMEOUT_CHECK_INTERVAL_SECONDS", "0.05")
    tracing.reset()
    finished = threading.Event()

    @mlflow.trace
    def stuck_tool():
        time.sleep(1.0)
        return "tool finished anyway"

    @mlflow.trace
    def agent():
        with mlflow.start_span("thinking"):
            pass
        return stuck_tool()

    result = []
    worker = threading.Thread(target=lambda: (result.append(agent()), finished.set()))
    worker.start()
    time.sleep(0.7)  # the watcher has ended the trace; the user's code is still running
    assert not finished.is_set()
    spans = by_name(otlp_http(3))
    assert set(spans) == {"agent", "thinking", "stuck_tool"}
    assert spans["agent"].status == "ERROR"
    assert "timed out" in spans["agent"].status_message
    assert spans["stuck_tool"].status == "ERROR"
    assert spans["thinking"].status == "OK"
    worker.join(5)
    assert result == ["tool finished anyway"]  # user code unaffected; no double export
    time.sleep(0.2)
    assert mlflow.flush_trace_async_logging()
    assert len(otlp_http(3)) == 3


def test_spans_started_after_the_timeout_start_a_linked_trace_of_their_own(otlp_http, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACE_TIMEOUT_SECONDS", "0.2")
    monkeypatch.setenv("MLFLOW_TRACE_TIMEOUT_CHECK_INTERVAL_SECONDS", "0.05")
    tracing.reset()

    @mlflow.trace
    def step():
        return 1

    @mlflow.trace
    def agent():
        step()
        time.sleep(0.6)  # the watcher ends the trace meanwhile
        step()  # started under the ended trace
        step()
        return "done"

    assert agent() == "done"
    spans = otlp_http(4)
    agent_span = next(s for s in spans if s.name == "agent")
    in_first = [s for s in spans if s.trace_id == agent_span.trace_id]
    later = [s for s in spans if s.trace_id != agent_span.trace_id]
    assert sorted(s.name for s in in_first) == ["agent", "step"]  # nothing joined the ended trace
    assert len(later) == 2 and {s.name for s in later} == {"step"}
    assert len({s.trace_id for s in later}) == 2  # each a root of its own, not under the ended one
    for span in later:
        assert span.parent_id is None
        assert span.links[0][0] == agent_span.trace_id  # linked to where it came from
    assert mlflow.tracing.stats()["spans_after_trace_timeout"] == 2
