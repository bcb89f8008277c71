"""MLflow's own tracing tests as the behaviour contract (MLflow 3.18's ``tests/tracing/``), written
here from the documented behaviour: decorators in any order, sampled-out traces, span log levels,
span links, the 3.18 names. docs/mlflow-compatibility.md lists every behaviour with its status.

Traces are read back through the ``mlflow_traces`` fixture (``mlflow_otel.testing``): what the
pipeline delivers, as MLflow's ``Trace`` entities.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import json
import threading

import pytest

import mlflow_otel as mlflow
from mlflow_otel.entities import Link, SpanEvent, SpanLogLevel, SpanType, Trace, TraceState
from mlflow_otel.entities.span import LiveSpan, NoOpSpan, Span
from mlflow_otel.exceptions import MlflowException
from mlflow_otel.tracing.constant import SpanAttributeKey, TraceMetadataKey, TraceTagKey

LINK_TRACE = "tr-0123456789abcdef0123456789abcdef"
LINK_SPAN = "0123456789abcdef"


def only_trace(capture) -> Trace:
    (trace,) = capture.wait(1)
    return trace


# --- decorators in any order (test_fluent's classmethod / staticmethod cases) ---------------------------
class Calculator:
    @mlflow.trace
    @classmethod
    def trace_above_classmethod(cls, x, y):
        return x + y

    @classmethod
    @mlflow.trace
    def trace_below_classmethod(cls, x, y):
        return x + y

    @mlflow.trace
    @staticmethod
    def trace_above_staticmethod(x, y):
        return x * y

    @staticmethod
    @mlflow.trace
    def trace_below_staticmethod(x, y):
        return x * y

    @mlflow.trace(name="total")
    @property
    def traced_property(self):
        return 42


@pytest.mark.parametrize(
    ("call", "name", "expected", "inputs"),
    [
        (lambda: Calculator.trace_above_classmethod(1, 2), "trace_above_classmethod", 3, {"x": 1, "y": 2}),
        (lambda: Calculator().trace_above_classmethod(1, 2), "trace_above_classmethod", 3, {"x": 1, "y": 2}),
        (lambda: Calculator.trace_below_classmethod(1, 2), "trace_below_classmethod", 3, {"x": 1, "y": 2}),
        (lambda: Calculator.trace_above_staticmethod(2, 3), "trace_above_staticmethod", 6, {"x": 2, "y": 3}),
        (
            lambda: Calculator().trace_below_staticmethod(2, 3),
            "trace_below_staticmethod",
            6,
            {"x": 2, "y": 3},
        ),
        (lambda: Calculator().traced_property, "total", 42, {}),
    ],
)
def test_trace_composes_with_descriptors_in_either_order(mlflow_traces, call, name, expected, inputs):
    assert call() == expected
    (span,) = only_trace(mlflow_traces).data.spans
    assert span.name == name
    assert span.inputs == inputs  # cls / self are not inputs
    assert span.outputs == expected


def test_trace_composes_with_abstractmethod_and_wraps():
    class Base(abc.ABC):
        @mlflow.trace
        @abc.abstractmethod
        def run(self, x): ...

    class Impl(Base):
        @mlflow.trace
        def run(self, x):
            return x + 1

    with pytest.raises(TypeError):
        Base()  # still abstract through the decorator
    assert Impl().run(1) == 2

    def logged(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            return fn(*args, **kwargs)

        return inner

    @mlflow.trace
    @logged
    def wrapped(a, b=2):
        return a + b

    assert wrapped(1) == 3
    assert wrapped.__name__ == "wrapped"


def test_async_method_and_classmethod(mlflow_traces):
    class Agent:
        @mlflow.trace(span_type=SpanType.AGENT)
        @classmethod
        async def answer(cls, question):
            await asyncio.sleep(0)
            return question.upper()

    assert asyncio.run(Agent.answer("hi")) == "HI"
    (span,) = only_trace(mlflow_traces).data.spans
    assert (span.name, span.span_type, span.outputs) == ("answer", "AGENT", "HI")


# --- sampled-out traces ---------------------------------------------------------------------------------
def test_sampled_out_trace_has_no_id(monkeypatch, mlflow_traces):
    seen = []

    @mlflow.trace(sampling_ratio_override=0.0)
    def dropped():
        seen.append(mlflow.get_active_trace_id())
        return "value"

    for _ in range(10):
        assert dropped() == "value"
    assert seen == [None] * 10
    assert mlflow_traces.wait(0) == []


def test_sampling_ratio_is_validated_at_decoration():
    for bad in (-0.1, 1.1, -1, 2, 100):
        with pytest.raises(MlflowException, match=r"sampling_ratio_override must be between 0\.0 and 1\.0"):
            mlflow.trace(sampling_ratio_override=bad)


def test_parent_decision_wins_in_nested_sampling(mlflow_traces):
    @mlflow.trace(sampling_ratio_override=0.0)
    def inner():
        return mlflow.get_active_trace_id()

    @mlflow.trace(sampling_ratio_override=1.0)
    def outer():
        return mlflow.get_active_trace_id(), inner()

    outer_id, inner_id = outer()
    assert outer_id is not None and inner_id == outer_id  # the inner override does not apply
    assert len(only_trace(mlflow_traces).data.spans) == 2


def test_global_ratio_zero_drops_even_an_inner_override(monkeypatch, mlflow_traces):
    monkeypatch.setenv("MLFLOW_TRACE_SAMPLING_RATIO", "0.0")
    mlflow.tracing.reset()
    capture_ids = []

    @mlflow.trace(sampling_ratio_override=1.0)
    def inner():
        capture_ids.append(mlflow.get_active_trace_id())

    @mlflow.trace
    def outer():
        inner()

    outer()
    assert capture_ids == [None]


# --- span log levels (test_log_level.py) ------------------------------------------------------------------
def test_log_level_from_value_accepts_names_and_members():
    assert SpanLogLevel.from_value(SpanLogLevel.DEBUG) is SpanLogLevel.DEBUG
    assert SpanLogLevel.from_value("info") is SpanLogLevel.INFO
    assert SpanLogLevel.from_value("Warning") is SpanLogLevel.WARNING
    assert SpanLogLevel.from_value("  ERROR  ") is SpanLogLevel.ERROR
    assert [int(level) for level in SpanLogLevel] == [10, 20, 30, 40, 50]


@pytest.mark.parametrize("bad", ["NOPE", "TRACE", "FATAL", "INFOO", "", "WARN", "warn"])
def test_log_level_rejects_unknown_names(bad):
    with pytest.raises(MlflowException, match="Invalid SpanLogLevel"):
        SpanLogLevel.from_value(bad)


@pytest.mark.parametrize("bad", [0, 7, 10, 20, 50, -1, None, 1.5, ["INFO"], object(), True, False])
def test_log_level_rejects_other_types(bad):
    with pytest.raises(MlflowException, match="must be"):
        SpanLogLevel.from_value(bad)


@pytest.mark.parametrize(
    ("span_type", "level"),
    [
        (SpanType.UNKNOWN, 10),
        (SpanType.CHAIN, 10),
        (SpanType.PARSER, 10),
        ("MY_CUSTOM_TYPE", 10),
        (SpanType.LLM, 20),
        (SpanType.CHAT_MODEL, 20),
        (SpanType.AGENT, 20),
        (SpanType.TOOL, 20),
        (SpanType.RETRIEVER, 20),
        (SpanType.EMBEDDING, 20),
    ],
)
def test_default_log_level_by_span_type(mlflow_traces, span_type, level):
    with mlflow.start_span("s", span_type=span_type):
        pass
    (span,) = only_trace(mlflow_traces).data.spans
    assert span.log_level == SpanLogLevel(level)
    assert span.attributes[SpanAttributeKey.LOG_LEVEL] == level


def test_set_log_level_normalises_and_rejects(mlflow_traces):
    for given in (SpanLogLevel.WARNING, "info", "CRITICAL"):
        with mlflow.start_span("s") as span:
            span.set_log_level(given)
    assert [t.data.spans[0].log_level for t in mlflow_traces.wait(3)] == [30, 20, 50]
    with pytest.raises(MlflowException, match="Invalid SpanLogLevel"):
        with mlflow.start_span("bad") as span:
            span.set_log_level("NOPE")


def test_log_level_kwargs_on_every_builder(mlflow_traces):
    with mlflow.start_span("ctx", span_type=SpanType.CHAT_MODEL, log_level="WARNING"):
        pass
    span = mlflow.start_span_no_context("no_ctx", log_level=SpanLogLevel.ERROR)
    span.end()

    @mlflow.trace(log_level="DEBUG", span_type=SpanType.LLM)
    def sync_fn():
        return 1

    @mlflow.trace(log_level=SpanLogLevel.INFO)
    async def async_fn():
        return 2

    @mlflow.trace(log_level="WARNING")
    def gen_fn():
        yield 1

    sync_fn()
    asyncio.run(async_fn())
    list(gen_fn())
    levels = {t.data.spans[0].name: t.data.spans[0].log_level for t in mlflow_traces.wait(5)}
    assert levels == {"ctx": 30, "no_ctx": 40, "sync_fn": 10, "async_fn": 20, "gen_fn": 30}


def test_invalid_log_level_kwarg_runs_untraced_or_raises_at_decoration(mlflow_traces):
    with mlflow.start_span("s", log_level="LOUD") as span:
        assert isinstance(span, NoOpSpan)
    assert isinstance(mlflow.start_span_no_context("s", log_level=10), NoOpSpan)
    with pytest.raises(MlflowException):
        mlflow.trace(log_level="LOUD")
    assert mlflow_traces.wait(0) == []


def test_nested_spans_keep_their_own_levels(mlflow_traces):
    @mlflow.trace(log_level="DEBUG", name="inner")
    def inner():
        return 1

    @mlflow.trace(log_level="WARNING", name="root")
    def root():
        return inner()

    root()
    levels = {s.name: s.log_level for s in only_trace(mlflow_traces).data.spans}
    assert levels == {"root": SpanLogLevel.WARNING, "inner": SpanLogLevel.DEBUG}


def test_exception_bumps_level_to_error_but_never_demotes_critical(mlflow_traces):
    with mlflow.start_span("parser", span_type=SpanType.PARSER) as span:
        span.add_event(SpanEvent.from_exception(ValueError("bad")))
    with mlflow.start_span("chat", span_type=SpanType.CHAT_MODEL) as span:
        span.add_event(SpanEvent.from_exception(ValueError("bad")))
    with mlflow.start_span("critical", log_level="CRITICAL") as span:
        span.add_event(SpanEvent.from_exception(ValueError("bad")))
    recorded = mlflow.start_span_no_context("recorded", span_type=SpanType.PARSER)
    recorded.record_exception(ValueError("bad"))
    recorded.end()
    with mlflow.start_span("plain_event", span_type=SpanType.CHAT_MODEL) as span:
        span.add_event(SpanEvent("my_event", attributes={"k": "v"}))

    @mlflow.trace(span_type=SpanType.PARSER)
    def raises():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        raises()
    levels = {t.data.spans[0].name: t.data.spans[0].log_level for t in mlflow_traces.wait(6)}
    assert levels == {
        "parser": 40,
        "chat": 40,
        "critical": 50,
        "recorded": 40,
        "plain_event": 20,
        "raises": 40,
    }


def test_log_level_survives_to_dict_round_trip(mlflow_traces):
    with mlflow.start_span("s", log_level="ERROR"):
        pass
    (span,) = only_trace(mlflow_traces).data.spans
    assert Span.from_dict(span.to_dict()).log_level is SpanLogLevel.ERROR


def test_log_level_on_the_wire_is_an_int(otlp_http):
    with mlflow.start_span("s", span_type=SpanType.CHAT_MODEL):
        pass
    (received,) = otlp_http(1)
    assert received.attributes["mlflow.spanLogLevel"] == 20  # OTLP int_value, as MLflow writes it


# --- span links (test_span_links_api.py) -----------------------------------------------------------------
def test_links_on_every_builder(mlflow_traces):
    first = Link(LINK_TRACE, LINK_SPAN)
    second = Link(LINK_TRACE, "fedcba9876543210", {"kind": "follows_from"})
    with mlflow.start_span("ctx", links=[first, second]):
        pass
    mlflow.start_span_no_context("no_ctx", links=[first]).end()

    @mlflow.trace(links=[second])
    def fn():
        return 1

    @mlflow.trace(links=[first])
    def gen():
        yield from (1, 2, 3)

    fn()
    assert list(gen()) == [1, 2, 3]
    with mlflow.start_span("none"):
        pass
    links = {t.data.spans[0].name: t.data.spans[0].links for t in mlflow_traces.wait(5)}
    assert links["ctx"] == [first, second]  # order kept; no attributes -> None
    assert links["ctx"][0].attributes is None and links["ctx"][1].attributes == {"kind": "follows_from"}
    assert links["no_ctx"] == [first]
    assert links["fn"] == [second]
    assert links["gen"] == [first]
    assert links["none"] == []


def test_client_links_and_invalid_links(mlflow_traces, caplog):
    client = mlflow.MlflowClient()
    root = client.start_trace("root", links=[Link(LINK_TRACE, LINK_SPAN)])
    child = client.start_span(
        "child",
        trace_id=root.trace_id,
        parent_id=root.span_id,
        links=[Link(LINK_TRACE, LINK_SPAN, {"reason": "depends_on"}), Link("not-hex", "zz")],
    )
    client.end_span(root.trace_id, child.span_id)
    client.end_trace(root.trace_id)
    spans = {s.name: s for s in only_trace(mlflow_traces).data.spans}
    assert spans["root"].links == [Link(LINK_TRACE, LINK_SPAN)]
    assert spans["child"].links == [Link(LINK_TRACE, LINK_SPAN, {"reason": "depends_on"})]
    assert "Skipping invalid link" in caplog.text
    with pytest.raises(MlflowException, match="must be a Link instance"):
        with mlflow.start_span("s") as span:
            span.add_link("not a link")
    NoOpSpan().add_link(Link(LINK_TRACE, LINK_SPAN))  # a no-op, never raises


def test_links_are_otel_links_on_the_wire(otlp_http):
    with mlflow.start_span("linked", links=[Link(LINK_TRACE, LINK_SPAN, {"kind": "caused_by"})]):
        pass
    (received,) = otlp_http(1)
    assert received.links == [(LINK_TRACE[3:], LINK_SPAN, {"kind": "caused_by"})]


# --- the 3.18 surface ---------------------------------------------------------------------------------
def test_description_and_run_id(mlflow_traces, caplog):
    with mlflow.start_span("root", description="the entry point", run_id="run-1"):
        with mlflow.start_span("child", run_id="run-2") as child:
            child.set_description("a step")
    trace = only_trace(mlflow_traces)
    spans = {s.name: s for s in trace.data.spans}
    assert spans["root"].description == "the entry point"
    assert spans["child"].description == "a step"
    assert trace.info.trace_metadata[TraceMetadataKey.SOURCE_RUN] == "run-1"
    assert "can only be used for root spans" in caplog.text


def test_start_span_no_context_builds_a_tree_without_touching_the_context(mlflow_traces):
    root = mlflow.start_span_no_context(
        "root", inputs={"q": 1}, tags={"env": "test"}, metadata={"tenant": "acme"}
    )
    assert mlflow.get_current_active_span() is None
    child = mlflow.start_span_no_context("child", parent_span=root, span_type=SpanType.TOOL)
    child.end(outputs="done")
    root.end(outputs={"a": 2})
    trace = only_trace(mlflow_traces)
    spans = {s.name: s for s in trace.data.spans}
    assert spans["child"].parent_id == spans["root"].span_id
    assert spans["root"].inputs == {"q": 1} and spans["root"].outputs == {"a": 2}
    assert trace.info.tags["env"] == "test" and trace.info.trace_metadata["tenant"] == "acme"
    assert isinstance(mlflow.start_span_no_context("x", parent_span=NoOpSpan()), NoOpSpan)


def test_update_current_trace_takes_every_318_parameter(mlflow_traces):
    @mlflow.trace
    def handler():
        mlflow.update_current_trace(
            tags={"flag": True, "none": None},
            metadata={"k": 1},
            client_request_id="req-1",
            request_preview="custom request",
            response_preview="custom response",
            state="ERROR",
            model_id="m-1",
            session_id="s-1",
            user="u-1",
        )
        return "ok"

    handler()
    info = only_trace(mlflow_traces).info
    assert info.tags["flag"] == "True" and "none" not in info.tags  # str() as MLflow; None omitted
    assert info.tags[TraceTagKey.TRACE_NAME] == "handler"
    assert info.trace_metadata["k"] == "1"
    assert info.trace_metadata[TraceMetadataKey.MODEL_ID] == "m-1"
    assert info.trace_metadata[TraceMetadataKey.TRACE_SESSION] == "s-1"
    assert info.trace_metadata[TraceMetadataKey.TRACE_USER] == "u-1"
    assert (info.client_request_id, info.request_preview, info.response_preview) == (
        "req-1",
        "custom request",
        "custom response",
    )
    assert info.state is TraceState.ERROR


def test_update_current_trace_raises_on_programming_errors_only_inside_a_trace(mlflow_traces, caplog):
    """MLflow's order: with no recording trace (tracing disabled, sampled out) the call returns
    quietly; inside one, an invalid state or a non-string preview raises MLflow's error."""
    mlflow.update_current_trace(state="DONE", request_preview={"not": "a string"})  # no trace: ignored
    mlflow.tracing.disable()
    try:

        @mlflow.trace
        def disabled():
            mlflow.update_current_trace(state="DONE")
            return 1

        assert disabled() == 1
    finally:
        mlflow.tracing.enable()
    with mlflow.start_span("s"):
        with pytest.raises(MlflowException, match="The `request_preview` parameter must be a string"):
            mlflow.update_current_trace(request_preview={"not": "a string"})
        with pytest.raises(MlflowException, match="but got 'DONE'"):
            mlflow.update_current_trace(state="DONE")
    assert only_trace(mlflow_traces).info.state is TraceState.OK


def test_set_and_delete_trace_tag_on_an_open_trace(mlflow_traces):
    @mlflow.trace
    def handler():
        trace_id = mlflow.get_active_trace_id()
        mlflow.set_trace_tag(trace_id, "kept", "yes")
        mlflow.set_trace_tag(trace_id, "dropped", "no")
        mlflow.delete_trace_tag(trace_id, "dropped")

    handler()
    tags = only_trace(mlflow_traces).info.tags
    assert tags["kept"] == "yes" and "dropped" not in tags


def test_last_active_trace_id_per_thread(mlflow_traces):
    @mlflow.trace
    def work():
        return 1

    results = {}

    def run(name):
        work()
        results[name] = mlflow.get_last_active_trace_id(thread_local=True)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results.values())) == 4  # each thread sees its own trace
    assert mlflow.get_last_active_trace_id() in results.values()
    ids = {t.trace_id for t in mlflow_traces.wait(4)}
    assert set(results.values()) == ids


def test_tracing_context_stamps_nests_and_suppresses(mlflow_traces):
    @mlflow.trace
    def work():
        return 1

    with mlflow.tracing.context(metadata={"a": "1"}, tags={"t": "outer"}, session_id="s-1", user="u-1"):
        with mlflow.tracing.context(tags={"t": "inner"}, session_id="s-2"):
            work()
        with mlflow.tracing.context(enabled=False):
            work()
            assert isinstance(mlflow.start_span_no_context("x"), NoOpSpan)
            with mlflow.start_span("y") as span:
                assert isinstance(span, NoOpSpan)
    work()
    first, last = mlflow_traces.wait(2)
    assert first.info.tags["t"] == "inner"  # the inner block wins on a key
    assert first.info.trace_metadata["a"] == "1"
    assert first.info.trace_metadata["mlflow.trace.session"] == "s-2"
    assert first.info.trace_metadata["mlflow.trace.user"] == "u-1"  # inherited
    assert "t" not in last.info.tags  # outside the block nothing is stamped


def test_tracing_context_enabled_is_per_thread(mlflow_traces):
    @mlflow.trace
    def work():
        return 1

    seen = {}

    def run(i):
        with mlflow.tracing.context(enabled=i % 2 == 0):
            work()
            seen[i] = mlflow.get_last_active_trace_id(thread_local=True)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all((seen[i] is not None) == (i % 2 == 0) for i in range(10))
    assert len(mlflow_traces.wait(5)) == 5


def test_importable_names_of_the_318_surface():
    from mlflow_otel.entities import TraceData, TraceInfo  # noqa: F401
    from mlflow_otel.entities.span_event import SpanEvent as SE
    from mlflow_otel.entities.trace_location import MlflowExperimentLocation  # noqa: F401
    from mlflow_otel.tracing import trace as tracing_trace

    assert tracing_trace is mlflow.trace
    event = SE.from_exception(ValueError("x"))
    assert event.name == "exception" and event.attributes["exception.type"] == "ValueError"
    assert SpanAttributeKey.LOG_LEVEL == "mlflow.spanLogLevel"
    assert SpanAttributeKey.INPUTS == "mlflow.spanInputs"
    assert TraceMetadataKey.TRACE_SESSION == "mlflow.trace.session"
    assert TraceTagKey.TRACE_NAME == "mlflow.traceName"
    assert issubclass(LiveSpan, object) and TraceState.OK == "OK"
    mlflow.tracing.disable_notebook_display()
    mlflow.tracing.enable_notebook_display()


def test_trace_entities_read_like_mlflows(mlflow_traces):
    @mlflow.trace(span_type=SpanType.CHAIN)
    def predict(x, y):
        return add_one(x + y)

    @mlflow.trace(span_type=SpanType.LLM, name="add_one_with_custom_name", attributes={"delta": 1})
    def add_one(z):
        return z + 1

    assert predict(2, 5) == 8
    trace = only_trace(mlflow_traces)
    assert trace.info.state == TraceState.OK and trace.info.execution_time_ms >= 0
    assert json.loads(trace.info.trace_metadata[TraceMetadataKey.INPUTS]) == {"x": 2, "y": 5}
    assert trace.info.trace_metadata[TraceMetadataKey.OUTPUTS] == "8"
    assert json.loads(trace.data.request) == {"x": 2, "y": 5} and trace.data.response == "8"
    root, child = trace.data.spans
    assert root.parent_id is None and child.parent_id == root.span_id
    assert child.attributes["delta"] == 1 and child.span_type == "LLM"
    assert child.attributes[SpanAttributeKey.FUNCTION_NAME] == "add_one"
    assert trace.search_spans(span_type=SpanType.LLM) == [child]
    assert Trace.from_dict(json.loads(trace.to_json())).data.spans[1].inputs == {"z": 7}


def test_log_trace_builds_a_one_span_trace(mlflow_traces):
    trace_id = mlflow.log_trace(
        name="qa",
        request="Does mlflow support tracing?",
        response="Yes",
        intermediate_outputs={"retrieved_documents": ["mlflow documentation"]},
        tags={"source": "batch"},
        start_time_ms=1_700_000_000_000,
        execution_time_ms=5129,
    )
    trace = only_trace(mlflow_traces)
    assert trace.trace_id == trace_id
    (span,) = trace.data.spans
    assert (span.name, span.inputs, span.outputs) == ("qa", "Does mlflow support tracing?", "Yes")
    assert trace.info.execution_time_ms == 5129 and trace.info.tags["source"] == "batch"
    assert span.attributes["mlflow.trace.intermediate_outputs"] == {
        "retrieved_documents": ["mlflow documentation"]
    }


def test_add_trace_merges_a_remote_trace_under_the_current_span(mlflow_traces):
    @mlflow.trace(name="remote_root", span_type=SpanType.AGENT)
    def remote(q):
        with mlflow.start_span("remote_tool", span_type=SpanType.TOOL) as span:
            span.set_outputs("tool says hi")
        return "remote answer"

    remote("q")
    remote_trace = only_trace(mlflow_traces)
    mlflow_traces.clear()

    @mlflow.trace(name="local")
    def local():
        mlflow.add_trace(remote_trace.to_dict())  # as it would arrive over HTTP, as a dict
        return "ok"

    local()
    merged = only_trace(mlflow_traces)
    spans = {s.name: s for s in merged.data.spans}
    assert set(spans) == {"local", "remote_root", "remote_tool"}
    assert spans["remote_root"].parent_id == spans["local"].span_id
    assert spans["remote_tool"].parent_id == spans["remote_root"].span_id
    assert spans["remote_root"].span_type == "AGENT" and spans["remote_tool"].outputs == "tool says hi"
    assert spans["remote_root"].start_time_ns == remote_trace.data.spans[0].start_time_ns
    with pytest.raises(MlflowException):
        mlflow.add_trace("not a trace")


def test_add_trace_without_a_current_span_starts_a_remote_trace_root(mlflow_traces):
    @mlflow.trace(name="remote_root")
    def remote():
        return 1

    remote()
    remote_trace = only_trace(mlflow_traces)
    mlflow_traces.clear()
    mlflow.add_trace(remote_trace)
    merged = only_trace(mlflow_traces)
    names = [s.name for s in merged.data.spans]
    assert names == ["Remote Trace <remote_root>", "remote_root"]


def test_record_exception_rejects_what_is_neither_exception_nor_string(mlflow_traces):
    """MLflow's development-time error; the span itself is left as it was."""
    with mlflow.start_span("s") as span:
        with pytest.raises(MlflowException, match="must be an Exception instance or a string"):
            span.record_exception(123)
    assert only_trace(mlflow_traces).data.spans[0].status.status_code == "OK"


def test_intermediate_outputs_recorded_or_gathered_from_the_spans(mlflow_traces):
    """MLflow's deprecated ``TraceData.intermediate_outputs``: what ``log_trace`` recorded, else
    the other spans' outputs by name (a repeated name numbered in span order)."""
    mlflow.log_trace(name="logged", request={"q": 1}, intermediate_outputs={"docs": ["d1"]})

    @mlflow.trace
    def step(i):
        return i * 10

    @mlflow.trace
    def pipeline():
        step(1)
        step(2)
        return "done"

    pipeline()
    logged, gathered = sorted(mlflow_traces.wait(2), key=lambda t: t.info.tags["mlflow.traceName"])
    with pytest.warns(FutureWarning, match="search_spans"):
        assert logged.data.intermediate_outputs == {"docs": ["d1"]}
    with pytest.warns(FutureWarning):
        assert gathered.data.intermediate_outputs == {"step_1": 10, "step_2": 20}


def test_trace_from_dict_reads_mlflow_2s_shape():
    """What an older MLflow serving endpoint returns (schema v2): ``request_id``, ``timestamp_ms``,
    spans with ``context`` and ``0x`` hex ids; ``add_trace`` takes it too."""
    v2 = {
        "info": {
            "request_id": "abc",
            "experiment_id": "0",
            "timestamp_ms": 5,
            "status": "OK",
            "tags": {"t": "v"},
        },
        "data": {
            "spans": [
                {
                    "name": "remote",
                    "context": {"span_id": "0x01", "trace_id": "0x0a"},
                    "parent_id": None,
                    "start_time": 10,
                    "end_time": 20,
                    "status_code": "OK",
                    "status_message": "",
                    "attributes": {"mlflow.spanInputs": '{"x": 1}'},
                    "events": [],
                },
                {
                    "name": "child",
                    "context": {"span_id": "0x02", "trace_id": "0x0a"},
                    "parent_id": "0x01",
                    "start_time": 11,
                    "end_time": 19,
                    "status_code": "OK",
                    "status_message": "",
                    "attributes": {},
                    "events": [],
                },
            ]
        },
    }
    trace = Trace.from_dict(v2)
    assert (trace.info.trace_id, trace.info.request_time, trace.info.state, trace.info.tags) == (
        "abc",
        5,
        TraceState.OK,
        {"t": "v"},
    )
    root, child = trace.data.spans
    assert root.span_id == "0000000000000001" and child.parent_id is root.span_id
    assert trace.data.request == '{"x": 1}' and child.start_time_ns == 11


def test_environment_variables_are_mlflows_objects(monkeypatch):
    """``mlflow.environment_variables``' tracing variables: name, default, ``get()`` of the current
    environment (an invalid value gives the default), ``is_set()``."""
    from mlflow_otel.environment_variables import MLFLOW_TRACE_SAMPLING_RATIO, MLFLOW_TRACKING_INSECURE_TLS

    monkeypatch.delenv("MLFLOW_TRACE_SAMPLING_RATIO", raising=False)
    assert (MLFLOW_TRACE_SAMPLING_RATIO.name, MLFLOW_TRACE_SAMPLING_RATIO.get()) == (
        "MLFLOW_TRACE_SAMPLING_RATIO",
        1.0,
    )
    assert not MLFLOW_TRACE_SAMPLING_RATIO.is_set()
    monkeypatch.setenv("MLFLOW_TRACE_SAMPLING_RATIO", "0.25")
    assert MLFLOW_TRACE_SAMPLING_RATIO.get() == 0.25 and MLFLOW_TRACE_SAMPLING_RATIO.is_set()
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "TRUE")
    assert MLFLOW_TRACKING_INSECURE_TLS.get() is True
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "maybe")
    assert MLFLOW_TRACKING_INSECURE_TLS.get() is False


def test_live_span_exposes_the_otel_span_under_mlflows_name():
    """``LiveSpan._span``: the OTel span underneath, which code written for MLflow reads
    (MLflow's test_distributed reads its span context)."""
    with mlflow.start_span("s") as span:
        assert mlflow.get_current_active_span()._span is span.otel_span
        assert span._span.get_span_context().is_valid
