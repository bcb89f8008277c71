"""``mlflow_otel.<framework>.autolog()`` for agent and chain frameworks: LangChain and LangGraph,
LlamaIndex, DSPy (with LiteLLM), the OpenAI Agents SDK. Real packages from the package index; models
are each library's own fake (langchain-core's ``GenericFakeChatModel``, LlamaIndex's ``MockLLM`` and
``MockEmbedding``, DSPy's ``DummyLM``) or a real client against a loopback fake, spans read from the
OTLP wire.

Beside span trees, types, inputs, outputs and tokens, these check that tokens count once when a
framework's model span wraps a provider call that reports usage too (a LangChain chat model over
Anthropic, a LlamaIndex LLM over our OpenAI integration, DSPy's LM over LiteLLM): the framework span
is demoted to CHAIN without usage of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

import mlflow_otel as mlflow
from tests.autolog_checks import (  # noqa: F401 (fixture)
    attr,
    autologged_fixture,
    check_tree,
    claude_chat,
    total_tokens,
    typed,
    usage,
)
from tests.openai_server import OpenAiServer
from tests.provider_fakes import ProviderFake

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="module")
def fake() -> Iterator[ProviderFake]:
    with ProviderFake() as server:
        yield server


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[OpenAiServer]:
    with OpenAiServer() as server:
        yield server


def _by_name(spans):
    return {s.name: s for s in spans}


# --- LangChain / LangGraph ---------------------------------------------------------------------------------


def _fake_chat_model(*answers: str) -> Any:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    usage_metadata = {"input_tokens": 11, "output_tokens": 2, "total_tokens": 13}
    return GenericFakeChatModel(
        messages=iter([AIMessage(content=a, usage_metadata=usage_metadata) for a in answers])
    )


def test_langchain_chain(otlp_http, autologged):
    from langchain_core.prompts import ChatPromptTemplate

    autologged("langchain")
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "capital of {country}?")])
    chain = prompt | _fake_chat_model("Paris")
    assert chain.invoke({"country": "France"}).content == "Paris"

    spans = otlp_http(3)
    check_tree(spans)
    assert typed(spans) == {
        "RunnableSequence": "CHAIN",
        "ChatPromptTemplate": "CHAIN",
        "GenericFakeChatModel": "CHAT_MODEL",
    }
    by = _by_name(spans)
    root = by["RunnableSequence"]
    # OpenInference records a one-value input as its text.
    assert root.parent_id is None and attr(root, "mlflow.spanInputs") == "France"
    assert attr(root, "mlflow.spanOutputs")["data"]["content"] == "Paris"
    model = by["GenericFakeChatModel"]
    assert "capital of France?" in str(attr(model, "mlflow.spanInputs"))
    assert "Paris" in str(attr(model, "mlflow.spanOutputs"))
    assert usage(model) == {"input_tokens": 11, "output_tokens": 2, "total_tokens": 13}
    assert {s.parent_id for s in spans if s is not root} == {root.span_id}


def test_langchain_chat_model_over_anthropic_counts_tokens_once(fake, otlp_http, autologged):
    """A LangChain chat model that calls the Anthropic client: both instrumentors report usage; the
    LangChain span is demoted so the trace's total is the provider's alone."""
    import anthropic

    client = anthropic.Anthropic(base_url=fake.base_url, api_key="test", max_retries=0)
    autologged("anthropic")
    autologged("langchain")
    assert claude_chat(client).invoke("what is otel").content == "Echo: what is otel"

    spans = otlp_http(2)
    check_tree(spans)
    by = _by_name(spans)
    framework, provider = by["ClaudeChat"], by["messages.create"]
    assert provider.parent_id == framework.span_id
    assert provider.attributes["mlflow.spanType"] == "CHAT_MODEL"
    assert usage(provider)["total_tokens"] == 15
    assert framework.attributes["mlflow.spanType"] == "CHAIN"
    assert framework.attributes["mlflow_otel.demoted_from"] == "CHAT_MODEL"
    assert usage(framework) is None
    assert not [k for k in framework.attributes if k.startswith("llm.token_count.")]
    assert total_tokens(spans) == 15


def test_langgraph_graph(otlp_http, autologged):
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    model = _fake_chat_model("Paris")

    class State(TypedDict):
        question: str
        answer: str

    def ask(state: State) -> dict[str, str]:
        return {"answer": model.invoke(state["question"]).content}

    graph = StateGraph(State)
    graph.add_node("ask", ask)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", END)
    app = graph.compile()

    autologged("langchain")
    assert app.invoke({"question": "capital of France?"})["answer"] == "Paris"
    spans = otlp_http(3)
    check_tree(spans)
    types = typed(spans)
    assert types["LangGraph"] == "CHAIN" and types["ask"] == "CHAIN"
    assert types["GenericFakeChatModel"] == "CHAT_MODEL"
    by = _by_name(spans)
    assert by["LangGraph"].parent_id is None
    assert attr(by["LangGraph"], "mlflow.spanInputs") == "capital of France?"
    assert attr(by["LangGraph"], "mlflow.spanOutputs")["answer"] == "Paris"
    assert usage(by["GenericFakeChatModel"])["total_tokens"] == 13


# --- LlamaIndex ---------------------------------------------------------------------------------------------


def test_llama_index_query_engine(otlp_http, autologged):
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    index = VectorStoreIndex.from_documents(
        [Document(text="OpenTelemetry is a standard for traces.")], embed_model=MockEmbedding(embed_dim=8)
    )
    engine = index.as_query_engine(llm=MockLLM(max_tokens=4))
    autologged("llama_index")
    answer = engine.query("what is otel")
    assert str(answer) == "text text text text"

    assert mlflow.flush_trace_async_logging()
    spans = otlp_http(5)
    check_tree(spans)
    types = set(typed(spans).values())
    assert {"CHAIN", "RETRIEVER", "EMBEDDING"} <= types and types & {"LLM", "CHAT_MODEL"}
    root = next(s for s in spans if s.parent_id is None)
    assert root.name.endswith("query") and attr(root, "mlflow.spanInputs") is not None
    assert "text text text text" in str(attr(root, "mlflow.spanOutputs"))
    retriever = _by_name(spans)["VectorIndexRetriever.retrieve"]
    assert retriever.attributes["mlflow.spanType"] == "RETRIEVER"
    (document,) = attr(retriever, "mlflow.spanOutputs")  # MLflow's Document shape
    assert document["page_content"] == "OpenTelemetry is a standard for traces."
    assert document["metadata"]["score"] > 0.9 and document["id"]


def test_llama_index_llm_over_our_openai_integration_counts_tokens_once(openai_fake, otlp_http, autologged):
    """A LlamaIndex LLM that calls the OpenAI client traced by our own integration, all inside a
    function of ours: one trace, our OpenAI span keeps the usage, LlamaIndex's span is demoted."""
    import openai
    from llama_index.core.base.llms.types import (
        ChatMessage,
        ChatResponse,
        CompletionResponse,
        LLMMetadata,
    )
    from llama_index.core.llms import CustomLLM
    from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback

    client = openai.OpenAI(base_url=openai_fake.base_url, api_key="test", max_retries=0)

    class CompatLLM(CustomLLM):
        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name="gpt-test", is_chat_model=True)

        @llm_chat_callback()
        def chat(self, messages, **kwargs):
            reply = client.chat.completions.create(
                model="gpt-test", messages=[{"role": m.role.value, "content": m.content} for m in messages]
            )
            return ChatResponse(
                message=ChatMessage(role="assistant", content=reply.choices[0].message.content),
                raw=reply.model_dump(),
            )

        @llm_completion_callback()
        def complete(self, prompt, formatted=False, **kwargs):
            return CompletionResponse(text=prompt)

        @llm_completion_callback()
        def stream_complete(self, prompt, formatted=False, **kwargs):
            yield CompletionResponse(text=prompt)

    mlflow.openai.autolog()
    autologged("llama_index")
    try:

        @mlflow.trace
        def handler(question: str) -> str:
            return CompatLLM().chat([ChatMessage(role="user", content=question)]).message.content

        assert handler("what is otel") == "Echo: what is otel"
        spans = otlp_http(3)
    finally:
        mlflow.openai.autolog(disable=True)
    check_tree(spans)
    by = _by_name(spans)
    ours, framework = by["Completions"], by["CompatLLM.chat"]
    assert by["handler"].parent_id is None
    assert ours.parent_id == framework.span_id and framework.parent_id == by["handler"].span_id
    assert usage(ours)["total_tokens"] == 12
    assert framework.attributes["mlflow.spanType"] == "CHAIN" and usage(framework) is None
    assert total_tokens(spans) == 12


# --- DSPy (+ LiteLLM) ---------------------------------------------------------------------------------------


def test_dspy_predict_with_dummy_lm(otlp_http, autologged):
    import dspy
    from dspy.utils.dummies import DummyLM

    autologged("dspy")
    with dspy.context(lm=DummyLM([{"answer": "4"}])):
        assert dspy.Predict("question -> answer")(question="2+2?").answer == "4"
    spans = otlp_http(4)
    check_tree(spans)
    types = typed(spans)
    assert types["Predict.forward"] == "CHAIN" and types["DummyLM.__call__"] == "CHAT_MODEL"
    by = _by_name(spans)
    assert attr(by["Predict.forward"], "mlflow.spanInputs") == {"question": "2+2?"}
    assert attr(by["Predict.forward"], "mlflow.spanOutputs") == {"answer": "4"}
    lm_inputs = attr(by["DummyLM.__call__"], "mlflow.spanInputs")
    assert lm_inputs["messages"][-1]["role"] == "user" and "2+2?" in lm_inputs["messages"][-1]["content"]


def test_dspy_over_litellm_counts_tokens_once(fake, otlp_http, autologged):
    import dspy

    autologged("dspy")
    autologged("litellm")
    fake.answers.append("[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]")
    lm = dspy.LM(
        "openai/gpt-test", api_base=fake.base_url + "/v1", api_key="test", cache=False, engine="litellm"
    )
    with dspy.context(lm=lm):
        assert dspy.Predict("question -> answer")(question="2+2?").answer == "4"
    spans = otlp_http(5)
    check_tree(spans)
    by = _by_name(spans)
    provider = by["completion"]
    assert provider.attributes["mlflow.spanType"] == "CHAT_MODEL"
    assert provider.parent_id == by["LM.__call__"].span_id
    assert usage(provider)["output_tokens"] == 11 and usage(by["LM.__call__"]) is None
    assert total_tokens(spans) == usage(provider)["total_tokens"]


# --- OpenAI Agents SDK ----------------------------------------------------------------------------------------


def test_openai_agents_run(openai_fake, otlp_http, autologged):
    import agents
    from openai import AsyncOpenAI

    agents.set_trace_processors([])  # no export to OpenAI's dashboard from a test
    autologged("openai_agents")
    model = agents.OpenAIChatCompletionsModel(
        model="gpt-test", openai_client=AsyncOpenAI(base_url=openai_fake.base_url, api_key="test")
    )
    agent = agents.Agent(name="helper", instructions="Be brief.", model=model)
    assert agents.Runner.run_sync(agent, "what is otel").final_output == "Echo: what is otel"
    spans = otlp_http(5)
    check_tree(spans)
    types = typed(spans)
    assert types["helper"] == "AGENT"
    generation = next(s for s in spans if s.attributes["mlflow.spanType"] == "CHAT_MODEL")
    assert attr(generation, "mlflow.spanInputs")[-1]["content"] == "what is otel"
    assert "Echo: what is otel" in str(attr(generation, "mlflow.spanOutputs"))
    assert usage(generation) == {"input_tokens": 8, "output_tokens": 4, "total_tokens": 12}
    assert total_tokens(spans) == 12
