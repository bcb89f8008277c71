"""The low-level client API: spans that start and end in different places, on any thread."""

from __future__ import annotations

import threading

import mlflow_otel as mlflow
from mlflow_otel import MlflowClient
from mlflow_otel.client import MlflowClient as ClientFromModule
from mlflow_otel.entities import SpanType
from tests.conftest import by_name, decoded


def test_client_spans_across_threads(otlp):
    assert ClientFromModule is MlflowClient
    client = MlflowClient()
    root = client.start_trace("conversation", inputs={"q": "hi"}, attributes={"a": 1}, tags={"team": "x"})
    child_ref = {}

    def start_child():
        child_ref["span"] = client.start_span(
            "retrieval",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            span_type=SpanType.RETRIEVER,
            inputs={"k": 3},
        )

    def end_child():
        span = child_ref["span"]
        client.end_span(trace_id=span.trace_id, span_id=span.span_id, outputs=["doc"], attributes={"hits": 1})

    for target in (start_child, end_child):
        t = threading.Thread(target=target)
        t.start()
        t.join()
    # MLflow 2 spelling: request_id
    grandchild = client.start_span("llm", request_id=root.request_id, parent_id=child_ref["span"].span_id)
    client.end_span(request_id=root.request_id, span_id=grandchild.span_id, status="ERROR")
    assert mlflow.get_current_active_span() is None  # client spans are never made current
    client.end_trace(root.trace_id, outputs={"answer": "hello"})

    spans = by_name(otlp(3))
    r, c, g = spans["conversation"], spans["retrieval"], spans["llm"]
    assert c.parent_id == r.span_id and r.parent_id is None
    assert decoded(r, "mlflow.spanInputs") == {"q": "hi"}
    assert decoded(r, "mlflow.spanOutputs") == {"answer": "hello"}
    assert r.attributes["mlflow.traceTag.team"] == "x" and r.attributes["a"] == 1
    assert c.attributes["mlflow.spanType"] == "RETRIEVER"
    assert decoded(c, "mlflow.spanOutputs") == ["doc"] and c.attributes["hits"] == 1
    assert g.status == "ERROR" and g.parent_id == c.span_id


def test_start_trace_ignores_current_context(otlp):
    client = MlflowClient()
    with mlflow.start_span("ambient"):
        root = client.start_trace("independent")
    client.end_trace(root.trace_id)
    spans = by_name(otlp(2))
    assert spans["independent"].parent_id is None
    assert spans["independent"].trace_id != spans["ambient"].trace_id


def test_misuse_warns_instead_of_raising(otlp, caplog):
    client = MlflowClient()
    root = client.start_trace("t")
    child = client.start_span("c", trace_id=root.trace_id, parent_id=root.span_id)
    client.end_span(root.trace_id, child.span_id)
    client.end_span(root.trace_id, child.span_id)  # double end
    client.end_span("tr-" + "0" * 31 + "1", "00000000000000ff")  # unknown ids
    bogus = client.start_span("orphan", trace_id="not-an-id", parent_id="zz")
    assert bogus.trace_id == "MLFLOW_NO_OP_SPAN_TRACE_ID"
    client.end_trace(root.trace_id)
    client.end_trace(root.trace_id)  # double end of the trace
    assert caplog.text.count("ignored") == 3  # one per kind of misuse (end_span, start_span, end_trace)
    assert {s.name for s in otlp(2)} == {"t", "c"}


def test_end_trace_closes_spans_left_open(otlp):
    client = MlflowClient()
    root = client.start_trace("root")
    client.start_span("forgotten", trace_id=root.trace_id, parent_id=root.span_id)
    client.end_trace(root.trace_id)
    spans = by_name(otlp(2))
    assert spans["forgotten"].parent_id == spans["root"].span_id


def test_set_experiment_returns_mlflows_entity():
    import mlflow_otel as mlflow

    experiment = mlflow.set_experiment(experiment_id="7")
    assert isinstance(experiment, mlflow.entities.Experiment)
    assert (experiment.experiment_id, experiment.lifecycle_stage) == ("7", "active")
    # No tracking URI: the name is kept, the id resolves once a server is set.
    named = mlflow.set_experiment("named")
    assert isinstance(named, mlflow.entities.Experiment) and named.name == "named"
