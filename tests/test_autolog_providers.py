"""``mlflow_otel.<provider>.autolog()`` for provider clients: the real client libraries and the real
instrumentors from the package index, each client against a loopback fake of its provider's HTTP
API (``tests/provider_fakes.py``, ``tests/openai_server.py``), spans read from the OTLP wire.

Each test checks the span tree, MLflow's span type, inputs, outputs, token usage (once), model,
provider and message format, and that content travels once (the instrumentor's own content keys
are gone unless their convention is asked for).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.autolog_checks import attr, autologged_fixture, check_tree, usage  # noqa: F401 (fixture)
from tests.openai_server import OpenAiServer
from tests.provider_fakes import ProviderFake

# LiteLLM fetches its model price list from the network at import unless told to use its own copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MESSAGES = [{"role": "user", "content": "what is otel"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[ProviderFake]:
    with ProviderFake() as server:
        yield server


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[OpenAiServer]:
    with OpenAiServer() as server:
        yield server


def _no_openinference_content(span):
    leftovers = [
        k
        for k in span.attributes
        if k in ("input.value", "output.value") or k.startswith("llm.input_messages.")
    ]
    assert leftovers == [], leftovers


# --- Anthropic ------------------------------------------------------------------------------------------


def test_anthropic_messages_create(fake, otlp_http, autologged):
    import anthropic

    autologged("anthropic")
    client = anthropic.Anthropic(base_url=fake.base_url, api_key="test", max_retries=0)
    reply = client.messages.create(model="claude-test", max_tokens=64, system="Be brief.", messages=MESSAGES)
    assert reply.content[0].text == "Echo: what is otel"

    (span,) = otlp_http(1)
    check_tree([span])
    assert span.scope == "openinference.instrumentation.anthropic"
    assert span.attributes["mlflow.spanType"] == "CHAT_MODEL"
    inputs = attr(span, "mlflow.spanInputs")
    assert (
        inputs["messages"] == MESSAGES
        and inputs["system"] == "Be brief."
        and inputs["model"] == "claude-test"
    )
    assert attr(span, "mlflow.spanOutputs")["content"][0]["text"] == "Echo: what is otel"
    # The fake reports 3 + 5 input tokens and 3 cache reads; OpenInference counts both as prompt.
    assert usage(span) == {
        "input_tokens": 11,
        "output_tokens": 4,
        "total_tokens": 15,
        "cache_read_input_tokens": 3,
    }
    assert span.attributes["mlflow.llm.model"] == "claude-test"
    assert span.attributes["mlflow.llm.provider"] == "anthropic"
    assert span.attributes["mlflow.message.format"] == "anthropic"
    assert span.attributes["mlflow.traceRequestId"] == f'"tr-{span.trace_id}"'
    _no_openinference_content(span)
    assert span.attributes["llm.token_count.total"] == 15  # usage stays in its own convention too


def test_anthropic_stream_and_tools(fake, otlp_http, autologged):
    import anthropic

    autologged("anthropic")
    client = anthropic.Anthropic(base_url=fake.base_url, api_key="test", max_retries=0)
    with client.messages.stream(model="claude-test", max_tokens=64, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
    assert text == "Echo: what is otel"
    tool = {"name": "add", "description": "Add", "input_schema": {"type": "object", "properties": {}}}
    client.messages.create(model="claude-test", max_tokens=64, messages=MESSAGES, tools=[tool])

    spans = otlp_http(2)
    streamed, tooled = sorted(spans, key=lambda s: s.start_ns)
    for span in spans:
        check_tree([span])
        assert span.attributes["mlflow.spanType"] == "CHAT_MODEL"
    assert usage(streamed)["output_tokens"] == 4
    assert "Echo: what is otel" in str(attr(streamed, "mlflow.spanOutputs"))
    assert attr(tooled, "mlflow.chat.tools")[0]["name"] == "add"
    assert attr(tooled, "mlflow.spanOutputs")["content"][0]["type"] == "tool_use"


def test_anthropic_through_openllmetry_speaks_gen_ai(fake, otlp_http, autologged):
    """The third choice (OpenLLMetry) when asked for: its GenAI keys map to the same model."""
    import anthropic

    face = autologged("anthropic", instrumentor="openllmetry")
    from mlflow_otel.integrations.anthropic import INTEGRATION

    assert INTEGRATION.active.distribution == "opentelemetry-instrumentation-anthropic"
    client = anthropic.Anthropic(base_url=fake.base_url, api_key="test", max_retries=0)
    client.messages.create(model="claude-test", max_tokens=64, system="Be brief.", messages=MESSAGES)
    (span,) = otlp_http(1)
    assert span.scope == "opentelemetry.instrumentation.anthropic"
    assert span.attributes["mlflow.spanType"] == "CHAT_MODEL"
    inputs = attr(span, "mlflow.spanInputs")
    assert inputs[0]["role"] == "system" and inputs[-1]["parts"][0]["content"] == "what is otel"
    assert attr(span, "mlflow.spanOutputs")[0]["parts"][0]["content"] == "Echo: what is otel"
    assert usage(span)["input_tokens"] == 11  # OpenLLMetry also counts cache reads as input
    assert usage(span)["output_tokens"] == 4
    assert span.attributes["mlflow.llm.provider"] == "anthropic"
    # GenAI messages travel once (in MLflow's keys) unless OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT.
    assert "gen_ai.input.messages" not in span.attributes
    assert span.attributes["gen_ai.operation.name"] == "chat"
    face.autolog(disable=True)


# --- OpenAI-compatible providers --------------------------------------------------------------------------


def test_groq_chat_completion(openai_fake, otlp_http, autologged):
    import groq

    autologged("groq")
    client = groq.Groq(base_url=openai_fake.base_url[: -len("/v1")], api_key="test", max_retries=0)
    reply = client.chat.completions.create(model="llama-test", messages=MESSAGES)
    assert reply.choices[0].message.content == "Echo: what is otel"
    (span,) = otlp_http(1)
    check_tree([span])
    assert span.attributes["mlflow.spanType"] == "CHAT_MODEL"
    assert attr(span, "mlflow.spanInputs")["messages"] == MESSAGES
    assert attr(span, "mlflow.spanOutputs")["choices"][0]["message"]["content"] == "Echo: what is otel"
    assert usage(span) == {
        "input_tokens": 8,
        "output_tokens": 4,
        "total_tokens": 12,
        "cache_read_input_tokens": 2,
    }
    assert span.attributes["mlflow.llm.provider"] == "groq"
    assert span.attributes["mlflow.message.format"] == "groq"
    _no_openinference_content(span)


def test_mistral_chat_complete(openai_fake, otlp_http, autologged):
    from mistralai.client import Mistral

    autologged("mistral")
    client = Mistral(api_key="test", server_url=openai_fake.base_url[: -len("/v1")])
    reply = client.chat.complete(model="mistral-test", messages=MESSAGES)
    assert reply.choices[0].message.content == "Echo: what is otel"
    (span,) = otlp_http(1)
    check_tree([span])
    assert span.attributes["mlflow.spanType"] == "CHAT_MODEL"
    assert attr(span, "mlflow.spanInputs")["messages"] == MESSAGES
    assert attr(span, "mlflow.spanOutputs")["choices"][0]["message"]["content"] == "Echo: what is otel"
    assert usage(span) == {"input_tokens": 8, "output_tokens": 4, "total_tokens": 12}
    assert span.attributes["mlflow.llm.model"] == "mistral-test-2024-08-06"
    assert span.attributes["mlflow.message.format"] == "mistral"


def test_litellm_completion(openai_fake, otlp_http, autologged):
    import litellm

    autologged("litellm")
    reply = litellm.completion(
        model="openai/gpt-test", api_base=openai_fake.base_url, api_key="test", messages=MESSAGES
    )
    assert reply.choices[0].message.content == "Echo: what is otel"
    spans = otlp_http(1)
    check_tree(spans)
    (span,) = spans
    assert span.attributes["mlflow.spanType"] == "CHAT_MODEL"
    assert attr(span, "mlflow.spanInputs")["messages"] == MESSAGES
    assert "Echo: what is otel" in str(attr(span, "mlflow.spanOutputs"))
    assert usage(span)["total_tokens"] == 12
    assert span.attributes["mlflow.message.format"] == "openai"


# --- Gemini ----------------------------------------------------------------------------------------------


def _gemini(fake):
    from google import genai

    return genai.Client(api_key="test", http_options=genai.types.HttpOptions(base_url=fake.base_url))


def test_gemini_generate_content_openinference(fake, otlp_http, autologged):
    autologged("gemini")
    client = _gemini(fake)  # kept: the client closes its connection pool when collected
    reply = client.models.generate_content(model="gemini-test", contents="what is otel")
    assert reply.text == "Echo: what is otel"
    (span,) = otlp_http(1)
    check_tree([span])
    assert span.scope == "openinference.instrumentation.google_genai"
    assert span.attributes["mlflow.spanType"] == "CHAT_MODEL"
    assert attr(span, "mlflow.spanInputs")["contents"][0]["parts"][0]["text"] == "what is otel"
    assert usage(span) == {"input_tokens": 8, "output_tokens": 4, "total_tokens": 12}
    assert span.attributes["mlflow.llm.model"] == "gemini-test-001"
    assert span.attributes["mlflow.message.format"] == "gemini"


def test_gemini_through_the_otel_genai_instrumentation_captures_content(fake, otlp_http, autologged):
    """The OpenTelemetry GenAI instrumentation keeps messages off its span unless an environment
    variable says otherwise; our completion hook brings them onto the span, and the normalization
    processor maps them, so MLflow shows inputs and outputs without that variable."""
    assert "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT" not in os.environ
    autologged("gemini", instrumentor="gen_ai")
    client = _gemini(fake)
    client.models.generate_content(model="gemini-test", contents="what is otel")
    (span,) = otlp_http(1)
    assert span.scope == "opentelemetry.instrumentation.google_genai"
    assert span.attributes["mlflow.spanType"] == "CHAT_MODEL"
    assert attr(span, "mlflow.spanInputs")[0]["parts"][0]["content"] == "what is otel"
    assert attr(span, "mlflow.spanOutputs")[0]["parts"][0]["content"] == "Echo: what is otel"
    assert usage(span) == {"input_tokens": 8, "output_tokens": 4, "total_tokens": 12}
    assert span.attributes["mlflow.llm.provider"] == "gemini"
    assert "gen_ai.input.messages" not in span.attributes


def test_gemini_genai_messages_kept_when_asked(fake, otlp_http, autologged, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    from mlflow_otel import tracing

    tracing.reset()
    autologged("gemini", instrumentor="gen_ai")
    client = _gemini(fake)
    client.models.generate_content(model="gemini-test", contents="what is otel")
    (span,) = otlp_http(1)
    assert "what is otel" in span.attributes["gen_ai.input.messages"]
    assert attr(span, "mlflow.spanOutputs")[0]["parts"][0]["content"] == "Echo: what is otel"


# --- Bedrock ---------------------------------------------------------------------------------------------


def test_bedrock_converse(fake, otlp_http, autologged):
    import boto3

    autologged("bedrock")
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=fake.base_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    messages = [{"role": "user", "content": [{"text": "what is otel"}]}]
    reply = client.converse(modelId="anthropic.claude-test", messages=messages)
    assert reply["output"]["message"]["content"][0]["text"] == "Echo: what is otel"
    (span,) = otlp_http(1)
    check_tree([span])
    assert span.attributes["mlflow.spanType"] == "CHAT_MODEL"
    assert attr(span, "mlflow.spanInputs") == messages
    assert attr(span, "mlflow.spanOutputs")["content"][0]["text"] == "Echo: what is otel"
    assert usage(span) == {"input_tokens": 8, "output_tokens": 4, "total_tokens": 12}
    assert span.attributes["mlflow.llm.model"] == "anthropic.claude-test"
    assert span.attributes["mlflow.message.format"] == "bedrock"
