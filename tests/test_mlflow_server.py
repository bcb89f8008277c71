"""An MLflow server as a first-class destination, against real MLflow servers (3.18, and 3.17 where
it costs little): complete trace records (``StartTraceV3`` after the spans), the read and feedback
API over REST, MLflow's documented examples run with only the import changed beside MLflow's own SDK,
credentials (MLflow's basic-auth app), TLS (an HTTPS front with a self-signed certificate), clear
errors; and, against a loopback stand-in, the record's retries, skips and counters.

Everything is read back with MLflow's own client, in MLflow's venv (``tests/backends/mlflow_query.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
import urllib.request
import uuid
from pathlib import Path

import pytest

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel.entities import AssessmentSource, SpanType
from mlflow_otel.exceptions import MlflowException
from tests.backends import MLFLOW317_VENV, MLFLOW_VENV, MlflowServer, Process, free_port, wait_until
from tests.backends.mlflow_extra import AuthMlflowServer, FakeMlflow, TlsProxy, query, wait_query
from tests.mlflow_apps import HERE as APPS
from tests.mlflow_apps import as_mlflow_otel

pytestmark = pytest.mark.backend
ROOT = Path(__file__).resolve().parent.parent


def _start_or_skip(factory):
    """A backend missing from the cache skips (CI counts a skip as a failure)."""
    try:
        return factory().start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def mlflow317_server(tmp_path_factory):
    backend = _start_or_skip(lambda: MlflowServer(tmp_path_factory.mktemp("mlflow317"), venv=MLFLOW317_VENV))
    yield backend
    backend.stop()


@pytest.fixture(params=["3.18", "3.17"])
def any_server(request):
    return request.getfixturevalue("mlflow_server" if request.param == "3.18" else "mlflow317_server")


def _experiment(prefix: str = "records") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _point_at(monkeypatch, uri: str, experiment: str, **env: str) -> None:
    """Point the SDK at a server and an experiment (by name, unless ``MLFLOW_EXPERIMENT_ID`` is
    given) with only the MLflow variables in ``env``."""
    for name in list(os.environ):
        if name.startswith(("MLFLOW_TRACKING_", "MLFLOW_EXPERIMENT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    tracing.reset()


@mlflow.trace(name="agent", span_type=SpanType.AGENT)
def agent(question: str, user: str, fail: bool = False) -> dict:
    mlflow.update_current_trace(
        client_request_id=f"req-{question}",
        tags={"environment": "production", "priority": 1, "escalated": True},
        metadata={"deployment": "blue", "model_version": 3},
        session_id=f"session-{user}",
        user=user,
        request_preview=f"user asks: {question}",
    )
    with mlflow.start_span("llm", span_type=SpanType.LLM) as span:
        span.set_inputs({"messages": [{"role": "user", "content": question}]})
        span.set_attribute(
            "mlflow.chat.tokenUsage", json.dumps({"input_tokens": 5, "output_tokens": 7, "total_tokens": 12})
        )
        time.sleep(0.05)
        if fail:
            raise RuntimeError("model unavailable")
        span.set_outputs(
            {"choices": [{"message": {"role": "assistant", "content": f"answer to {question}"}}]}
        )
    return {"answer": f"answer to {question}"}


# --- complete records ------------------------------------------------------------------------------
def test_complete_records_reach_the_server(any_server, monkeypatch):
    experiment = _experiment()
    _point_at(monkeypatch, any_server.uri, experiment)
    agent("q1", "ann")
    with pytest.raises(RuntimeError):
        agent("q2", "bob", fail=True)
    assert mlflow.flush_trace_async_logging(timeout_s=30)
    assert tracing.stats().get("mlflow_records_sent") == 2
    traces = {t["client_request_id"]: t for t in wait_query(any_server, experiment, 2)}
    ok, bad = traces["req-q1"], traces["req-q2"]
    assert ok["state"] == "OK" and bad["state"] == "ERROR"
    assert (
        bad["execution_duration"] is not None and bad["execution_duration"] >= 50
    )  # ERROR keeps its duration
    assert ok["request_preview"] == "user asks: q1"  # custom preview
    assert ok["response_preview"] == '{"answer": "answer to q1"}'  # computed as MLflow computes it
    assert ok["tags"]["environment"] == "production"
    assert ok["tags"]["priority"] == "1" and ok["tags"]["escalated"] == "True"  # str(value), as MLflow
    assert ok["tags"]["mlflow.traceName"] == "agent"
    meta = ok["metadata"]
    assert meta["deployment"] == "blue" and meta["model_version"] == "3"  # custom metadata kept
    assert meta["mlflow.trace.session"] == "session-ann" and meta["mlflow.trace.user"] == "ann"
    assert meta["mlflow.traceInputs"] == '{"question": "q1", "user": "ann", "fail": false}'
    assert json.loads(meta["mlflow.trace.tokenUsage"])["total_tokens"] == 12
    assert meta["mlflow.source.type"] == "LOCAL" and meta["mlflow.user"]
    spans = {s["name"]: s for s in ok["spans"]}
    assert spans["llm"]["span_type"] == "LLM" and spans["llm"]["parent_id"] == spans["agent"]["span_id"]
    assert spans["agent"]["outputs"] == {"answer": "answer to q1"}
    assert spans["llm"]["log_level"] == 20 and spans["agent"]["log_level"] == 20
    assert {s["status"] for s in bad["spans"]} == {"ERROR"}


def test_search_and_feedback_over_rest(any_server, monkeypatch):
    experiment = _experiment("search")
    _point_at(monkeypatch, any_server.uri, experiment)
    for question, user in (("a", "ann"), ("b", "bob"), ("c", "ann")):
        agent(question, user)
    with pytest.raises(RuntimeError):
        agent("d", "bob", fail=True)
    # Our read API (no flush: reads wait for what ended before them).
    assert len(mlflow.search_traces(return_type="list")) == 4
    by = {
        "metadata.`mlflow.trace.user` = 'ann'": ["req-c", "req-a"],
        "metadata.`mlflow.trace.session` = 'session-bob'": ["req-d", "req-b"],
        "tags.environment = 'production' AND trace.status = 'ERROR'": ["req-d"],
        "span.type = 'LLM' AND attributes.client_request_id = 'req-b'": ["req-b"],
        "trace.status = 'OK'": ["req-c", "req-b", "req-a"],
    }
    for filter_string, expected in by.items():
        found = mlflow.search_traces(filter_string=filter_string, return_type="list")
        assert [t.info.client_request_id for t in found] == expected, filter_string
        # ... and MLflow's own client finds the same traces.
        assert sorted(t["client_request_id"] for t in query(any_server, experiment, filter_string)) == sorted(
            expected
        )
    df = mlflow.search_traces(filter_string="attributes.client_request_id = 'req-a'")
    trace_id = df.iloc[0]["trace_id"]
    trace = mlflow.get_trace(trace_id)
    assert trace.info.client_request_id == "req-a" and trace.info.request_preview == "user asks: a"
    assert [(s.name, s.span_type) for s in trace.data.spans] == [("agent", "AGENT"), ("llm", "LLM")]
    assert trace.data.spans[1].inputs == {"messages": [{"role": "user", "content": "a"}]}
    assert trace.info.token_usage == {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}
    # Paging through max_results.
    client = mlflow.MlflowClient()
    first = client.search_traces(max_results=3, order_by=["timestamp_ms ASC"])
    rest = client.search_traces(max_results=3, order_by=["timestamp_ms ASC"], page_token=first.token)
    assert [t.info.client_request_id for t in first] == ["req-a", "req-b", "req-c"]
    assert [t.info.client_request_id for t in rest] == ["req-d"] and rest.token is None
    # Feedback and expectations, read back by MLflow's client.
    mlflow.log_feedback(
        trace_id=trace_id,
        name="response_is_correct",
        value=True,
        source=AssessmentSource(source_type="HUMAN", source_id="ann@example.com"),
        rationale="helpful",
    )
    mlflow.log_expectation(trace_id=trace_id, name="expected_answer", value={"text": "A"})
    (read,) = query(any_server, experiment, "attributes.client_request_id = 'req-a'")
    assessments = {a["name"]: a for a in read["assessments"]}
    assert assessments["response_is_correct"] == {
        "name": "response_is_correct",
        "value": True,
        "source_type": "HUMAN",
        "source_id": "ann@example.com",
        "rationale": "helpful",
        "valid": True,
        "kind": "Feedback",
    }
    assert assessments["expected_answer"]["value"] == {"text": "A"}
    assert assessments["expected_answer"]["kind"] == "Expectation"
    # Tags on a finished trace, and deletion.
    mlflow.set_trace_tag(trace_id, "reviewed", True)
    assert mlflow.get_trace(trace_id).info.tags["reviewed"] == "True"
    mlflow.delete_trace_tag(trace_id, "reviewed")
    assert "reviewed" not in client.get_trace(trace_id).info.tags
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None and exp.name == experiment
    assert client.delete_traces(exp.experiment_id, trace_ids=[trace_id]) == 1
    assert mlflow.get_trace(trace_id, silent=True) is None
    with pytest.raises(MlflowException, match="not found"):
        client.get_trace(trace_id)


# --- MLflow's documented examples, with only the import changed ------------------------------------
def _run_with_mlflow(script: Path, env: dict[str, str], cwd: Path) -> str:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    full.update(env)
    result = subprocess.run(
        [str(MLFLOW_VENV / "bin" / "python"), str(script)],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def _run_with_ours(source: str, env: dict[str, str], tmp_path: Path) -> str:
    script = tmp_path / "ours.py"
    script.write_text(source)
    full = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    full.update(env)
    full["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, str(script)], env=full, cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def _comparable(trace: dict) -> dict:
    """What both SDKs must agree on (MLflow's SDK also files Git details when GitPython is there,
    trace sizes, its entry point path; OTLP adds the resource's service.* tags)."""
    ignored_tags = {"mlflow.artifactLocation", "service.name", "service.instance.id"}
    kept_meta = {"mlflow.traceInputs", "mlflow.traceOutputs", "mlflow.trace.session", "mlflow.trace.user"}
    return {
        "client_request_id": trace["client_request_id"],
        "request_preview": trace["request_preview"],
        "response_preview": trace["response_preview"],
        "state": trace["state"],
        "tags": {k: v for k, v in trace["tags"].items() if k not in ignored_tags},
        "metadata": {
            k: v for k, v in trace["metadata"].items() if k in kept_meta or not k.startswith("mlflow.")
        },
        "spans": [
            (
                s["name"],
                s["span_type"],
                s["status"],
                s["inputs"],
                s["outputs"],
                s["log_level"],
                s["parent_id"] is None,
            )
            for s in trace["spans"]
        ],
        "assessments": trace["assessments"],
    }


def test_manual_tracing_and_faq_examples_match_mlflows_sdk(mlflow_server, tmp_path):
    source = (APPS / "manual_tracing.py").read_text()
    theirs, ours = _experiment("manual-mlflow"), _experiment("manual-ours")
    env = {"APP_TRACKING_URI": mlflow_server.uri}
    their_reads = _run_with_mlflow(APPS / "manual_tracing.py", {**env, "APP_EXPERIMENT": theirs}, tmp_path)
    our_reads = _run_with_ours(as_mlflow_otel(source), {**env, "APP_EXPERIMENT": ours}, tmp_path)
    assert json.loads(our_reads) == json.loads(their_reads)  # the FAQ's reads: the same answers
    assert json.loads(our_reads)["by_span_type"] == ["ask_model"]
    expected = {t["tags"]["mlflow.traceName"]: _comparable(t) for t in query(mlflow_server, theirs)}
    got = {t["tags"]["mlflow.traceName"]: _comparable(t) for t in query(mlflow_server, ours)}
    names = ["add_one", "ask_model", "broken_tool", "client_root", "doubled", "support_request"]
    assert sorted(got) == sorted(expected) == names
    for name in expected:
        assert got[name] == expected[name], name


def _load_app(source: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def _production_traffic(post) -> list:
    """Chat requests with their context headers, feedback on two of them, one failing request."""
    answers = []
    for i, (session, user) in enumerate((("s-1", "u-1"), ("s-1", "u-1"), ("s-2", "u-2"))):
        headers = {"X-Request-ID": f"r-{i}", "X-Session-ID": session, "X-User-ID": user}
        answers.append(post("/chat", {"message": f"hello {i}"}, headers))
    crash_headers = {"X-Request-ID": "r-crash", "X-Session-ID": "s-2", "X-User-ID": "u-2"}
    answers.append(post("/chat", {"message": "crash"}, crash_headers))
    answers.append(
        post(
            "/feedback",
            {"is_correct": True, "comment": "spot on"},
            {"X-Request-ID": "r-0", "X-End-User-ID": "end-user-9"},
        )
    )
    answers.append(
        post("/feedback", {"is_correct": False}, {"X-Request-ID": "r-2", "X-End-User-ID": "end-user-7"})
    )
    answers.append(post("/feedback", {"is_correct": True}, {"X-Request-ID": "r-missing"}))
    return answers


def test_production_monitoring_example_end_to_end(mlflow_server, monkeypatch, tmp_path):
    from fastapi.testclient import TestClient

    source = (APPS / "prod_monitoring.py").read_text()
    theirs, ours = _experiment("prod-mlflow"), _experiment("prod-ours")

    # MLflow's SDK: the app under uvicorn in MLflow's venv (synchronous trace logging, so its
    # feedback endpoint can find the trace it just wrote).
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    env.update(
        MLFLOW_TRACKING_URI=mlflow_server.uri,
        APP_EXPERIMENT=theirs,
        MLFLOW_ENABLE_ASYNC_TRACE_LOGGING="false",
    )
    app_process = Process(
        [
            str(MLFLOW_VENV / "bin" / "python"),
            "-m",
            "uvicorn",
            "prod_monitoring:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        tmp_path / "mlflow-app.log",
        env=env,
        cwd=APPS,
    )

    def post_http(path, body, headers):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
            headers={"content-type": "application/json", **headers},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None

    try:
        wait_until(
            lambda: post_http("/feedback", {"is_correct": True}, {"X-Request-ID": "warmup"})[0] == 200,
            60,
            "app",
        )
        their_answers = _production_traffic(post_http)
    finally:
        app_process.stop()

    # mlflow-otel: the same app with only the import changed, through FastAPI's test client.
    _point_at(monkeypatch, mlflow_server.uri, ours, APP_EXPERIMENT=ours)
    app = _load_app(as_mlflow_otel(source), "prod_monitoring_ours").app
    client = TestClient(app, raise_server_exceptions=False)

    def post_client(path, body, headers):
        response = client.post(path, json=body, headers=headers)
        return response.status_code, response.json() if response.status_code == 200 else None

    our_answers = _production_traffic(post_client)
    assert [a[0] for a in our_answers] == [a[0] for a in their_answers] == [200, 200, 200, 500, 200, 200, 200]
    assert our_answers[4][1]["status"] == "success" and our_answers[4][1]["trace_id"].startswith("tr-")
    assert our_answers[6][1]["status"] == "error" and their_answers[6][1]["status"] == "error"
    assert mlflow.flush_trace_async_logging(timeout_s=30)

    expected = {t["client_request_id"]: _comparable(t) for t in wait_query(mlflow_server, theirs, 4)}
    got = {t["client_request_id"]: _comparable(t) for t in wait_query(mlflow_server, ours, 4)}
    assert sorted(got) == sorted(expected) == ["r-0", "r-1", "r-2", "r-crash"]
    for request_id in expected:
        mine, theirs_ = got[request_id], expected[request_id]
        # The request preview shows the handler's inputs, FastAPI's Request object among them: each SDK
        # describes that object its own way. Everything else is the same record.
        for key in ("client_request_id", "response_preview", "state", "tags", "assessments"):
            assert mine[key] == theirs_[key], (request_id, key)
        assert {k: v for k, v in mine["metadata"].items() if k != "mlflow.traceInputs"} == {
            k: v for k, v in theirs_["metadata"].items() if k != "mlflow.traceInputs"
        }
        assert [s[:3] + s[4:] for s in mine["spans"]] == [s[:3] + s[4:] for s in theirs_["spans"]]
        if request_id != "r-crash":
            assert "hello" in mine["request_preview"] and "hello" in theirs_["request_preview"]
    assert got["r-crash"]["state"] == "ERROR"
    assert got["r-0"]["assessments"] == [
        {
            "name": "response_is_correct",
            "value": True,
            "source_type": "HUMAN",
            "source_id": "end-user-9",
            "rationale": "spot on",
            "valid": True,
            "kind": "Feedback",
        }
    ]
    assert got["r-2"]["assessments"][0]["value"] is False
    # The searches the monitoring page runs.
    for filter_string, expected_ids in {
        "metadata.`mlflow.trace.user` = 'u-1'": ["r-0", "r-1"],
        "metadata.`mlflow.trace.session` = 's-2'": ["r-2", "r-crash"],
        "tags.environment = 'production' AND trace.status = 'ERROR'": ["r-crash"],
    }.items():
        assert (
            sorted(
                t.info.client_request_id
                for t in mlflow.search_traces(filter_string=filter_string, return_type="list")
            )
            == expected_ids
        )
        assert (
            sorted(t["client_request_id"] for t in query(mlflow_server, ours, filter_string)) == expected_ids
        )


# --- errors, credentials, TLS ------------------------------------------------------------------------
def test_reads_raise_one_clear_error(mlflow_server, monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"
    _point_at(monkeypatch, dead, "anything")
    with pytest.raises(
        MlflowException, match=r"Cannot reach the MLflow server at http://127\.0\.0\.1:\d+"
    ) as caught:
        mlflow.search_traces(return_type="list")
    assert caught.value.error_code == "TEMPORARILY_UNAVAILABLE"
    with pytest.raises(MlflowException, match="Cannot reach"):
        mlflow.get_trace("tr-" + "a" * 32)

    _point_at(monkeypatch, mlflow_server.uri, "no-such-experiment-" + uuid.uuid4().hex[:6])
    with pytest.raises(MlflowException, match=r"Experiment 'no-such-experiment-.*' does not exist"):
        mlflow.search_traces(return_type="list")
    with pytest.raises(MlflowException, match="Experiment with ID '987654' does not exist"):
        mlflow.search_traces(locations=["987654"], return_type="list")
    with pytest.raises(MlflowException, match="HTTP 400: Invalid attribute key 'bogus'") as caught:
        mlflow.search_traces(locations=["0"], filter_string="trace.bogus = 'x'", return_type="list")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert mlflow.get_trace("tr-" + "b" * 32, silent=True) is None
    with pytest.raises(MlflowException, match="not found"):
        mlflow.log_feedback(trace_id="tr-" + "c" * 32, name="x", value=1)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    backend = _start_or_skip(lambda: AuthMlflowServer(tmp_path_factory.mktemp("mlflow-auth")))
    yield backend
    backend.stop()


def test_mlflow_basic_auth_credentials(auth_server, monkeypatch):
    experiment = _experiment("auth")
    # Without credentials: export is refused and counted, reads say what to set.
    _point_at(monkeypatch, auth_server.uri, experiment, MLFLOW_EXPERIMENT_ID="0")  # no lookup by name
    agent("nocreds", "ann")
    mlflow.flush_trace_async_logging(timeout_s=15)
    stats = tracing.stats()
    assert stats.get("dropped.rejected", 0) == 2 and stats.get("mlflow_records_skipped", 0) == 1
    with pytest.raises(
        MlflowException, match=r"asked for credentials \(HTTP 401\).*MLFLOW_TRACKING_USERNAME"
    ) as caught:
        mlflow.search_traces(return_type="list")
    assert caught.value.error_code == "UNAUTHENTICATED"
    # A wrong password is the same clear error.
    _point_at(
        monkeypatch,
        auth_server.uri,
        experiment,
        MLFLOW_TRACKING_USERNAME="admin",
        MLFLOW_TRACKING_PASSWORD="wrong",
    )
    with pytest.raises(MlflowException, match="HTTP 401"):
        mlflow.search_traces(return_type="list")
    # With MLflow's credential variables: spans, records, reads and feedback all go through.
    _point_at(
        monkeypatch,
        auth_server.uri,
        experiment,
        MLFLOW_TRACKING_USERNAME=auth_server.username,
        MLFLOW_TRACKING_PASSWORD=auth_server.password,
    )
    agent("creds", "ann")
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
    assert trace.info.client_request_id == "req-creds" and trace.info.tags["environment"] == "production"
    mlflow.log_feedback(trace_id=trace.info.trace_id, name="ok", value=True)
    creds = {
        "MLFLOW_TRACKING_USERNAME": auth_server.username,
        "MLFLOW_TRACKING_PASSWORD": auth_server.password,
    }
    (read,) = query(auth_server, experiment, env=creds)
    assert read["client_request_id"] == "req-creds" and read["assessments"][0]["name"] == "ok"
    assert tracing.stats().get("mlflow_records_sent") == 1


def test_tls_settings_and_bearer_token(mlflow_server, monkeypatch, tmp_path):
    proxy = TlsProxy(tmp_path, mlflow_server.uri).start()
    try:
        experiment = _experiment("tls")
        # A self-signed certificate: verification fails, and the error says which variables fix it.
        _point_at(monkeypatch, proxy.uri, experiment)
        with pytest.raises(
            MlflowException, match=r"TLS error.*MLFLOW_TRACKING_SERVER_CERT_PATH.*INSECURE_TLS"
        ):
            mlflow.search_traces(return_type="list")
        # MLFLOW_TRACKING_INSECURE_TLS: spans, the record and reads over HTTPS, certificate unchecked;
        # MLFLOW_TRACKING_TOKEN rides on every request as a bearer token.
        _point_at(
            monkeypatch,
            proxy.uri,
            experiment,
            MLFLOW_TRACKING_INSECURE_TLS="true",
            MLFLOW_TRACKING_TOKEN="tok-123",
        )
        agent("insecure", "ann")
        assert mlflow.get_trace(mlflow.get_last_active_trace_id()).info.client_request_id == "req-insecure"
        with proxy.seen.lock:
            seen = [(m, p, h.get("authorization")) for m, p, h, _ in proxy.seen.requests]
        kinds = {p.split("?")[0] for _, p, _ in seen}
        assert {"/v1/traces", "/api/3.0/mlflow/traces", "/api/3.0/mlflow/traces/get"} <= kinds
        assert {auth for _, _, auth in seen} == {"Bearer tok-123"}
        # MLFLOW_TRACKING_SERVER_CERT_PATH: the same, with the certificate checked against the bundle.
        _point_at(monkeypatch, proxy.uri, experiment, MLFLOW_TRACKING_SERVER_CERT_PATH=str(proxy.cert))
        agent("verified", "bob")
        assert mlflow.get_trace(mlflow.get_last_active_trace_id()).info.client_request_id == "req-verified"
        assert sorted(t["client_request_id"] for t in query(mlflow_server, experiment)) == [
            "req-insecure",
            "req-verified",
        ]
    finally:
        proxy.stop()


def test_migration_imports_from_mlflows_docs():
    from mlflow_otel.entities.trace_location import MlflowExperimentLocation
    from mlflow_otel.tracing import trace

    assert trace is mlflow.trace
    assert MlflowExperimentLocation("1").experiment_id == "1"
    mlflow.tracing.disable_notebook_display()
    mlflow.tracing.enable_notebook_display()


# --- a job that simply ends: every record sent, or counted and said ---------------------------------
JOB = """
import os
import mlflow_otel as mlflow

@mlflow.trace
def handle(i):
    mlflow.update_current_trace(client_request_id=f"req-{i}", metadata={"batch": "b1"}, tags={"k": "v"})
    with mlflow.start_span("child") as span:
        span.set_inputs({"q": i})
    return {"answer": i}

for i in range(int(os.environ["JOB_TRACES"])):
    handle(i)
print("app ok", flush=True)
"""


def _job(server: MlflowServer, experiment: str, tmp_path: Path, traces: int, **env: str):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    full.update(
        PYTHONPATH=str(ROOT), MLFLOW_TRACKING_URI=server.uri, MLFLOW_EXPERIMENT_NAME=experiment,
        JOB_TRACES=str(traces), MLFLOW_OTEL_STATS_FILE=str(tmp_path / f"{experiment}.json"), **env,
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", JOB], env=full, cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0 and "app ok" in done.stdout, done.stderr
    return done, json.loads((tmp_path / f"{experiment}.json").read_text())["counters"]


def test_a_job_that_simply_ends_leaves_a_whole_record_for_every_trace(mlflow_server, tmp_path):
    """300 traces and no flush: at exit the records go out four at a time while the server answers
    (it held 23-27 whole records of 300 when they went one at a time and the rest died uncounted).
    The budget is raised above the default 6 s: what the default cuts is the next test's."""
    experiment = _experiment("job")
    _, stats = _job(mlflow_server, experiment, tmp_path, 300, MLFLOW_OTEL_EXIT_BUSY_TIMEOUT_SECONDS="60")
    traces = wait_query(mlflow_server, experiment, 300)
    whole = [t for t in traces if t["client_request_id"] and t["metadata"].get("batch") == "b1"]
    assert len(whole) == 300
    assert stats["mlflow_records_sent"] == 300 and stats["spans_delivered"] == 600


def test_records_an_exit_budget_cuts_are_counted_and_said(mlflow_server, tmp_path):
    experiment = _experiment("cut")
    done, stats = _job(mlflow_server, experiment, tmp_path, 300, MLFLOW_OTEL_EXIT_BUSY_TIMEOUT_SECONDS="0.5")
    sent, failed = stats.get("mlflow_records_sent", 0), stats.get("mlflow_records_failed", 0)
    # Not sent: given up (failed), still queued on the senders (dropped), or their spans never left
    # the queue (skipped: no record without its spans).
    unsent = stats.get("mlflow_records_dropped", 0) + failed + stats.get("mlflow_records_skipped", 0)
    assert sent + unsent == 300 and unsent > 0, json.dumps(stats) + done.stderr
    assert f"At exit, {unsent} MLflow trace records were not sent" in done.stderr
    whole = [t for t in wait_query(mlflow_server, experiment, 300) if t["client_request_id"]]
    # A request cut at the deadline may still have been written by the server: counted as failed.
    assert sent <= len(whole) <= sent + failed


# --- the record's rules, against a loopback stand-in (fault injection) ------------------------------
@pytest.fixture
def fake_mlflow(monkeypatch):
    fake = FakeMlflow().start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fake.uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "5")
    monkeypatch.setenv("MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT", "20")
    tracing.reset()
    yield fake
    tracing.reset()
    fake.stop()


def test_the_record_follows_the_spans_and_is_retried(fake_mlflow):
    fake_mlflow.record_statuses = [503, 500]
    agent("retry", "ann")
    assert mlflow.flush_trace_async_logging(timeout_s=20)
    paths = fake_mlflow.seen.paths()
    first_record = paths.index("/api/3.0/mlflow/traces")
    assert paths[0] == "/v1/traces" and first_record > 0  # after the OTLP request with the root
    (_, _, record) = fake_mlflow.records()
    info = record["trace"]["trace_info"]
    assert info["client_request_id"] == "req-retry" and info["state"] == "OK"
    assert info["trace_location"] == {
        "type": "MLFLOW_EXPERIMENT",
        "mlflow_experiment": {"experiment_id": "5"},
    }
    assert info["tags"] == {
        "environment": "production",
        "priority": "1",
        "escalated": "True",
        "mlflow.traceName": "agent",
    }
    assert info["request_preview"] == "user asks: retry" and info["execution_duration"].endswith("s")
    stats = tracing.stats()
    assert stats["mlflow_records_sent"] == 1 and stats["mlflow_records_retries"] == 2


def test_no_record_for_a_trace_whose_spans_were_not_delivered(fake_mlflow):
    fake_mlflow.otlp_status = 400  # spans refused for good
    agent("refused", "ann")
    mlflow.flush_trace_async_logging(timeout_s=10)  # False: spans were dropped
    assert fake_mlflow.records() == []
    assert tracing.stats()["mlflow_records_skipped"] == 1


def test_no_record_when_an_earlier_batch_of_the_trace_failed(fake_mlflow, monkeypatch):
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
    tracing.reset()
    fake_mlflow.otlp_statuses = [400]  # one batch of the trace is refused, the others go through

    @mlflow.trace(name="wide")
    def wide():
        for i in range(4):
            with mlflow.start_span(f"step{i}"):
                pass

    wide()
    deadline = time.monotonic() + 10
    # Until the client has counted the rejected batch (not only the server seen it): a drop counted
    # during the flush below would rightly make it return False.
    while not any(k.startswith("dropped.") for k in tracing.stats()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mlflow.flush_trace_async_logging(timeout_s=10)
    assert fake_mlflow.seen.paths().count("/v1/traces") == 3
    assert fake_mlflow.records() == [] and tracing.stats()["mlflow_records_skipped"] == 1


def test_a_record_the_server_refuses_costs_a_count_and_a_warning(fake_mlflow, caplog):
    fake_mlflow.record_statuses = [400]
    agent("bad-record", "ann")
    assert mlflow.flush_trace_async_logging(timeout_s=10)
    stats = tracing.stats()
    assert stats["mlflow_records_failed"] == 1 and stats["spans_delivered"] == 2
    assert "Could not send the record of trace tr-" in caplog.text and "scripted 400" in caplog.text


def test_the_records_of_a_batch_go_out_in_parallel_over_kept_connections(fake_mlflow, monkeypatch):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "5000")  # one batch for all of them
    tracing.reset()
    for i in range(40):
        agent(f"many-{i}", "ann")
    assert mlflow.flush_trace_async_logging(timeout_s=20)
    sent = {r["trace"]["trace_info"]["client_request_id"] for r in fake_mlflow.records()}
    assert sent == {f"req-many-{i}" for i in range(40)}
    assert tracing.stats()["mlflow_records_sent"] == 40
    assert fake_mlflow.seen.paths().count("/v1/traces") == 1  # the spans went in one request
    # Kept connections: the export workers' (2 by default) and the 3 helpers', reused batch after batch.
    assert 1 < len(fake_mlflow.record_connections) <= 5
    for i in range(40, 60):
        agent(f"many-{i}", "ann")
    assert mlflow.flush_trace_async_logging(timeout_s=20)
    assert tracing.stats()["mlflow_records_sent"] == 60 and len(fake_mlflow.record_connections) <= 5


def test_spans_left_queued_at_exit_count_their_traces_records_as_skipped():
    """The exit deadline leaves spans in the queue: their traces get no record (none goes without
    its spans), and each such record is counted, so sent + failed + dropped + skipped = traces."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext

    from mlflow_otel._settings import OtlpSettings
    from mlflow_otel._telemetry import Counters
    from mlflow_otel.exporters.mlflow_record import MlflowRecordExporter

    def span(trace_id: int, span_id: int, parent=None) -> ReadableSpan:  # type: ignore[no-untyped-def]
        return ReadableSpan(f"s{span_id}", SpanContext(trace_id, span_id, False), parent=parent)

    counters = Counters()
    otlp = OtlpSettings("http/protobuf", "http://127.0.0.1:9/v1/traces")
    exporter = MlflowRecordExporter(otlp, 1 << 20, 1.0, client=None, experiment_id="1", counters=counters)  # type: ignore[arg-type]
    root_a, root_b = span(1, 1), span(2, 3)
    left = [root_a, span(1, 2, root_a.context), root_b, span(3, 5, SpanContext(3, 4, False))]
    assert exporter.salvage(left) == 0  # no spool: the stage counts the spans as dropped.shutdown
    assert counters.snapshot()["mlflow_records_skipped"] == 2  # traces 1 and 2; trace 3's root went


def test_a_root_delivered_before_its_childs_batch_gets_the_childs_token_usage():
    """The root's batch succeeds while a child's batch is still in flight: the record waits for
    the child and carries its usage (nothing is left behind in the exporter)."""
    import threading

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from mlflow_otel._settings import OtlpSettings
    from mlflow_otel._telemetry import Counters
    from mlflow_otel.exporters.mlflow_record import MlflowRecordExporter

    memory, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("root"):
        with provider.get_tracer("t").start_as_current_span("llm") as child:
            child.set_attribute(
                "mlflow.chat.tokenUsage", '{"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}'
            )
    llm, root = memory.get_finished_spans()
    child_in_flight, release = threading.Event(), threading.Event()

    class Records(MlflowRecordExporter):
        def _export_part(self, spans, overlay):  # the OTLP request: a child's is slow
            if spans[0].parent is not None:
                child_in_flight.set()
                release.wait(5)
            return len(spans)

    otlp = OtlpSettings("http/protobuf", "http://127.0.0.1:9/v1/traces")
    exporter = Records(otlp, 1 << 20, 1.0, client=None, experiment_id="1", counters=Counters())  # type: ignore[arg-type]
    sent: list = []
    exporter._send_all = sent.extend  # type: ignore[method-assign]
    worker = threading.Thread(target=exporter.export, args=([llm],))
    worker.start()
    assert child_in_flight.wait(5)
    exporter.export([root])
    assert sent == []  # the child's spans are still being exported
    release.set()
    worker.join(5)
    (info,) = sent
    assert json.loads(info.trace_metadata["mlflow.trace.tokenUsage"])["total_tokens"] == 5
    assert not exporter._usage and not exporter._deferred and not exporter._pending


def test_stopping_the_records_does_not_cut_a_span_export_in_its_backoff():
    """The MLflow exporter's shutdown first stops its records and waits for those in flight; a span
    request of another worker, in a 503's backoff meanwhile, still gets its retry (the records and
    the spans have separate stops)."""
    import threading

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from mlflow_otel._runtime import RUNTIME
    from mlflow_otel._settings import OtlpSettings

    COUNTERS = RUNTIME.counters
    from mlflow_otel.exporters.mlflow_record import MlflowRecordExporter
    from mlflow_otel.exporters.otlp import _Outcome

    memory, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("root"):
        with provider.get_tracer("t").start_as_current_span("child"):
            pass
    child = [s for s in memory.get_finished_spans() if s.parent is not None]
    sent: list[float] = []

    class Busy(MlflowRecordExporter):
        def _send(self, payload, timeout_s):  # 503 with Retry-After 0.3 s, then taken
            sent.append(time.monotonic())
            return (
                _Outcome(_Outcome.RETRY, delay=0.3, why="HTTP 503")
                if len(sent) == 1
                else _Outcome(_Outcome.OK)
            )

    class Client:
        shown_uri = "http://mlflow.invalid"

        def close_idle(self):
            pass

    otlp = OtlpSettings("http/protobuf", "http://127.0.0.1:9/v1/traces")
    exporter = Busy(otlp, 1 << 20, 30.0, client=Client(), experiment_id="1", counters=COUNTERS)  # type: ignore[arg-type]
    exporter._merger.close = lambda *a: None  # type: ignore[method-assign]
    exporter.begin_exit(time.monotonic() + 10)
    exporter._sending = 1  # a record of another batch in flight, settled 0.6 s from now
    threading.Timer(0.6, lambda: setattr(exporter, "_sending", 0)).start()
    result: list = []
    worker = threading.Thread(target=lambda: result.append(exporter.export(child)))
    worker.start()
    time.sleep(0.1)  # the span request is in its backoff
    exporter.shutdown()
    worker.join(5)
    assert result == [SpanExportResult.SUCCESS] and len(sent) == 2
    assert COUNTERS.get("dropped.shutdown") == 0 and COUNTERS.get("spans_delivered") == 1


def test_an_experiment_the_server_refuses_to_create_says_why(fake_mlflow):
    from mlflow_otel import _mlflow_server

    fake_mlflow.create_experiment_answer = (400, "INVALID_PARAMETER_VALUE", "Invalid experiment name: 'a/b'")
    with pytest.raises(MlflowException, match="Invalid experiment name"):
        _mlflow_server.get_or_create_experiment(fake_mlflow.uri, "a/b")


def test_a_callee_without_the_roots_record_adds_its_tags_and_counts_its_metadata(mlflow_server, monkeypatch):
    # exporters/mlflow_merge.py's fallback: the root's service never sends a record (here: there is
    # no caller at all, only its traceparent), so after the retry timeout the callee's tags are set
    # with MLflow's SetTraceTag and its metadata, which MLflow cannot take without a record, is
    # counted as dropped.
    experiment = f"callee-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    monkeypatch.setenv("MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT", "1.5")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    tracing.reset()
    before = tracing.stats()
    trace_hex = uuid.uuid4().hex
    headers = {"traceparent": f"00-{trace_hex}-{'1' * 16}-01"}
    with mlflow.tracing.set_tracing_context_from_http_request_headers(headers), mlflow.start_span("callee"):
        mlflow.update_current_trace(tags={"served_by": "agent"}, metadata={"agent.version": "2"})
    assert mlflow.flush_trace_async_logging()

    def merged() -> bool:
        return tracing.stats().get("mlflow_fragments_merged", 0) > before.get("mlflow_fragments_merged", 0)

    wait_until(merged, 15, "the fragment's merge")
    (trace,) = mlflow_server.wait_for_traces(experiment, 1)
    assert trace["trace_id"] == f"tr-{trace_hex}"
    assert trace["tags"]["served_by"] == "agent" and "agent.version" not in trace["metadata"]
    dropped = tracing.stats().get("mlflow_merge_metadata_dropped", 0) - before.get(
        "mlflow_merge_metadata_dropped", 0
    )
    assert dropped == 1


def test_a_server_restarted_mid_job_gets_every_whole_record(tmp_path, monkeypatch):
    """The server goes away between two halves of a job and comes back (same port, same database):
    the second half's spans and records wait in their retries and arrive whole; nothing twice."""
    server = _start_or_skip(lambda: MlflowServer(tmp_path))
    try:
        experiment = _experiment("restart")
        _point_at(monkeypatch, server.uri, experiment, MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT="120")
        for i in range(10):
            agent(f"before-{i}", "ann")
        assert mlflow.flush_trace_async_logging(timeout_s=60)
        server.stop()
        for i in range(10):
            agent(f"during-{i}", "bob")
        mlflow.flush_trace_async_logging(timeout_s=1)  # the server is down: nothing goes out
        server.restart()
        # (Its result is not asserted: it is False when any pipeline of this process dropped a span
        # meanwhile, and an earlier test's may still be giving up on its own dead endpoint.)
        mlflow.flush_trace_async_logging(timeout_s=90)
        traces = wait_query(server, experiment, 20)
        ids = sorted(t["client_request_id"] for t in traces)
        assert ids == sorted([f"req-before-{i}" for i in range(10)] + [f"req-during-{i}" for i in range(10)])
        assert all(t["metadata"].get("deployment") == "blue" and len(t["spans"]) == 2 for t in traces)
        stats = tracing.stats()
        assert stats.get("mlflow_records_sent") == 20, stats
    finally:
        tracing.reset()
        server.stop()
