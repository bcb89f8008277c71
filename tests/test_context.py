"""Our spans live in OTel's context: other instrumentations nest under them and they under others."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mlflow_otel as mlflow
from tests.conftest import by_name, decoded


def _other_instrumentation():
    """A second TracerProvider, as an app's FastAPI/httpx instrumentation would use."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("some.instrumentation"), exporter


def test_other_instrumentation_spans_nest_both_ways(otlp):
    tracer, theirs = _other_instrumentation()

    @mlflow.trace
    def inner_tool():
        return "ok"

    with tracer.start_as_current_span("HTTP GET /chat"):  # e.g. a FastAPI server span
        with mlflow.start_span("agent") as agent:
            with tracer.start_as_current_span("httpx POST"):  # e.g. an outgoing HTTP call
                inner_tool()
            mlflow.update_current_trace(tags={"route": "/chat"})

    ours = by_name(otlp(2))
    foreign = {s.name: s for s in theirs.get_finished_spans()}
    server, client = foreign["HTTP GET /chat"], foreign["httpx POST"]
    trace_hex = format(server.context.trace_id, "032x")
    assert ours["agent"].trace_id == trace_hex == ours["inner_tool"].trace_id
    assert ours["agent"].parent_id == format(server.context.span_id, "016x")
    assert client.parent.span_id == int(agent.span_id, 16)
    assert ours["inner_tool"].parent_id == format(client.context.span_id, "016x")
    # The local root (our first span in the trace) carries the trace-level data.
    assert ours["agent"].attributes["mlflow.traceTag.route"] == "/chat"


def test_remote_parent_from_traceparent(otlp):
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    token = otel_context.attach(propagate.extract(carrier))
    try:
        with mlflow.start_span("handler"):
            pass
    finally:
        otel_context.detach(token)
    (span,) = otlp(1)
    assert span.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent_id == "b7ad6b7169203331"


def test_threads_join_the_trace_with_copy_context(otlp):
    """MLflow's multithreading recipe: submit ``ctx.run`` to the executor."""

    @mlflow.trace
    def worker(question):
        return question.upper()

    @mlflow.trace
    def main(questions):
        with ThreadPoolExecutor(max_workers=2) as executor:
            futures = []
            for q in questions:
                ctx = contextvars.copy_context()
                futures.append(executor.submit(ctx.run, worker, q))
            return [f.result() for f in futures]

    assert main(["a", "b", "c"]) == ["A", "B", "C"]
    spans = otlp(4)
    root = next(s for s in spans if s.name == "main")
    workers = [s for s in spans if s.name.startswith("worker")]
    assert len(workers) == 3 and {w.parent_id for w in workers} == {root.span_id}
    assert {w.trace_id for w in workers} == {root.trace_id}


def test_threads_without_context_start_their_own_traces(otlp):
    @mlflow.trace
    def job():
        return threading.get_ident()

    @mlflow.trace
    def main():
        t = threading.Thread(target=job)
        t.start()
        t.join()

    main()
    spans = by_name(otlp(2))
    assert spans["job"].parent_id is None
    assert spans["job"].trace_id != spans["main"].trace_id
    assert decoded(spans["job"], "mlflow.traceRequestId") == "tr-" + spans["job"].trace_id


def test_child_outliving_its_root_is_still_exported(otlp):
    release = threading.Event()
    done = threading.Event()

    def background(ctx):
        def run():
            with mlflow.start_span("late-child"):
                release.wait(5)
            done.set()

        ctx.run(run)

    with mlflow.start_span("request"):
        threading.Thread(target=background, args=(contextvars.copy_context(),)).start()
    release.set()
    assert done.wait(5)
    spans = by_name(otlp(2))
    assert spans["late-child"].parent_id == spans["request"].span_id
