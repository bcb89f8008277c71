"""MLflow's read API on the embedded local store (``records/local.py``): ``get_trace`` right after a
trace ends, ``search_traces`` with MLflow's filter grammar, ordering and paging, the errors for
filters it does not answer, DataFrames, ``delete_traces``, tags and feedback on finished traces; the
OTLP/JSON file still written beside it; the store's cap; a store shared by processes; reads that
never hold export up; and an OTLP-only destination, where the read calls say where traces went.

The store is the real thing (a SQLite file next to the default sink's file, written by the export
thread); nothing here is mocked.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import warnings
from pathlib import Path

import pytest

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel._settings import load
from mlflow_otel._telemetry import Counters
from mlflow_otel.entities import AssessmentSource, AssessmentSourceType, Expectation, Feedback, SpanType
from mlflow_otel.exceptions import MlflowException
from mlflow_otel.otlp.json import span_texts
from mlflow_otel.pipeline.route import default_routes
from mlflow_otel.records.local import LocalStore, LocalTraceWriter, store_path
from tests.conftest import run_python


def _store() -> LocalStore:
    path = os.environ["MLFLOW_OTEL_TRACES_FILE"]
    return LocalStore(store_path(path), path)


@mlflow.trace(name="handle", span_type=SpanType.AGENT)
def handle(message: str, i: int, env: str = "prod", fail: bool = False) -> str:
    mlflow.update_current_trace(
        client_request_id=f"req-{i}",
        tags={"environment": env, "flagged": i % 3 == 0},
        metadata={"deployment": "blue"},
        session_id=f"session-{i % 2}",
        user=f"user-{i % 3}",
    )
    with mlflow.start_span("retrieve", span_type=SpanType.RETRIEVER) as span:
        span.set_inputs({"query": message})
        span.set_outputs(["doc"])
    with mlflow.start_span("llm", span_type=SpanType.CHAT_MODEL) as span:
        span.set_inputs({"messages": [{"role": "user", "content": message}]})
        if fail:
            raise RuntimeError("model unavailable")
        span.set_outputs({"choices": [{"message": {"role": "assistant", "content": f"re: {message}"}}]})
    return f"re: {message}"


def _make(n: int = 6) -> list[str]:
    ids = []
    for i in range(n):
        try:
            handle(f"question {i}", i, env="prod" if i % 2 else "dev", fail=i == 4)
        except RuntimeError:
            pass
        ids.append(mlflow.get_last_active_trace_id())
        time.sleep(0.002)  # distinct request times
    return ids


def _ids(traces) -> list[str]:
    return [t.info.client_request_id for t in traces]


# --- get_trace right after the trace ends -----------------------------------------------------------
def test_get_trace_of_the_last_active_trace_works_at_once_without_a_flush():
    handle("hello", 7)
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id())  # no flush_trace_async_logging()
    assert trace is not None
    info = trace.info
    assert info.trace_id == mlflow.get_last_active_trace_id()
    assert info.state == "OK" and info.client_request_id == "req-7"
    assert info.request_preview == '{"message": "hello", "i": 7, "env": "prod", "fail": false}'
    assert info.response_preview == '"re: hello"'
    assert info.tags["environment"] == "prod" and info.tags["flagged"] == "False"
    assert info.tags["mlflow.traceName"] == "handle"
    assert info.trace_metadata["mlflow.trace.session"] == "session-1"
    assert info.trace_metadata["mlflow.trace.user"] == "user-1"
    assert info.trace_metadata["deployment"] == "blue"
    assert info.execution_duration is not None and info.execution_duration >= 0
    assert info.experiment_id == "0"
    spans = {s.name: s for s in trace.data.spans}
    assert trace.data.spans[0].name == "handle"
    assert spans["llm"].span_type == "CHAT_MODEL" and spans["llm"].parent_id == spans["handle"].span_id
    assert spans["retrieve"].inputs == {"query": "hello"} and spans["retrieve"].outputs == ["doc"]
    assert spans["handle"].attributes["mlflow.spanType"] == "AGENT"
    assert int(spans["llm"].attributes["mlflow.spanLogLevel"]) == 20


def test_get_trace_of_an_unknown_trace_is_none_with_a_warning(caplog):
    handle("x", 1)
    assert mlflow.get_trace("tr-" + "0" * 32) is None
    assert "not found" in caplog.text
    caplog.clear()
    assert mlflow.get_trace("tr-" + "1" * 32, silent=True) is None
    assert "not found" not in caplog.text


def test_the_otlp_json_file_is_still_written_beside_the_store():
    ids = _make(2)
    mlflow.flush_trace_async_logging()
    lines = Path(os.environ["MLFLOW_OTEL_TRACES_FILE"]).read_text().splitlines()
    written = {
        "tr-" + span["traceId"]
        for line in lines
        for resource in json.loads(line)["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    }
    assert set(ids) <= written
    assert Path(store_path(os.environ["MLFLOW_OTEL_TRACES_FILE"])).exists()
    assert _store().count() == 2


# --- search_traces: MLflow's grammar ------------------------------------------------------------------
@pytest.fixture
def six_traces() -> list[str]:
    ids = _make(6)
    mlflow.flush_trace_async_logging()
    return ids


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("tags.environment = 'prod'", ["req-5", "req-3", "req-1"]),
        ("tags.environment != 'prod'", ["req-4", "req-2", "req-0"]),
        ("tags.flagged = 'True'", ["req-3", "req-0"]),
        ("metadata.`mlflow.trace.user` = 'user-2'", ["req-5", "req-2"]),
        ("metadata.mlflow.trace.session = 'session-0'", ["req-4", "req-2", "req-0"]),
        ("request_metadata.deployment LIKE 'bl%'", ["req-5", "req-4", "req-3", "req-2", "req-1", "req-0"]),
        ("trace.status = 'ERROR'", ["req-4"]),
        ("attributes.status != 'ERROR' AND tags.environment = 'dev'", ["req-2", "req-0"]),
        ("trace.client_request_id = 'req-3'", ["req-3"]),
        ("trace.client_request_id IN ('req-1', 'req-2')", ["req-2", "req-1"]),
        ("trace.name = 'handle'", ["req-5", "req-4", "req-3", "req-2", "req-1", "req-0"]),
        ("span.type = 'RETRIEVER' AND tags.environment = 'dev'", ["req-4", "req-2", "req-0"]),
        ("span.name = 'llm' AND span.status = 'ERROR'", ["req-4"]),
        ("tags.environment ILIKE 'PRO%'", ["req-5", "req-3", "req-1"]),
        ("tags.environment LIKE 'PRO%'", []),
        ("tags.`environment` RLIKE '^de'", ["req-4", "req-2", "req-0"]),
        ("tags.missing IS NULL AND trace.client_request_id = 'req-0'", ["req-0"]),
        ("tags.flagged IS NOT NULL AND metadata.`mlflow.trace.user` = 'user-0'", ["req-3", "req-0"]),
    ],
)
def test_search_traces_filters(six_traces, filter_string, expected):
    assert _ids(mlflow.search_traces(filter_string=filter_string, return_type="list")) == expected


def test_search_traces_by_time_and_duration(six_traces):
    traces = mlflow.search_traces(return_type="list")
    third = sorted(t.info.request_time for t in traces)[2]
    later = mlflow.search_traces(filter_string=f"trace.timestamp_ms > {third}", return_type="list")
    assert len(later) == 3 and all(t.info.request_time > third for t in later)
    assert len(mlflow.search_traces(filter_string=f"timestamp >= {third}", return_type="list")) == 4
    assert len(mlflow.search_traces(filter_string="trace.execution_time_ms >= 0", return_type="list")) == 6
    assert mlflow.search_traces(filter_string="trace.execution_time_ms > 60000", return_type="list") == []


def test_search_traces_order_by_and_paging(six_traces):
    assert _ids(mlflow.search_traces(order_by=["timestamp_ms ASC"], return_type="list")) == [
        f"req-{i}" for i in range(6)
    ]
    newest_first = _ids(mlflow.search_traces(return_type="list"))  # MLflow's default order
    assert newest_first == [f"req-{i}" for i in reversed(range(6))]
    assert _ids(mlflow.search_traces(max_results=2, return_type="list")) == ["req-5", "req-4"]
    by_env = _ids(
        mlflow.search_traces(order_by=["tags.environment ASC", "timestamp_ms ASC"], return_type="list")
    )
    assert by_env == ["req-0", "req-2", "req-4", "req-1", "req-3", "req-5"]
    client = mlflow.MlflowClient()
    pages, token = [], None
    for _ in range(5):
        page = client.search_traces(max_results=4, page_token=token, order_by=["timestamp_ms ASC"])
        pages.append(_ids(page))
        token = page.token
        if token is None:
            break
    assert pages == [["req-0", "req-1", "req-2", "req-3"], ["req-4", "req-5"]]
    without_spans = mlflow.search_traces(max_results=1, include_spans=False, return_type="list")
    assert without_spans[0].data.spans == [] and without_spans[0].info.client_request_id == "req-5"


def test_search_traces_returns_mlflows_dataframe(six_traces):
    pd = pytest.importorskip("pandas")  # a test dependency; pandas stays optional for users
    df = mlflow.search_traces(filter_string="trace.client_request_id = 'req-1'")
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == [
        "trace_id",
        "trace",
        "client_request_id",
        "state",
        "request_time",
        "execution_duration",
        "request",
        "response",
        "trace_metadata",
        "tags",
        "spans",
        "assessments",
    ]
    row = df.iloc[0]
    assert row.trace_id == six_traces[1] and row.client_request_id == "req-1" and row.state == "OK"
    assert row.request == {"message": "question 1", "i": 1, "env": "prod", "fail": False}
    assert row.response == "re: question 1" and row.tags["environment"] == "prod"
    assert [s["name"] for s in row.spans] == ["handle", "retrieve", "llm"]
    assert json.loads(row.trace)["info"]["trace_id"] == six_traces[1]
    with pytest.warns(FutureWarning, match="extract_fields"):
        extracted = mlflow.search_traces(
            filter_string="trace.client_request_id = 'req-1'",
            extract_fields=["retrieve.inputs.query", "llm.outputs"],
        )
    assert extracted["retrieve.inputs.query"][0] == "question 1"
    assert extracted["llm.outputs"][0]["choices"][0]["message"]["content"] == "re: question 1"
    empty = mlflow.search_traces(filter_string="tags.environment = 'staging'")
    assert empty.empty and "trace_id" in empty.columns


def test_search_traces_argument_errors(six_traces):
    with pytest.raises(MlflowException, match="Invalid return type"):
        mlflow.search_traces(return_type="invalid")
    with pytest.raises(MlflowException, match="locations must be a list"):
        mlflow.search_traces(locations="0")
    with pytest.raises(MlflowException, match="The `extract_fields`"), pytest.warns(FutureWarning):
        mlflow.search_traces(extract_fields=["llm.inputs"], return_type="list")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(mlflow.search_traces(experiment_ids=["0"], return_type="list")) == 6
    assert any("experiment_ids" in str(w.message) and w.category is FutureWarning for w in caught)
    assert mlflow.search_traces(locations=["42"], return_type="list") == []


@pytest.mark.parametrize(
    ("filter_string", "message"),
    [
        ("tags.a = 'x' OR tags.b = 'y'", "OR is not supported"),
        ("trace.bogus = 'x'", "Invalid attribute key 'bogus'"),
        ("trace.timestamp_ms > 'yesterday'", "Expected a numeric value"),
        ("tags.environment > 'a'", "Invalid comparator '>'"),
        ("foo.bar = 'x'", "Invalid entity type 'foo'"),
        ("tags.environment = prod", "quote strings"),
        ("(tags.a = 'x')", "parentheses are not supported"),
        ("tags.environment = 'prod' tags.x = 'y'", "expected AND"),
        ("span.content LIKE '%question%'", "'span.content LIKE '%question%'' is not supported by the local"),
        ("trace.text LIKE '%question%'", "is not supported by the local trace store"),
        ("feedback.rating = 'good'", "'feedback.rating = 'good'' is not supported"),
        ("span.attributes.model = 'gpt'", "is not supported by the local trace store"),
    ],
)
def test_filters_the_grammar_rejects_or_the_store_cannot_answer_raise_one_clear_error(
    six_traces, filter_string, message
):
    with pytest.raises(MlflowException, match=_escape(message)) as caught:
        mlflow.search_traces(filter_string=filter_string, return_type="list")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def _escape(text: str) -> str:
    import re

    return re.escape(text).replace("'", "[\"']")


# --- writes on finished traces ----------------------------------------------------------------------
def test_delete_traces_by_id_and_by_timestamp(six_traces):
    client = mlflow.MlflowClient()
    assert client.delete_traces("0", trace_ids=[six_traces[0], six_traces[1]]) == 2
    assert mlflow.get_trace(six_traces[0], silent=True) is None
    remaining = mlflow.search_traces(order_by=["timestamp_ms ASC"], return_type="list")
    assert _ids(remaining) == ["req-2", "req-3", "req-4", "req-5"]
    cutoff = remaining[1].info.request_time
    assert client.delete_traces("0", max_timestamp_millis=cutoff, max_traces=1) == 1
    assert _ids(mlflow.search_traces(order_by=["timestamp_ms ASC"], return_type="list")) == [
        "req-3",
        "req-4",
        "req-5",
    ]
    assert client.delete_traces("0", max_timestamp_millis=int(time.time() * 1000)) == 3
    assert _store().count() == 0
    with pytest.raises(MlflowException, match="must be specified"):
        client.delete_traces("0")


def test_tags_on_finished_traces(six_traces):
    trace_id = six_traces[2]
    mlflow.set_trace_tag(trace_id, "reviewed", True)
    mlflow.MlflowClient().set_trace_tag(trace_id, "queue", "support")
    assert mlflow.get_trace(trace_id).info.tags["reviewed"] == "True"
    assert _ids(mlflow.search_traces(filter_string="tags.queue = 'support'", return_type="list")) == ["req-2"]
    mlflow.delete_trace_tag(trace_id, "reviewed")
    assert "reviewed" not in mlflow.get_trace(trace_id).info.tags
    with pytest.raises(MlflowException, match="not found"):
        mlflow.set_trace_tag("tr-" + "f" * 32, "k", "v")


def test_request_id_is_still_accepted_for_trace_id(six_traces):
    """MLflow 2's keyword, as MLflow 3.18 takes it: a FutureWarning, then the same call."""
    trace_id = six_traces[0]
    with pytest.warns(FutureWarning, match="'request_id' is deprecated"):
        mlflow.set_trace_tag(request_id=trace_id, key="legacy", value="yes")
    with pytest.warns(FutureWarning):
        assert mlflow.get_trace(request_id=trace_id).info.tags["legacy"] == "yes"
    with pytest.warns(FutureWarning):
        mlflow.delete_trace_tag(request_id=trace_id, key="legacy")
    assert "legacy" not in mlflow.get_trace(trace_id).info.tags


def test_feedback_and_expectations_on_the_local_store(six_traces):
    trace_id = six_traces[1]
    feedback = mlflow.log_feedback(
        trace_id=trace_id,
        name="response_is_correct",
        value=True,
        source=AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id="ann@example.com"),
        rationale="matches the docs",
    )
    assert feedback.assessment_id.startswith("a-") and feedback.trace_id == trace_id
    expectation = mlflow.log_expectation(trace_id=trace_id, name="expected", value={"answer": "42"})
    stored = {a.name: a for a in mlflow.get_trace(trace_id).info.assessments}
    assert stored["response_is_correct"].value is True
    assert stored["response_is_correct"].source == AssessmentSource("HUMAN", "ann@example.com")
    assert stored["response_is_correct"].rationale == "matches the docs"
    assert isinstance(stored["expected"], Expectation) and stored["expected"].value == {"answer": "42"}
    assert stored["expected"].source.source_type == "HUMAN"
    assert mlflow.get_assessment(trace_id, expectation.assessment_id).value == {"answer": "42"}
    replaced = mlflow.override_feedback(trace_id=trace_id, assessment_id=feedback.assessment_id, value=False)
    by_id = {a.assessment_id: a for a in mlflow.get_trace(trace_id).info.assessments}
    assert by_id[feedback.assessment_id].valid is False and by_id[replaced.assessment_id].value is False
    assert by_id[replaced.assessment_id].overrides == feedback.assessment_id
    mlflow.delete_assessment(trace_id, expectation.assessment_id)
    assert expectation.assessment_id not in {
        a.assessment_id for a in mlflow.get_trace(trace_id).info.assessments
    }
    logged = mlflow.log_assessment(trace_id, Feedback(name="judge", value=0.5, error=None))
    assert logged.source.source_type == "CODE"
    with pytest.raises(MlflowException, match="not found"):
        mlflow.log_feedback(trace_id="tr-" + "e" * 32, name="x", value=1)
    with pytest.raises(TypeError):
        mlflow.log_feedback(trace_id, "faithfulness", 1.0)  # keyword-only, as in MLflow


def test_feedback_logged_inside_the_traced_function_is_filed_with_the_trace():
    """MLflow attaches assessments to a trace that is still open; they are there once it ends.
    ``trace_id=None`` (no trace: tracing disabled, sampled out) returns without storing."""

    @mlflow.trace
    def answer(q: str) -> str:
        trace_id = mlflow.get_active_trace_id()
        logged = mlflow.log_feedback(trace_id=trace_id, name="quick", value=1.0)
        assert logged.trace_id == trace_id and logged.assessment_id.startswith("a-")
        with mlflow.start_span("step") as span:
            mlflow.log_expectation(trace_id=trace_id, name="gold", value="42", span_id=span.span_id)
        return "42"

    answer("q")
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
    stored = {a.name: a for a in trace.info.assessments}
    assert stored["quick"].value == 1.0 and stored["gold"].value == "42"
    assert stored["gold"].span_id == trace.search_spans(name="step")[0].span_id
    orphan = Feedback(name="x", value=1)
    assert mlflow.log_assessment(None, orphan) is orphan


def test_update_assessment_merges_metadata(six_traces):
    """MLflow's update: the new metadata keys win, the others stay."""
    trace_id = six_traces[0]
    logged = mlflow.log_feedback(trace_id=trace_id, name="f", value=1, metadata={"model": "m", "k": "old"})
    mlflow.update_assessment(
        trace_id=trace_id,
        assessment_id=logged.assessment_id,
        assessment=Feedback(name="f", value=0, metadata={"k": "new"}),
    )
    assert mlflow.get_assessment(trace_id, logged.assessment_id).metadata == {"model": "m", "k": "new"}


# --- layout: merged batches, the cap, processes, readers that never block export --------------------
def test_a_trace_split_across_export_batches_is_merged(monkeypatch):
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
    tracing.reset()

    @mlflow.trace(name="fanout")
    def fanout():
        for i in range(7):
            with mlflow.start_span(f"step{i}"):
                pass
        return "done"

    fanout()
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
    assert len(trace.data.spans) == 8 and trace.data.spans[0].name == "fanout"
    assert trace.info.tags["mlflow.traceName"] == "fanout" and trace.info.response_preview == '"done"'


def test_the_store_keeps_the_newest_traces_within_its_cap(tmp_path):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    path = str(tmp_path / "capped.db")
    writer = LocalTraceWriter(path, max_bytes=20_000, counters=Counters())

    class Sink:
        def export(self, spans):
            writer.write(spans, span_texts(spans))

        def shutdown(self):
            pass

        def force_flush(self, timeout_millis=0):
            return True

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Sink()))  # type: ignore[arg-type]
    tracer = provider.get_tracer("t")
    for i in range(200):
        with tracer.start_as_current_span(f"root-{i}") as span:
            span.set_attribute("mlflow.spanInputs", json.dumps({"payload": os.urandom(100).hex(), "i": i}))
        time.sleep(0.0015)  # one request time (ms) per trace: "oldest" is well defined
    store = LocalStore(path)
    kept = store.search_traces(None, None, None, ["timestamp_ms ASC"])[0]
    assert 0 < len(kept) < 200
    names = [t.data.spans[0].name for t in kept]
    assert names == [f"root-{i}" for i in range(200 - len(kept), 200)]  # the newest, oldest dropped
    with sqlite3.connect(path) as conn:
        total = conn.execute("SELECT SUM(bytes) FROM traces").fetchone()[0]
        counted = conn.execute("SELECT value FROM store_meta WHERE key = 'bytes'").fetchone()[0]
    assert total == counted <= 20_000


def test_two_processes_share_one_store(tmp_path):
    traces_file = tmp_path / "shared.jsonl"
    code = (
        "import sys, mlflow_otel as mlflow\n"
        "@mlflow.trace(name='worker')\n"
        "def work(n):\n"
        "    mlflow.update_current_trace(tags={'worker': sys.argv[1]})\n"
        "    return n\n"
        "for n in range(20):\n"
        "    work(n)\n"
    )
    env = {"MLFLOW_OTEL_TRACES_FILE": str(traces_file), "OTEL_BSP_SCHEDULE_DELAY": "10"}
    script = tmp_path / "work.py"
    script.write_text(code)
    import subprocess
    import sys

    procs = [
        subprocess.Popen(
            [sys.executable, str(script), name],
            env={**{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}, **env},
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        for name in ("a", "b")
    ]
    for proc in procs:
        assert proc.wait(60) == 0
    store = LocalStore(store_path(str(traces_file)))
    for name in ("a", "b"):
        found = store.search_traces(None, f"tags.worker = '{name}'", None, None)[0]
        assert len(found) == 20


def test_a_reader_holding_the_store_open_never_holds_export_up():
    _make(1)
    mlflow.flush_trace_async_logging()
    reader = sqlite3.connect(store_path(os.environ["MLFLOW_OTEL_TRACES_FILE"]))
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM traces").fetchone()[0] == 1  # a read transaction stays open
    started = time.monotonic()
    _make(3)
    assert mlflow.flush_trace_async_logging(timeout_s=5)
    assert time.monotonic() - started < 3
    assert _store().count() == 4  # written while the reader held its snapshot (WAL)
    reader.execute("ROLLBACK")
    reader.close()


def test_reads_from_another_thread_while_traces_are_exported():
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_loop():
        while not stop.is_set():
            try:
                mlflow.search_traces(
                    filter_string="tags.environment = 'prod'", return_type="list", max_results=5
                )
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    thread = threading.Thread(target=read_loop)
    thread.start()
    try:
        _make(30)
    finally:
        stop.set()
        thread.join(10)
    assert not errors
    assert len(mlflow.search_traces(return_type="list")) == 30


# --- where the read API reads ---------------------------------------------------------------------
def test_an_otlp_only_destination_makes_reads_say_where_the_traces_went(otlp_http, receiver):
    handle("hello", 1)
    otlp_http(3)
    for call in (
        lambda: mlflow.get_trace(mlflow.get_last_active_trace_id()),
        lambda: mlflow.search_traces(),
        lambda: mlflow.log_feedback(trace_id="tr-" + "a" * 32, value=True),
    ):
        with pytest.raises(MlflowException, match=r"go to OTLP/HTTP http://127\.0\.0\.1") as caught:
            call()
        assert "read them there" in str(caught.value)


def test_mlflow_enable_otlp_exporter_false_ignores_the_otlp_endpoint(otlp_http, receiver, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_OTLP_EXPORTER", "false")
    tracing.reset()
    handle("hello", 1)
    assert mlflow.get_trace(mlflow.get_last_active_trace_id()).info.client_request_id == "req-1"
    mlflow.flush_trace_async_logging()
    assert all(s.name != "handle" for s in receiver.spans())


def test_otlp_replaces_the_mlflow_server_unless_dual_export_is_on():
    env = {
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
    }
    only_otlp = [r.key.split("|")[0] for r in default_routes(load(env))]
    assert only_otlp == ["otlp"]  # MLflow's rule: OTLP export replaces MLflow export
    both = [
        r.key.split("|")[0]
        for r in default_routes(load({**env, "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT": "true"}))
    ]
    assert both == ["otlp", "mlflow"]
    no_otlp = default_routes(load({**env, "MLFLOW_ENABLE_OTLP_EXPORTER": "false"}))
    assert [r.key.split("|")[0] for r in no_otlp] == ["mlflow"]
    assert [r.key.split("|")[0] for r in default_routes(load({}))] == ["file"]


def test_notebook_display_switches_are_accepted_outside_notebooks():
    mlflow.tracing.disable_notebook_display()
    handle("x", 1)
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
    assert trace._repr_html_() is None  # Jupyter then shows the plain repr
    mlflow.tracing.enable_notebook_display()
    assert "<" in (trace._repr_html_() or "<")


def test_run_python_helper_reads_the_store_from_a_fresh_process(tmp_path):
    code = (
        "import mlflow_otel as mlflow\n"
        "@mlflow.trace\n"
        "def f(x):\n"
        "    return x + 1\n"
        "f(1)\n"
        "t = mlflow.get_trace(mlflow.get_last_active_trace_id())\n"
        "print(t.info.state, t.data.spans[0].outputs, t.info.response_preview)\n"
    )
    result = run_python(code, {"MLFLOW_OTEL_TRACES_FILE": str(tmp_path / "t.jsonl")}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["OK", "2", "2"]


def test_json_text_returned_by_a_function_reads_back_as_text(tmp_path, monkeypatch):
    """MLflow decodes a span's outputs once: a function that returns JSON text gives that text."""
    monkeypatch.setenv("MLFLOW_OTEL_TRACES_FILE", str(tmp_path / "t.jsonl"))
    tracing.reset()

    @mlflow.trace
    def answer():
        return '{"a": 1}'

    answer()
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
    assert trace.data.spans[0].outputs == '{"a": 1}'


def test_trace_inputs_metadata_is_cut_where_mlflow_cuts_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_OTEL_TRACES_FILE", str(tmp_path / "t.jsonl"))
    tracing.reset()

    @mlflow.trace
    def echo(text):
        return text

    echo("x" * 600)
    info = mlflow.get_trace(mlflow.get_last_active_trace_id()).info
    assert len(info.trace_metadata["mlflow.traceInputs"]) == 250  # MAX_CHARS_IN_TRACE_INFO_METADATA
    assert info.trace_metadata["mlflow.traceOutputs"].endswith("...")
