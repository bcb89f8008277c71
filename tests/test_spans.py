"""The MLflow API builds the spans MLflow would, and they arrive as standard OTel spans."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

import mlflow_otel as mlflow
from mlflow_otel.entities import SpanEvent, SpanStatus, SpanStatusCode, SpanType
from tests.conftest import by_name, decoded


def test_decorator_without_arguments(otlp):
    @mlflow.trace
    def add(x, y=10):
        return x + y

    assert add(1) == 11
    (span,) = otlp(1)
    assert span.name == "add"
    assert span.parent_id is None
    assert span.attributes["mlflow.spanType"] == "UNKNOWN"
    assert decoded(span, "mlflow.spanInputs") == {"x": 1, "y": 10}
    assert decoded(span, "mlflow.spanOutputs") == 11
    assert decoded(span, "mlflow.spanFunctionName") == "add"
    assert decoded(span, "mlflow.traceRequestId") == "tr-" + span.trace_id
    assert span.status == "OK"
    assert span.kind == 1  # SPAN_KIND_INTERNAL
    assert span.scope == "mlflow_otel"


def test_decorator_with_arguments_and_nesting(otlp):
    @mlflow.trace(name="child-op", span_type=SpanType.TOOL, attributes={"k": "v", "n": 3, "obj": {"a": 1}})
    def child(a, *, b):
        return {"sum": a + b}

    @mlflow.trace(span_type="MY_CUSTOM_TYPE")
    def parent(a):
        return child(a, b=2)["sum"]

    assert parent(1) == 3
    spans = by_name(otlp(2))
    p, c = spans["parent"], spans["child-op"]
    assert c.parent_id == p.span_id and c.trace_id == p.trace_id
    assert c.attributes["mlflow.spanType"] == "TOOL"
    assert p.attributes["mlflow.spanType"] == "MY_CUSTOM_TYPE"
    assert c.attributes["k"] == "v" and c.attributes["n"] == 3
    assert json.loads(c.attributes["obj"]) == {"a": 1}
    assert decoded(c, "mlflow.spanInputs") == {"a": 1, "b": 2}
    assert decoded(c, "mlflow.spanOutputs") == {"sum": 3}
    assert decoded(c, "mlflow.traceRequestId") == "tr-" + p.trace_id


def test_methods_drop_self_and_cls(otlp):
    class Agent:
        @mlflow.trace
        def run(self, query, limit=3):
            return query * limit

        @classmethod
        @mlflow.trace
        def build(cls, name):
            return name

    Agent().run("a")
    Agent.build("x")
    spans = by_name(otlp(2))
    assert decoded(spans["run"], "mlflow.spanInputs") == {"query": "a", "limit": 3}
    assert decoded(spans["build"], "mlflow.spanInputs") == {"name": "x"}


def test_varargs_and_kwargs_are_bound(otlp):
    @mlflow.trace
    def f(a, *rest, flag=False, **extra):
        return a

    f(1, 2, 3, flag=True, z=9)
    (span,) = otlp(1)
    assert decoded(span, "mlflow.spanInputs") == {"a": 1, "rest": [2, 3], "flag": True, "extra": {"z": 9}}


def test_wrapping_an_external_function(otlp):
    traced_pow = mlflow.trace(math.pow)
    assert traced_pow(2, 3) == 8.0
    (span,) = otlp(1)
    assert span.name == "pow"
    assert decoded(span, "mlflow.spanInputs") == {"x": 2, "y": 3}
    assert decoded(span, "mlflow.spanOutputs") == 8.0


def test_inputs_captured_at_call_time(otlp):
    @mlflow.trace
    def consume(items):
        items.append("added-inside")
        return len(items)

    data = ["a"]
    consume(data)
    data.append("added-after")
    (span,) = otlp(1)
    assert decoded(span, "mlflow.spanInputs") == {"items": ["a"]}


async def test_async_function(otlp):
    @mlflow.trace
    async def inner(x):
        await asyncio.sleep(0)
        return x * 2

    @mlflow.trace
    async def outer(x):
        return await inner(x) + 1

    assert await outer(2) == 5
    spans = by_name(otlp(2))
    assert spans["inner"].parent_id == spans["outer"].span_id
    assert decoded(spans["outer"], "mlflow.spanOutputs") == 5


async def test_asyncio_gather_keeps_each_task_in_the_trace(otlp):
    @mlflow.trace
    async def work(i):
        await asyncio.sleep(0.01 * (3 - i))
        return i

    @mlflow.trace
    async def fan_out():
        return await asyncio.gather(*(work(i) for i in range(3)))

    assert await fan_out() == [0, 1, 2]
    spans = otlp(4)
    root = next(s for s in spans if s.name == "fan_out")
    workers = [s for s in spans if s.name.startswith("work")]
    assert len(workers) == 3
    assert all(w.parent_id == root.span_id for w in workers)
    assert [w.name for w in workers] == ["work"] * 3


def test_generator_with_reducer_and_chunk_events(otlp):
    @mlflow.trace(output_reducer=lambda chunks: "".join(chunks))
    def stream(n):
        for i in range(n):
            yield str(i)

    @mlflow.trace
    def consumer():
        return list(stream(3))

    assert consumer() == ["0", "1", "2"]
    spans = by_name(otlp(2))
    s = spans["stream"]
    assert s.parent_id == spans["consumer"].span_id
    assert decoded(s, "mlflow.spanOutputs") == "012"
    assert [name for name, _ in s.events] == [
        "mlflow.chunk.item.0",
        "mlflow.chunk.item.1",
        "mlflow.chunk.item.2",
    ]
    assert [json.loads(a["mlflow.chunk.value"]) for _, a in s.events] == ["0", "1", "2"]


def test_generator_without_reducer_records_list_and_nests_inner_spans(otlp):
    @mlflow.trace
    def inner(i):
        return i

    @mlflow.trace
    def gen():
        for i in range(2):
            yield inner(i)
        return "done"

    assert list(gen()) == [0, 1]
    spans = otlp(3)
    g = next(s for s in spans if s.name == "gen")
    assert decoded(g, "mlflow.spanOutputs") == [0, 1]
    inners = [s for s in spans if s.name.startswith("inner")]
    assert {s.parent_id for s in inners} == {g.span_id}


def test_a_long_stream_records_its_items_within_the_capture_budget(otlp):
    mlflow.tracing.configure(max_attribute_bytes=10_000)

    @mlflow.trace
    def gen():
        for i in range(50):
            yield {"i": i, "text": "x" * 1000}

    assert len(list(gen())) == 50
    (g,) = otlp(1)
    outputs = decoded(g, "mlflow.spanOutputs")
    assert outputs[0]["i"] == 0 and len(outputs) < 20  # capture's budget, then trimming's cut
    assert "more items truncated]" in outputs[-1]
    assert len(g.events) == 50  # every item is still its own chunk event


def test_generator_closed_early_still_ends_its_span(otlp):
    @mlflow.trace
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    for value in endless():
        if value == 2:
            break
    (span,) = otlp(1)
    assert span.name == "endless"
    assert span.status == "OK"
    assert decoded(span, "mlflow.spanOutputs") == [0, 1, 2]


def test_generator_send_and_throw_are_forwarded(otlp):
    @mlflow.trace
    def echo():
        received = []
        try:
            while True:
                value = yield len(received)
                received.append(value)
        except KeyError:
            yield "caught"

    gen = echo()
    assert next(gen) == 0
    assert gen.send("a") == 1
    assert gen.throw(KeyError("k")) == "caught"
    gen.close()
    (span,) = otlp(1)
    assert decoded(span, "mlflow.spanOutputs") == [0, 1, "caught"]


def test_generator_error_is_recorded(otlp):
    @mlflow.trace
    def failing():
        yield 1
        raise RuntimeError("stream broke")

    with pytest.raises(RuntimeError, match="stream broke"):
        list(failing())
    (span,) = otlp(1)
    assert span.status == "ERROR"
    assert span.status_message == "RuntimeError: stream broke"


async def test_async_generator_and_cancellation(otlp):
    @mlflow.trace(output_reducer=lambda items: sum(items))
    async def numbers(n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    assert [x async for x in numbers(4)] == [0, 1, 2, 3]

    started = asyncio.Event()

    @mlflow.trace
    async def slow():
        yield "first"
        started.set()
        await asyncio.sleep(30)
        yield "never"

    async def consume():
        async for _ in slow():
            pass

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    spans = by_name(otlp(2))
    assert decoded(spans["numbers"], "mlflow.spanOutputs") == 6
    assert spans["slow"].status == "ERROR"
    assert spans["slow"].status_message.startswith("CancelledError")
    assert decoded(spans["slow"], "mlflow.spanOutputs") == ["first"]  # what was streamed before the cancel


async def test_async_generator_closed_early(otlp):
    @mlflow.trace
    async def ticks():
        for i in range(100):
            yield i

    agen = ticks()
    assert await agen.__anext__() == 0
    assert await agen.__anext__() == 1
    await agen.aclose()
    (span,) = otlp(1)
    assert span.status == "OK"
    assert decoded(span, "mlflow.spanOutputs") == [0, 1]


def test_exception_sets_error_records_event_and_reraises_same_object(otlp):
    error = ValueError("bad input")

    @mlflow.trace
    def broken():
        raise error

    with pytest.raises(ValueError) as info:
        broken()
    assert info.value is error
    (span,) = otlp(1)
    assert span.status == "ERROR"
    assert span.status_message == "ValueError: bad input"
    (name, attrs), *_ = span.events
    assert name == "exception"
    assert attrs["exception.type"] == "ValueError"
    assert attrs["exception.message"] == "bad input"
    assert "Traceback" in attrs["exception.stacktrace"] and "broken" in attrs["exception.stacktrace"]


def test_context_manager_live_span_api(otlp):
    with mlflow.start_span(name="outer", span_type=SpanType.CHAIN, attributes={"stage": "x"}) as outer:
        outer.set_inputs({"q": "hi"})
        assert outer.inputs == {"q": "hi"}
        assert outer.name == "outer" and outer.span_type == SpanType.CHAIN
        assert mlflow.get_current_active_span().span_id == outer.span_id
        assert mlflow.get_active_trace_id() == outer.trace_id
        with mlflow.start_span("inner") as inner:
            inner.set_attribute("score", 0.5)
            inner.set_attributes({"tags": ["a", "b"], "cfg": {"t": 1}})
            inner.add_event(SpanEvent("checkpoint", attributes={"step": 1, "info": {"x": 1}}))
            inner.set_status("ERROR")
            assert inner.get_attribute("cfg") == {"t": 1}
            assert inner.attributes["tags"] == ["a", "b"]
            assert inner.parent_id == outer.span_id
        outer.set_outputs(["done"])
        assert outer.outputs == ["done"]
    assert mlflow.get_current_active_span() is None
    assert outer.trace_id.startswith("tr-") and len(outer.trace_id) == 35
    assert len(outer.span_id) == 16
    assert outer.end_time_ns >= outer.start_time_ns
    spans = by_name(otlp(2))
    o, i = spans["outer"], spans["inner"]
    assert i.parent_id == o.span_id
    assert o.attributes["stage"] == "x"
    assert o.status == "OK"
    assert i.status == "ERROR"
    assert i.attributes["score"] == 0.5
    assert i.attributes["tags"] == ["a", "b"]
    assert json.loads(i.attributes["cfg"]) == {"t": 1}
    assert i.events[0][0] == "checkpoint"
    assert i.events[0][1]["step"] == 1 and json.loads(i.events[0][1]["info"]) == {"x": 1}
    assert decoded(o, "mlflow.spanOutputs") == ["done"]


def test_context_manager_records_exception(otlp):
    with pytest.raises(KeyError), mlflow.start_span("failing") as span:
        span.record_exception(RuntimeError("logged, not raised"))
        raise KeyError("missing")
    (s,) = otlp(1)
    assert s.status == "ERROR"
    assert s.status_message == "KeyError: 'missing'"
    assert [n for n, _ in s.events] == ["exception", "exception"]


def test_set_status_with_span_status_object(otlp):
    with mlflow.start_span("s") as span:
        span.set_status(SpanStatus(SpanStatusCode.ERROR, "custom failure"))
        assert span.status.status_code == SpanStatusCode.ERROR
    (s,) = otlp(1)
    assert s.status == "ERROR" and s.status_message == "custom failure"


def test_same_name_spans_keep_their_name(otlp):
    """MLflow 3.18 stores same-named spans as named (its test_trace_handle_exception_during_streaming);
    the span id tells them apart."""

    @mlflow.trace
    def step(i):
        return i

    @mlflow.trace
    def unique():
        return None

    @mlflow.trace
    def pipeline():
        for i in range(3):
            step(i)
        unique()

    pipeline()
    spans = otlp(5)
    assert sorted(s.name for s in spans) == ["pipeline", "step", "step", "step", "unique"]
    steps = sorted((s for s in spans if s.name == "step"), key=lambda s: s.start_ns)
    assert [decoded(s, "mlflow.spanInputs") for s in steps] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_update_current_trace_keeps_root_and_lands_on_it(otlp):
    @mlflow.trace
    def handler(q):
        mlflow.update_current_trace(
            tags={"environment": "production", "mlflow.trace.session": "s-1", "mlflow.trace.user": "u-7"},
            metadata={"version": "2", "mlflow.trace.user": "u-7"},
            client_request_id="req-42",
            request_preview="preview in",
            response_preview="preview out",
        )
        return inner(q)

    @mlflow.trace
    def inner(q):
        mlflow.update_current_trace(tags={"from_child": "yes"})
        return q

    handler("x")
    spans = by_name(otlp(2))
    root = spans["handler"]
    assert root.parent_id is None
    a = root.attributes
    assert a["mlflow.traceTag.environment"] == "production"
    assert a["mlflow.traceTag.from_child"] == "yes"
    assert a["session.id"] == "s-1" and a["user.id"] == "u-7"
    assert a["mlflow.traceTag.mlflow.trace.session"] == "s-1"
    assert a["mlflow.traceMetadata.version"] == "2"
    assert a["mlflow.trace.clientRequestId"] == "req-42"
    assert a["mlflow.trace.requestPreview"] == "preview in"
    assert a["mlflow.trace.responsePreview"] == "preview out"
    assert not any(k.startswith("mlflow.traceTag") for k in spans["inner"].attributes)


def test_update_current_trace_without_trace_only_warns(otlp, caplog):
    mlflow.update_current_trace(tags={"a": "b"})
    assert "no active trace" in caplog.text


def test_last_active_trace_id(otlp):
    with mlflow.start_span("x") as span:
        pass
    assert mlflow.get_last_active_trace_id() == span.trace_id


def test_the_lean_tracer_s_span_context_is_otel_s_own():
    """The lean tracer builds a span's SpanContext without the API's checks (its ids are in range by
    construction): every field must read back as ``SpanContext(...)`` would give it, on whatever
    opentelemetry-api is installed (its tuple layout is what this relies on)."""
    from opentelemetry.trace import SpanContext

    with mlflow.start_span("root") as root:
        with mlflow.start_span("child") as child:
            pass
    for span in (root, child):
        ctx = span._span.get_span_context()
        built = SpanContext(ctx.trace_id, ctx.span_id, False, ctx.trace_flags, ctx.trace_state)
        assert (ctx.trace_id, ctx.span_id, ctx.is_remote, ctx.trace_flags, ctx.is_valid) == (
            built.trace_id,
            built.span_id,
            built.is_remote,
            built.trace_flags,
            built.is_valid,
        )
        assert ctx.is_valid and not ctx.is_remote and ctx.trace_flags.sampled
        assert ctx.trace_state == built.trace_state and len(ctx.trace_state) == 0


def test_spans_nest_through_otel_s_api_under_another_runtime_context(monkeypatch):
    """With a runtime context other than OTel's default (``OTEL_PYTHON_CONTEXT``), the request path
    reads and sets the context through OTel's API instead of its ContextVar: spans still nest, and
    the context is restored after each."""
    from opentelemetry import trace as otel_trace

    from mlflow_otel.spans import fluent

    monkeypatch.setattr(fluent, "_context_var", None)

    @mlflow.trace
    def inner():
        return otel_trace.get_current_span().get_span_context().span_id

    with mlflow.start_span("outer") as outer:
        inner_parent = inner()
        assert otel_trace.get_current_span().get_span_context().span_id == int(outer.span_id, 16)
    assert not otel_trace.get_current_span().get_span_context().is_valid
    trace = mlflow.get_trace(outer.trace_id)
    spans = {span.name: span for span in trace.data.spans}
    assert spans["inner"].parent_id == outer.span_id and inner_parent == int(spans["inner"].span_id, 16)
