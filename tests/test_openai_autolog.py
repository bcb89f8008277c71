"""``mlflow_otel.openai.autolog()``: the real ``openai`` client against an OpenAI-compatible server on
loopback (JSON and SSE), spans read from the OTLP wire."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator

import openai
import pytest
from openai import _base_client

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel._runtime import RUNTIME
from mlflow_otel._settings import load as load_settings
from mlflow_otel.processors.normalization import openai_extract as _extract
from tests.conftest import by_name, decoded
from tests.openai_server import OpenAiServer

COUNTERS = RUNTIME.counters

ORIGINAL_SYNC = _base_client.SyncAPIClient.__dict__["request"]
ORIGINAL_ASYNC = _base_client.AsyncAPIClient.__dict__["request"]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            },
        },
    }
]
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "what is otel"}]


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAiServer]:
    with OpenAiServer() as s:
        yield s


@pytest.fixture(autouse=True)
def autologged(otlp_http):
    mlflow.openai.autolog()
    yield
    mlflow.openai.autolog(disable=True)


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)


@pytest.fixture
def aclient(server):
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)


def _usage(span):
    return decoded(span, "mlflow.chat.tokenUsage")


# --- chat completions ---------------------------------------------------------------------------


def test_chat_completion_span_nests_and_carries_mlflow_and_genai_attributes(client, otlp_http):
    with mlflow.start_span("agent") as parent:
        reply = client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, temperature=0.2, max_tokens=50
        )
    assert reply.choices[0].message.content == "Echo: what is otel"
    spans = by_name(otlp_http(2))
    span = spans["Completions"]
    assert span.parent_id == parent.span_id and span.trace_id == spans["agent"].trace_id
    a = span.attributes
    assert a["mlflow.spanType"] == "CHAT_MODEL" and span.status == "OK"
    assert decoded(span, "mlflow.spanInputs") == {
        "model": "gpt-4o",
        "messages": MESSAGES,
        "temperature": 0.2,
        "max_tokens": 50,
    }
    out = decoded(span, "mlflow.spanOutputs")
    assert out["choices"][0]["message"]["content"] == "Echo: what is otel"
    assert _usage(span) == {
        "input_tokens": 8,
        "output_tokens": 4,
        "total_tokens": 12,
        "cache_read_input_tokens": 2,
    }
    assert a["mlflow.llm.model"] == "gpt-4o-2024-08-06"  # the answering model, as MLflow prefers
    assert a["mlflow.llm.provider"] == "openai_compatible"
    assert a["mlflow.message.format"] == "openai"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai_compatible"
    assert a["gen_ai.request.model"] == "gpt-4o"
    assert a["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert a["gen_ai.request.temperature"] == 0.2 and a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.usage.input_tokens"] == 8 and a["gen_ai.usage.output_tokens"] == 4
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.response.id"] == "chatcmpl-1"
    assert a["server.address"] == "127.0.0.1"
    # Messages are not repeated in gen_ai.* unless asked (they are already the span's inputs); an
    # OTLP endpoint gets OpenInference by default (MLFLOW_OTEL_OTLP_SEMCONV), written on export.
    assert "gen_ai.input.messages" not in a
    assert a["openinference.span.kind"] == "LLM" and a["llm.input_messages.0.message.role"] == "system"


async def test_async_chat_completion(aclient, otlp_http):
    @mlflow.trace
    async def answer(q):
        r = await aclient.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": q}])
        return r.choices[0].message.content

    assert await answer("hi") == "Echo: hi"
    spans = by_name(otlp_http(2))
    assert spans["Completions"].parent_id == spans["answer"].span_id
    assert _usage(spans["Completions"])["total_tokens"] == 8


def test_tool_calls_requested_and_returned(client, otlp_http):
    reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=TOOLS)
    assert reply.choices[0].message.tool_calls[0].function.name == "add"
    span = otlp_http(1)[0]
    assert decoded(span, "mlflow.chat.tools") == TOOLS
    out = decoded(span, "mlflow.spanOutputs")
    assert out["choices"][0]["message"]["tool_calls"][0]["function"] == {
        "name": "add",
        "arguments": '{"a": 1, "b": 2}',
    }
    assert span.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]


# --- streams -----------------------------------------------------------------------------------------


def test_stream_is_aggregated_and_ends_when_exhausted(client, otlp_http):
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}, n=2
    )
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].index == 0]
    assert "".join(p for p in pieces if p) == "Echo: what is otel"
    span = otlp_http(1)[0]
    out = decoded(span, "mlflow.spanOutputs")
    assert out["object"] == "chat.completion" and out["model"] == "gpt-4o-2024-08-06"
    assert [c["message"]["content"] for c in out["choices"]] == [
        "Echo: what is otel",
        "Echo: what is otel (1)",
    ]
    assert [c["finish_reason"] for c in out["choices"]] == ["stop", "stop"]
    assert _usage(span)["output_tokens"] == 4  # from the usage chunk the user asked for
    chunk_events = [e for e in span.events if e[0].startswith("mlflow.chunk.item.")]
    assert len(chunk_events) >= 5
    assert json.loads(chunk_events[0][1]["mlflow.chunk.value"])["object"] == "chat.completion.chunk"
    assert span.status == "OK" and "mlflow_otel.stream.closed_early" not in span.attributes


def test_stream_usage_only_when_the_user_asked_for_it(client, server, otlp_http):
    server.requests.clear()
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    span = otlp_http(1)[0]
    assert (
        "mlflow.chat.tokenUsage" not in span.attributes and "gen_ai.usage.input_tokens" not in span.attributes
    )
    assert "stream_options" not in server.requests[-1]["body"]  # never added behind the user's back


def test_streamed_tool_call_is_reassembled(client, otlp_http):
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=TOOLS, stream=True))
    span = otlp_http(1)[0]
    message = decoded(span, "mlflow.spanOutputs")["choices"][0]["message"]
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}
    ]
    assert span.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]


@pytest.mark.parametrize("how", ["close", "with", "garbage"])
def test_stream_closed_early_still_ends_the_span(client, otlp_http, how):
    def first_chunk(stream):
        return next(iter(stream))

    if how == "close":
        stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        first_chunk(stream)
        stream.close()
    elif how == "with":
        with client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
            for _ in stream:
                break
    else:
        stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        first_chunk(stream)
        del stream
        gc.collect()
    span = otlp_http(1)[0]
    assert span.attributes["mlflow_otel.stream.closed_early"] is True
    assert span.status == "OK"
    assert decoded(span, "mlflow.spanOutputs")["object"] == "chat.completion"


def test_stream_error_mid_stream_is_recorded_and_reraised(client, otlp_http):
    stream = client.chat.completions.create(model="stream-error", messages=MESSAGES, stream=True)
    seen = []
    with pytest.raises(openai.APIError, match="overloaded"):
        for chunk in stream:
            seen.append(chunk)
    span = otlp_http(1)[0]
    assert span.status == "ERROR" and "overloaded" in span.status_message
    assert any(e[0] == "exception" for e in span.events)
    assert decoded(span, "mlflow.spanOutputs")["choices"][0]["message"]["content"] == "Echo:"  # what came


async def test_async_stream_exhausted_and_closed_early(aclient, otlp_http):
    stream = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Echo: what is otel"
    stream = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async with stream:
        async for _ in stream:
            break
    spans = otlp_http(2)
    done, early = sorted(spans, key=lambda s: "mlflow_otel.stream.closed_early" in s.attributes)
    assert decoded(done, "mlflow.spanOutputs")["choices"][0]["message"]["content"] == "Echo: what is otel"
    assert early.attributes["mlflow_otel.stream.closed_early"] is True


# --- the Responses API, embeddings, other endpoints -------------------------------------------------


def test_responses_api(client, otlp_http):
    r = client.responses.create(model="gpt-4o", input="hello", instructions="Be brief.")
    assert r.output_text == "Echo: hello"
    span = otlp_http(1)[0]
    assert span.name == "Responses" and span.attributes["mlflow.spanType"] == "CHAT_MODEL"
    assert decoded(span, "mlflow.spanOutputs")["output"][0]["content"][0]["text"] == "Echo: hello"
    assert _usage(span) == {
        "input_tokens": 4,
        "output_tokens": 2,
        "total_tokens": 6,
        "cache_read_input_tokens": 0,
    }
    assert span.attributes["gen_ai.response.finish_reasons"] == ["stop"]


def test_responses_api_stream_with_function_tool(client, otlp_http):
    tool = {"type": "function", "name": "add", "parameters": {"type": "object"}}
    events = list(client.responses.create(model="gpt-4o", input="add 1 and 2", tools=[tool], stream=True))
    assert events[-1].type == "response.completed"
    span = otlp_http(1)[0]
    assert decoded(span, "mlflow.chat.tools") == [
        {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    ]
    out = decoded(span, "mlflow.spanOutputs")
    assert out["status"] == "completed" and out["output"][0]["type"] == "function_call"
    assert _usage(span)["total_tokens"] == out["usage"]["total_tokens"]
    assert span.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]


async def test_async_responses_stream(aclient, otlp_http):
    stream = await aclient.responses.create(model="gpt-4o", input="hi", stream=True)
    kinds = [e.type async for e in stream]
    assert kinds[-1] == "response.completed"
    span = otlp_http(1)[0]
    assert decoded(span, "mlflow.spanOutputs")["output"][0]["content"][0]["text"] == "Echo: hi"


def test_embeddings(client, otlp_http):
    r = client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    assert r.data[1].embedding == [1.0, 0.5, -0.25]
    span = otlp_http(1)[0]
    assert span.name == "Embeddings" and span.attributes["mlflow.spanType"] == "EMBEDDING"
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert _usage(span) == {"input_tokens": 3, "total_tokens": 3}  # no output tokens reported, none invented
    assert "gen_ai.usage.output_tokens" not in span.attributes
    assert decoded(span, "mlflow.spanOutputs")["data"][1]["embedding"] == [1.0, 0.5, -0.25]


def test_legacy_completions_and_other_endpoints_get_spans(client, otlp_http):
    assert client.completions.create(model="davinci", prompt="say hi").choices[0].text == " Echo: say hi"
    assert client.models.list().data[0].id == "gpt-test"
    assert client.moderations.create(input="hello").results[0].flagged is False
    spans = by_name(otlp_http(3))
    assert spans["Completions"].attributes["mlflow.spanType"] == "LLM"
    assert spans["Completions"].attributes["gen_ai.operation.name"] == "text_completion"
    assert decoded(spans["Models"], "mlflow.spanOutputs")["data"][0]["id"] == "gpt-test"
    assert decoded(spans["Moderations"], "mlflow.spanInputs") == {"input": "hello"}
    assert spans["Moderations"].attributes["mlflow.spanType"] == "UNKNOWN"


def test_raw_response(client, otlp_http):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().choices[0].message.content == "Echo: what is otel"
    span = otlp_http(1)[0]
    assert decoded(span, "mlflow.spanOutputs")["choices"][0]["message"]["content"] == "Echo: what is otel"


# --- errors and robustness --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "exc", "code"),
    [("fail-400", openai.BadRequestError, "400"), ("fail-500", openai.InternalServerError, "500")],
)
def test_http_errors_are_recorded_and_reraised(client, otlp_http, model, exc, code):
    with pytest.raises(exc):
        client.chat.completions.create(model=model, messages=MESSAGES)
    span = otlp_http(1)[0]
    assert span.status == "ERROR" and span.status_message.startswith(exc.__name__)
    assert span.attributes["error.type"] == code
    assert any(e[0] == "exception" for e in span.events)


def test_retries_are_inside_one_span(server, otlp_http):
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=1)
    server.requests.clear()
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="fail-500", messages=MESSAGES)
    assert len(server.requests) == 2
    assert [s.name for s in otlp_http(1)] == ["Completions"]


def test_timeout_is_recorded(client, otlp_http):
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).chat.completions.create(model="slow", messages=MESSAGES)
    span = otlp_http(1)[0]
    assert span.status == "ERROR" and "APITimeoutError" in span.status_message


def test_a_failure_in_our_extraction_never_reaches_the_user(client, otlp_http, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("bad pydantic")

    monkeypatch.setattr(_extract, "response_attributes", broken)
    reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert reply.choices[0].message.content == "Echo: what is otel"
    span = otlp_http(1)[0]
    assert span.status == "OK" and span.end_ns > 0
    assert COUNTERS.snapshot()["autolog_errors"] == 1


def test_no_traceparent_unless_asked(client, server, otlp_http):
    server.requests.clear()
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert not any(k.lower() == "traceparent" for k in server.requests[-1]["headers"])
    mlflow.openai.autolog(inject_trace_context=True)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    headers = {k.lower(): v for k, v in server.requests[-1]["headers"].items()}
    spans = otlp_http(2)
    injected = headers["traceparent"].split("-")
    assert any(s.trace_id == injected[1] and s.span_id == injected[2] for s in spans)


# --- switching -------------------------------------------------------------------------------------


def test_autolog_is_idempotent_covers_existing_clients_and_disable_restores(server, otlp_http, receiver):
    mlflow.openai.autolog(disable=True)
    early_client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")  # created before autolog
    assert _base_client.SyncAPIClient.__dict__["request"] is ORIGINAL_SYNC
    mlflow.openai.autolog()
    mlflow.openai.autolog()
    early_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(otlp_http(1)) == 1
    mlflow.openai.autolog(disable=True)
    assert _base_client.SyncAPIClient.__dict__["request"] is ORIGINAL_SYNC
    assert _base_client.AsyncAPIClient.__dict__["request"] is ORIGINAL_ASYNC
    receiver.clear()
    early_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert mlflow.flush_trace_async_logging()
    assert receiver.spans() == []


def test_tracing_disabled_costs_nothing_and_calls_still_work(client, otlp_http, receiver):
    tracing.disable()
    try:
        assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
    finally:
        tracing.enable()
    assert mlflow.flush_trace_async_logging()
    assert receiver.spans() == []


def test_content_capture_off_keeps_usage_and_model(client, otlp_http):
    tracing.configure(capture_content=False)
    list(
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    span = otlp_http(1)[0]
    assert "mlflow.spanInputs" not in span.attributes and "mlflow.spanOutputs" not in span.attributes
    assert not span.events
    assert (
        _usage(span)["total_tokens"] == 12 and span.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    )


def test_genai_messages_and_openinference_when_asked(client, otlp_http, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    monkeypatch.setenv("MLFLOW_OTEL_SEMCONV", "mlflow,gen_ai,openinference")
    mlflow.openai.autolog()  # settings are read when autolog is called
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=TOOLS)
    a = otlp_http(1)[0].attributes
    assert json.loads(a["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "what is otel"}]}
    ]
    assert json.loads(a["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "add", "arguments": {"a": 1, "b": 2}}],
            "finish_reason": "tool_calls",
        }
    ]
    assert json.loads(a["gen_ai.tool.definitions"])[0]["function"]["name"] == "add"
    assert a["openinference.span.kind"] == "LLM" and a["llm.model_name"] == "gpt-4o"
    assert a["llm.input_messages.0.message.role"] == "system"
    assert a["llm.input_messages.1.message.content"] == "what is otel"
    assert a["llm.output_messages.0.message.tool_calls.0.tool_call.function.name"] == "add"
    assert a["llm.token_count.total"] == 12
    assert json.loads(a["input.value"])["model"] == "gpt-4o" and a["output.mime_type"] == "application/json"


def test_semconv_setting_is_validated(monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_OTEL_SEMCONV", "mlflow,zipkin")
    mlflow.openai.autolog()
    assert load_settings().genai.semconv == frozenset({"mlflow", "gen_ai"})
    assert "MLFLOW_OTEL_SEMCONV" in caplog.text


@pytest.mark.parametrize(
    ("base_url", "cls", "expected"),
    [
        ("https://api.openai.com/v1", "OpenAI", "openai"),
        ("https://myres.openai.azure.com/openai", "AzureOpenAI", "azure.ai.openai"),
        ("https://anything.example/v1", "AsyncAzureOpenAI", "azure.ai.openai"),
        ("https://api.groq.com/openai/v1", "OpenAI", "groq"),
        ("https://generativelanguage.googleapis.com/v1beta/openai/", "OpenAI", "gcp.gemini"),
        ("https://api.deepseek.com", "OpenAI", "deepseek"),
        ("http://localhost:11434/v1", "OpenAI", "ollama"),
        ("http://127.0.0.1:8000/v1", "OpenAI", "openai_compatible"),
        ("https://api.acme-llm.com/v1", "OpenAI", "acme-llm"),
    ],
)
def test_provider_from_base_url(base_url, cls, expected):
    assert _extract.provider_for(base_url, cls) == expected


@pytest.mark.parametrize(
    ("method", "url", "name"),
    [
        ("post", "/chat/completions", "Completions"),
        ("post", "/responses", "Responses"),
        ("get", "/responses/resp_123", "Responses"),
        ("post", "/vector_stores/vs_abc123/files", "Files"),
        ("post", "/audio/transcriptions", "Transcriptions"),
        ("get", "/models/gpt-4o", "Models"),
    ],
)
def test_endpoint_names(method, url, name):
    assert _extract.classify(method, url).name == name


async def test_many_concurrent_async_calls_each_nest_under_their_own_parent(aclient, otlp_http):
    @mlflow.trace
    async def one(i):
        r = await aclient.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"q{i}"}]
        )
        return r.choices[0].message.content

    assert await asyncio.gather(*(one(i) for i in range(8))) == [f"Echo: q{i}" for i in range(8)]
    spans = otlp_http(16)
    parents = {s.span_id: s for s in spans if s.name == "one"}
    for span in (s for s in spans if s.name == "Completions"):
        parent = parents[span.parent_id]
        asked = decoded(span, "mlflow.spanInputs")["messages"][0]["content"]
        assert decoded(parent, "mlflow.spanInputs") == {"i": int(asked[1:])}


def test_sampled_out_calls_and_streams_work_and_export_nothing(client, otlp_http, receiver, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACE_SAMPLING_RATIO", "0")
    tracing.reset()
    assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Echo: what is otel"
    assert mlflow.flush_trace_async_logging()
    assert receiver.spans() == []
    assert COUNTERS.snapshot().get("autolog_errors", 0) == 0
