"""The normalization processor row by row (``processors/normalization/README.md``): spans as the
instrumentors make them (OpenInference, OTel GenAI incl. content events, OpenLLMetry), through the
processor as the process stage runs it; then the other way for our own spans; then usage counted once.
The same mappings on real instrumentors' spans: ``tests/test_autolog_*.py``."""

from __future__ import annotations

import json
from typing import Any, Optional

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext

import mlflow_otel as mlflow
from mlflow_otel.integrations import genai_content
from mlflow_otel.pipeline.process import run_chain
from mlflow_otel.processors.normalization import PENDING_LIMIT, Normalizer

_ids = iter(range(1, 10_000_000))


def make(
    attributes: dict[str, Any],
    parent: Optional[ReadableSpan] = None,
    events: tuple[Event, ...] = (),
    scope: str = "openinference.instrumentation.anthropic",
    name: str = "span",
) -> ReadableSpan:
    context = SpanContext(trace_id=7, span_id=next(_ids), is_remote=False)
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent.context if parent is not None else None,
        attributes=attributes,
        events=events,
        instrumentation_scope=InstrumentationScope(scope),
        start_time=1,
        end_time=2,
    )


def run(span: ReadableSpan, normalizer: Optional[Normalizer] = None) -> ReadableSpan:
    out = run_chain(span, [normalizer or Normalizer(frozenset({"mlflow", "gen_ai"}), False)])
    assert out is not None
    return out


def js(span: ReadableSpan, key: str) -> Any:
    return json.loads(span.attributes[key])


# --- OpenInference -------------------------------------------------------------------------------------------


def test_openinference_chat_span():
    span = run(
        make(
            {
                "openinference.span.kind": "LLM",
                "input.value": '{"messages": [{"role": "user", "content": "hi"}]}',
                "input.mime_type": "application/json",
                "output.value": "hello",
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "hi",
                "llm.output_messages.0.message.content": "hello",
                "llm.token_count.prompt": 5,
                "llm.token_count.completion": 2,
                "llm.token_count.prompt_details.cache_write": 4,
                "llm.model_name": "claude-x",
                "llm.system": "anthropic",
                "llm.tools.0.tool.json_schema": '{"name": "add", "parameters": {}}',
            }
        )
    )
    a = span.attributes
    assert a["mlflow.spanType"] == "CHAT_MODEL"
    assert js(span, "mlflow.spanInputs") == {"messages": [{"role": "user", "content": "hi"}]}
    assert js(span, "mlflow.spanOutputs") == "hello"  # text/plain as a JSON string
    assert js(span, "mlflow.chat.tokenUsage") == {
        "input_tokens": 5,
        "output_tokens": 2,
        "total_tokens": 7,
        "cache_creation_input_tokens": 4,
    }
    assert a["mlflow.llm.model"] == "claude-x" and a["mlflow.llm.provider"] == "anthropic"
    assert js(span, "mlflow.chat.tools") == [{"name": "add", "parameters": {}}]
    assert a["mlflow.message.format"] == "anthropic"
    assert not [
        k for k in a if k.startswith(("input.", "output.", "llm.input_messages", "llm.output_messages"))
    ]
    assert a["llm.token_count.prompt"] == 5


def test_openinference_kinds():
    expected = {
        "LLM": "LLM",  # no messages: a completion
        "CHAIN": "CHAIN",
        "PROMPT": "CHAIN",
        "TOOL": "TOOL",
        "RETRIEVER": "RETRIEVER",
        "EMBEDDING": "EMBEDDING",
        "AGENT": "AGENT",
        "RERANKER": "RERANKER",
        "GUARDRAIL": "GUARDRAIL",
        "EVALUATOR": "EVALUATOR",
        "SOMETHING_NEW": "UNKNOWN",
    }
    for kind, span_type in expected.items():
        span = run(make({"openinference.span.kind": kind}, scope="openinference.instrumentation.langchain"))
        assert span.attributes["mlflow.spanType"] == span_type, kind
        assert "mlflow.message.format" not in span.attributes


def test_openinference_retriever_documents_become_mlflow_documents():
    span = run(
        make(
            {
                "openinference.span.kind": "RETRIEVER",
                "input.value": "what is otel",
                "retrieval.documents.0.document.content": "OTel is a standard",
                "retrieval.documents.0.document.id": "d1",
                "retrieval.documents.0.document.score": 0.9,
                "retrieval.documents.0.document.metadata": '{"source": "docs"}',
                "retrieval.documents.1.document.content": "spans and traces",
            }
        )
    )
    assert js(span, "mlflow.spanOutputs") == [
        {"page_content": "OTel is a standard", "metadata": {"source": "docs", "score": 0.9}, "id": "d1"},
        {"page_content": "spans and traces", "metadata": {}},
    ]
    assert js(span, "mlflow.spanInputs") == "what is otel"


def test_openinference_content_kept_when_its_convention_is_asked_for():
    normalizer = Normalizer(frozenset({"mlflow", "gen_ai", "openinference"}), False)
    span = run(
        make({"openinference.span.kind": "CHAIN", "input.value": "q", "output.value": "a"}), normalizer
    )
    assert span.attributes["input.value"] == "q" and js(span, "mlflow.spanInputs") == "q"


# --- OpenTelemetry GenAI -------------------------------------------------------------------------------------


def test_genai_operations_usage_and_messages():
    scope = "opentelemetry.instrumentation.google_genai"
    for operation, span_type in {
        "chat": "CHAT_MODEL",
        "generate_content": "CHAT_MODEL",
        "text_completion": "LLM",
        "embeddings": "EMBEDDING",
        "execute_tool": "TOOL",
        "invoke_agent": "AGENT",
        "create_agent": "AGENT",
        "retrieval": "RETRIEVER",
    }.items():
        assert (
            run(make({"gen_ai.operation.name": operation}, scope=scope)).attributes["mlflow.spanType"]
            == span_type
        )
    span = run(
        make(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "gemini",
                "gen_ai.request.model": "g-1",
                "gen_ai.response.model": "g-1-001",
                "gen_ai.usage.input_tokens": 9,
                "gen_ai.usage.output_tokens": 3,
                "gen_ai.usage.cache_read.input_tokens": 2,
                "gen_ai.system_instructions": '[{"type": "text", "content": "be brief"}]',
                "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]',
                "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "yo"}]}]',
                "gen_ai.tool.definitions": '[{"name": "add"}]',
            },
            scope=scope,
        )
    )
    assert js(span, "mlflow.spanInputs") == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
    ]
    assert js(span, "mlflow.spanOutputs")[0]["parts"][0]["content"] == "yo"
    assert js(span, "mlflow.chat.tokenUsage") == {
        "input_tokens": 9,
        "output_tokens": 3,
        "total_tokens": 12,
        "cache_read_input_tokens": 2,
    }
    assert (
        span.attributes["mlflow.llm.model"] == "g-1-001"
        and span.attributes["mlflow.llm.provider"] == "gemini"
    )
    assert js(span, "mlflow.chat.tools") == [{"name": "add"}]
    assert "gen_ai.input.messages" not in span.attributes  # content once, unless asked for
    kept = run(
        make({"gen_ai.operation.name": "chat", "gen_ai.input.messages": "[]"}, scope=scope),
        Normalizer(frozenset({"mlflow", "gen_ai"}), True),
    )
    assert kept.attributes["gen_ai.input.messages"] == "[]"


def test_genai_content_from_per_message_events():
    """Older GenAI instrumentations emit one log event per message (gen-ai-events.md)."""
    events = (
        Event("gen_ai.system.message", {"body": '{"content": "be brief"}'}, 1),
        Event("gen_ai.user.message", {"body": '{"content": "hi"}'}, 1),
        Event(
            "gen_ai.choice",
            {"body": '{"index": 0, "message": {"content": "yo"}, "finish_reason": "stop"}'},
            2,
        ),
        Event("exception", {"exception.type": "X"}, 3),
    )
    span = run(make({"gen_ai.operation.name": "chat", "gen_ai.system": "openai"}, events=events))
    assert js(span, "mlflow.spanInputs") == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert js(span, "mlflow.spanOutputs") == [{"role": "assistant", "content": "yo"}]
    assert [e.name for e in span.events] == ["exception"]  # content events travel once
    assert span.attributes["mlflow.llm.provider"] == "openai"


def test_genai_log_events_land_on_the_span_they_were_emitted_in(mlflow_traces):
    """``genai_content.LOGGER_PROVIDER``: an instrumentation's log event becomes an event of the
    current span, which the processor maps (MLflow ingests no OTLP logs)."""
    logger = genai_content.LOGGER_PROVIDER.get_logger("opentelemetry.instrumentation.test")
    with mlflow.start_span("call") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        logger.emit(
            event_name="gen_ai.client.inference.operation.details",
            attributes={
                "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}],
                "gen_ai.output.messages": [
                    {"role": "assistant", "parts": [{"type": "text", "content": "yo"}]}
                ],
            },
        )
        logger.emit(event_name="gen_ai.client.inference.operation.details", attributes={"a": 1})  # no content
        logger.emit(event_name="gen_ai.user.message")  # no body, no content: not kept
    (trace,) = mlflow_traces.wait(1)
    (recorded,) = trace.data.spans
    names = [e.name for e in recorded.events]
    assert names.count("gen_ai.client.inference.operation.details") == 1
    details = next(e for e in recorded.events if e.name == "gen_ai.client.inference.operation.details")
    assert json.loads(details.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == "yo"
    logger.emit(event_name="gen_ai.user.message", body={"content": "lost"})  # no span: nothing, no error
    assert not otel_trace.get_current_span().is_recording()


# --- OpenLLMetry ----------------------------------------------------------------------------------------------


def test_openllmetry_spans():
    scope = "opentelemetry.instrumentation.langchain"
    workflow = run(
        make(
            {
                "traceloop.span.kind": "workflow",
                "traceloop.entity.input": '{"q": "hi"}',
                "traceloop.entity.output": '{"a": "yo"}',
            },
            scope=scope,
        )
    )
    assert workflow.attributes["mlflow.spanType"] == "WORKFLOW"
    assert js(workflow, "mlflow.spanInputs") == {"q": "hi"} and js(workflow, "mlflow.spanOutputs") == {
        "a": "yo"
    }
    chat = run(
        make(
            {
                "llm.request.type": "chat",
                "gen_ai.system": "Anthropic",
                "gen_ai.request.model": "claude",
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "hi",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "yo",
                "gen_ai.usage.prompt_tokens": 4,
                "gen_ai.usage.completion_tokens": 1,
                "llm.usage.total_tokens": 5,
                "llm.request.functions.0.name": "add",
            },
            scope=scope,
        )
    )
    assert chat.attributes["mlflow.spanType"] == "CHAT_MODEL"
    assert js(chat, "mlflow.spanInputs") == [{"role": "user", "content": "hi"}]
    assert js(chat, "mlflow.spanOutputs") == [{"role": "assistant", "content": "yo"}]
    assert js(chat, "mlflow.chat.tokenUsage") == {"input_tokens": 4, "output_tokens": 1, "total_tokens": 5}
    assert js(chat, "mlflow.chat.tools") == [{"name": "add"}]
    assert not [k for k in chat.attributes if k.startswith(("gen_ai.prompt.", "gen_ai.completion."))]
    # Content travels once: OpenLLMetry's own copies are gone once mapped.
    assert not [k for k in workflow.attributes if k.startswith("traceloop.entity.")]
    assert not [k for k in chat.attributes if k.startswith("llm.request.functions.")]


def test_content_switch_drops_every_conventions_content():
    from mlflow_otel.processors.content import ContentFilter

    span = make(
        {
            "traceloop.span.kind": "task",
            "traceloop.entity.input": '{"q": "secret question"}',
            "llm.request.functions.0.description": "secret tool",
            "gen_ai.tool.call.arguments": '{"x": "secret"}',
            "llm.tools.0.tool.json_schema": '{"name": "secret"}',
            "kept": "yes",
        }
    )
    result = run_chain(span, (ContentFilter(),))
    assert dict(result.attributes) == {"traceloop.span.kind": "task", "kept": "yes"}


def test_other_spans_pass_untouched():
    span = make(
        {"http.request.method": "GET", "url.full": "http://x"}, scope="opentelemetry.instrumentation.httpx"
    )
    assert run(span) is span  # the same object: byte-identical export


# --- the other way: our spans ---------------------------------------------------------------------------------


def ours(span_type: str, **attributes: Any) -> ReadableSpan:
    return make({"mlflow.spanType": span_type, **attributes}, scope="mlflow_otel", name="mine")


def test_our_model_spans_get_genai_keys():
    span = run(
        ours(
            "CHAT_MODEL",
            **{
                "mlflow.chat.tokenUsage": '{"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}',
                "mlflow.llm.model": "m",
                "mlflow.llm.provider": "p",
                "mlflow.spanInputs": '{"q": 1}',
            },
        )
    )
    a = span.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "m"
    assert a["gen_ai.provider.name"] == "p"
    assert a["gen_ai.usage.input_tokens"] == 3 and a["gen_ai.usage.output_tokens"] == 4
    assert "openinference.span.kind" not in a and "input.value" not in a
    tool = run(ours("TOOL"))
    assert (
        tool.attributes["gen_ai.operation.name"] == "execute_tool"
        and tool.attributes["gen_ai.tool.name"] == "mine"
    )


def test_our_spans_get_openinference_keys_when_asked():
    normalizer = Normalizer(frozenset({"mlflow", "openinference"}), False)
    span = run(
        ours(
            "LLM",
            **{
                "mlflow.chat.tokenUsage": '{"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}',
                "mlflow.spanInputs": '{"q": 1}',
                "mlflow.spanOutputs": '"a"',
            },
        ),
        normalizer,
    )
    a = span.attributes
    assert a["openinference.span.kind"] == "LLM" and "gen_ai.operation.name" not in a
    assert a["input.value"] == '{"q": 1}' and a["input.mime_type"] == "application/json"
    assert a["llm.token_count.prompt"] == 3 and a["llm.token_count.total"] == 7


def test_our_chain_spans_untouched_and_our_genai_keys_not_repeated():
    chain = ours("CHAIN", **{"mlflow.spanInputs": "{}"})
    assert run(chain) is chain
    already = ours("CHAT_MODEL", **{"gen_ai.operation.name": "chat"})
    assert run(already) is already


# --- usage counted once ---------------------------------------------------------------------------------------


def _usage_attrs(n: int) -> dict[str, Any]:
    return {"llm.token_count.prompt": n, "llm.token_count.completion": 1, "llm.token_count.total": n + 1}


def test_framework_span_over_provider_span_is_demoted():
    normalizer = Normalizer(frozenset({"mlflow", "gen_ai"}), False)
    framework = make(
        {"openinference.span.kind": "LLM", "llm.input_messages.0.message.content": "x", **_usage_attrs(9)},
        scope="openinference.instrumentation.langchain",
    )
    middle = make({"openinference.span.kind": "CHAIN"}, parent=framework)
    provider = make({"openinference.span.kind": "LLM", **_usage_attrs(9)}, parent=middle)
    # Children end (and are processed) first.
    assert "mlflow.chat.tokenUsage" in run(provider, normalizer).attributes
    run(middle, normalizer)
    demoted = run(framework, normalizer)
    a = demoted.attributes
    assert a["mlflow.spanType"] == "CHAIN" and a["mlflow_otel.demoted_from"] == "CHAT_MODEL"
    assert a["openinference.span.kind"] == "CHAIN"
    assert not [k for k in a if k.startswith("llm.token_count.") or k == "mlflow.chat.tokenUsage"]


def test_agent_rollup_loses_usage_keeps_type_and_ours_are_never_demoted():
    normalizer = Normalizer(frozenset({"mlflow", "gen_ai"}), False)
    agent = make({"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 20})
    ours_llm = make(
        {"mlflow.spanType": "LLM", "mlflow.chat.tokenUsage": '{"total_tokens": 5}'},
        parent=agent,
        scope="mlflow_otel",
    )
    provider = make({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 5}, parent=ours_llm)
    run(provider, normalizer)
    assert "mlflow.chat.tokenUsage" in run(ours_llm, normalizer).attributes  # the user's own span
    rolled = run(agent, normalizer)
    assert rolled.attributes["mlflow.spanType"] == "AGENT"
    assert (
        "mlflow.chat.tokenUsage" not in rolled.attributes
        and "gen_ai.usage.input_tokens" not in rolled.attributes
    )


def test_siblings_and_unrelated_spans_keep_usage_and_marks_are_bounded():
    normalizer = Normalizer(frozenset({"mlflow", "gen_ai"}), False)
    root = make({"openinference.span.kind": "CHAIN"})
    one = make({"openinference.span.kind": "LLM", **_usage_attrs(3)}, parent=root)
    two = make({"openinference.span.kind": "LLM", **_usage_attrs(4)}, parent=root)
    assert "mlflow.chat.tokenUsage" in run(one, normalizer).attributes
    assert "mlflow.chat.tokenUsage" in run(two, normalizer).attributes
    run(root, normalizer)
    for _ in range(PENDING_LIMIT + 100):  # parents never seen (remote): the marks stay bounded
        run(make({"openinference.span.kind": "LLM", **_usage_attrs(1)}, parent=make({})), normalizer)
    assert len(normalizer._usage_below) <= PENDING_LIMIT


# --- conventions per destination (outward.Conventions, written as the OTLP exporter encodes) ---------
def test_destinations_choose_their_conventions_and_mlflow_servers_get_the_chain_s_only():
    import pytest

    from mlflow_otel._settings import load
    from mlflow_otel.destinations import MlflowExperimentLocation, OtlpDestination
    from mlflow_otel.pipeline.route import default_routes, resolve

    settings = load(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "MLFLOW_TRACKING_URI": "http://127.0.0.1:2"}
    )
    (otlp,) = default_routes(settings)
    assert otlp.semconv == frozenset({"mlflow", "gen_ai", "openinference"})
    mlflow_route = resolve(MlflowExperimentLocation("1"), settings)
    assert mlflow_route is not None and mlflow_route.semconv is None  # exactly what the chain wrote
    phoenix = resolve(OtlpDestination("http://127.0.0.1:3/v1/traces", semconv="openinference"), settings)
    assert phoenix is not None and phoenix.semconv == frozenset({"openinference"})
    explicit = load(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "MLFLOW_OTEL_SEMCONV": "mlflow,gen_ai"}
    )
    assert default_routes(explicit)[0].semconv == frozenset({"mlflow", "gen_ai"})
    with pytest.raises(ValueError):
        OtlpDestination("http://x", semconv="phoenix")


def _encoded(spans, overlay=None):  # type: ignore[no-untyped-def]
    """``spans`` as the OTLP exporter encodes them, parsed back: [(name, attributes)]."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from mlflow_otel.otlp.protobuf import encode_request

    request = ExportTraceServiceRequest.FromString(encode_request(spans, overlay))
    out = []
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attrs = {}
                for kv in span.attributes:
                    value = kv.value
                    kind = value.WhichOneof("value")
                    attrs[kv.key] = (
                        [v.string_value for v in value.array_value.values]
                        if kind == "array_value"
                        else getattr(value, kind)
                    )
                out.append((span.name, attrs))
    return out


def test_a_destination_s_conventions_are_written_as_it_encodes_and_send_content_once():
    from mlflow_otel._telemetry import Counters
    from mlflow_otel.processors.normalization.outward import Conventions

    conventions = Conventions(frozenset({"openinference"}), keep_mlflow=False)
    root = make(
        {
            "mlflow.spanType": "UNKNOWN",
            "mlflow.spanInputs": json.dumps({"question": "why?"}),
            "mlflow.spanOutputs": json.dumps("because"),
            "mlflow.traceTag.env": "prod",
            "mlflow.traceTag.mlflow.traceName": "answer",
            "mlflow.traceMetadata.app_version": "1.4",
            "mlflow.traceMetadata.mlflow.trace.session": "s-1",
        }
    )
    retriever = make(
        {
            "mlflow.spanType": "RETRIEVER",
            "mlflow.spanInputs": json.dumps({"query": "refunds"}),
            "mlflow.spanOutputs": json.dumps(
                [{"page_content": "30 days", "metadata": {"score": 0.9}, "id": "d1"}]
            ),
        }
    )
    other = make({"http.method": "GET"})
    counters = Counters()
    batch = [root, retriever, other]
    (_, attrs), (_, docs), (_, plain) = _encoded(batch, conventions.overlay(batch, counters, "Phoenix"))
    assert attrs["openinference.span.kind"] == "CHAIN"
    assert (attrs["input.value"], attrs["input.mime_type"]) == ("why?", "text/plain")
    assert (attrs["output.value"], attrs["output.mime_type"]) == ("because", "text/plain")
    assert json.loads(attrs["metadata"]) == {"app_version": "1.4"} and attrs["tag.tags"] == ["env:prod"]
    assert attrs["session.id"] == "s-1"
    assert "mlflow.spanInputs" not in attrs and "mlflow.spanOutputs" not in attrs
    assert attrs["mlflow.traceTag.env"] == "prod"  # the rest of the span as it was
    assert docs["retrieval.documents.0.document.content"] == "30 days"
    assert (
        docs["retrieval.documents.0.document.id"] == "d1"
        and docs["retrieval.documents.0.document.score"] == 0.9
    )
    assert "output.value" not in docs
    assert plain == {"http.method": "GET"}  # not ours: as it is
    assert dict(root.attributes)["mlflow.spanInputs"]  # the span itself is not changed
    assert counters.snapshot().get("processor_errors", 0) == 0


def test_a_span_the_conventions_cannot_read_is_sent_as_it_is_and_counted():
    from mlflow_otel._telemetry import Counters
    from mlflow_otel.processors.normalization.outward import Conventions

    class Unprintable:
        def __str__(self) -> str:
            raise ValueError("no text")

    # Values that cannot be written as text (session.id and llm.model_name are str(value)): a
    # processor of the user's could leave such values on a span built outside the SDK's checks.
    root = make({"mlflow.spanType": "AGENT", "mlflow.traceMetadata.mlflow.trace.session": Unprintable()})
    model = make({"mlflow.spanType": "LLM", "mlflow.llm.model": Unprintable()}, parent=root)
    fine = make({"mlflow.spanType": "TOOL", "mlflow.spanInputs": '"x"'}, parent=root)
    counters = Counters()
    conventions = Conventions(frozenset({"openinference"}), keep_mlflow=True)
    overlay = conventions.overlay([root, model, fine], counters, "x")
    assert counters.snapshot()["processor_errors"] == 1  # the trace's keys: none, the spans go on
    assert overlay(root, root.attributes, "a")[1] == {"openinference.span.kind": "AGENT"}
    assert overlay(model, model.attributes, "m") is None  # the span as it is
    assert counters.snapshot()["processor_errors"] == 2
    assert overlay(fine, fine.attributes, "t")[1]["input.value"] == "x"


# --- MLflow -> OpenInference / GenAI: what Phoenix's own helpers write (tests/test_phoenix.py compares) --------


def test_tool_parameters_are_a_json_schema_like_openinference_tool_decorator():
    from mlflow_otel.processors.normalization.outward import outward_attributes

    raw = {"mlflow.spanType": "TOOL", "mlflow.spanInputs": json.dumps({"order_id": 42, "note": "x"})}
    a = outward_attributes(raw, "lookup_order", frozenset({"openinference"}))
    assert json.loads(a["tool.parameters"]) == {
        "type": "object",
        "title": "lookup_order",
        "properties": {"order_id": {"type": "integer"}, "note": {"type": "string"}},
    }


def test_model_call_gets_invocation_parameters_without_its_content():
    from mlflow_otel.processors.normalization.outward import outward_attributes

    request = {
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    raw = {"mlflow.spanType": "CHAT_MODEL", "mlflow.spanInputs": json.dumps(request)}
    a = outward_attributes(raw, "Completions", frozenset({"openinference"}))
    assert json.loads(a["llm.invocation_parameters"]) == {"model": "gpt-4o-mini", "temperature": 0.2}
    assert a["llm.input_messages.0.message.content"] == "hi"


def test_retriever_documents_in_genai_only_when_content_is_opted_in():
    retriever = ours(
        "RETRIEVER",
        **{
            "mlflow.spanInputs": json.dumps({"query": "refunds"}),
            "mlflow.spanOutputs": json.dumps(
                [
                    {"page_content": "30 days", "metadata": {"score": 0.9, "source": "r.md"}, "id": "d1"},
                    {"page_content": "no id", "metadata": {}, "id": None},
                ]
            ),
        },
    )
    plain = run(retriever).attributes
    assert plain["gen_ai.operation.name"] == "retrieval"
    assert "gen_ai.retrieval.documents" not in plain and "gen_ai.retrieval.query.text" not in plain
    opted = run(retriever, Normalizer(frozenset({"mlflow", "gen_ai"}), True))
    assert opted.attributes["gen_ai.retrieval.query.text"] == "refunds"
    assert js(opted, "gen_ai.retrieval.documents") == [
        {"id": "d1", "score": 0.9, "content": "30 days", "metadata": {"score": 0.9, "source": "r.md"}},
        {"content": "no id"},
    ]


def test_openinference_puts_the_traces_session_user_metadata_and_tags_on_every_span(
    otlp_http, receiver, monkeypatch
):
    """As OpenInference's ``using_session`` / ``using_user`` / ``using_metadata`` / ``using_tags``
    stamp every span, so Phoenix's span filters match children too; over both paths: the processor
    chain (``MLFLOW_OTEL_SEMCONV``) and a destination's own conventions (``outward.Conventions``)."""
    for semconv, otlp_semconv in (
        ("mlflow,openinference", "mlflow,openinference"),
        ("mlflow", "openinference"),
    ):
        monkeypatch.setenv("MLFLOW_OTEL_SEMCONV", semconv)
        monkeypatch.setenv("MLFLOW_OTEL_OTLP_SEMCONV", otlp_semconv)
        mlflow.tracing.reset()
        receiver.clear()

        @mlflow.trace(span_type="AGENT")
        def agent(question: str) -> str:
            mlflow.update_current_trace(
                session_id="s-9", user="ann", tags={"env": "prod"}, metadata={"app_version": "1.4"}
            )
            return tool(question)

        @mlflow.trace(span_type="TOOL")
        def tool(question: str) -> str:
            return question.upper()

        agent("why?")
        spans = {s.name: s.attributes for s in otlp_http(2)}
        for name in ("agent", "tool"):
            attrs = spans[name]
            assert attrs["session.id"] == "s-9" and attrs["user.id"] == "ann", (semconv, name)
            assert json.loads(attrs["metadata"]) == {"app_version": "1.4"}
            assert list(attrs["tag.tags"]) == ["env:prod"]
