"""Autologged libraries where users look besides MLflow: Jaeger v2 (its query API, what its UI
shows) and the CLI view (``mlflow-otel show``) of the local file. Anthropic on its own, LangChain
over Anthropic, a LlamaIndex query engine (its mock LLM and embeddings) and DSPy over LiteLLM, each
against a loopback fake of the provider's API, sent to both destinations at once: typed spans,
inputs, outputs and token usage counted once, in each view (``test_autolog_mlflow.py`` reads the
same kind of traces back from an MLflow server)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mlflow_otel as mlflow
from mlflow_otel import cli, tracing
from mlflow_otel.destinations import FileDestination, OtlpDestination
from tests.autolog_checks import autologged_fixture, claude_chat  # noqa: F401 (fixture)
from tests.backends import wait_until
from tests.provider_fakes import ProviderFake

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def fake() -> Iterator[ProviderFake]:
    with ProviderFake() as server:
        yield server


def _run_four_libraries(fake: ProviderFake, autologged: Any) -> None:
    import anthropic
    import dspy
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    for name in ("anthropic", "langchain", "llama_index", "dspy", "litellm"):
        autologged(name)
    client = anthropic.Anthropic(base_url=fake.base_url, api_key="test", max_retries=0)
    client.messages.create(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "what is otel"}]
    )

    claude_chat(client).invoke("hello langchain")

    index = VectorStoreIndex.from_documents(
        [Document(text="OpenTelemetry is a standard for traces.")], embed_model=MockEmbedding(embed_dim=8)
    )
    assert (
        str(index.as_query_engine(llm=MockLLM(max_tokens=4)).query("what is a trace"))
        == "text text text text"
    )

    fake.answers.append("[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]")
    lm = dspy.LM(
        "openai/gpt-test", api_base=fake.base_url + "/v1", api_key="test", cache=False, engine="litellm"
    )
    with dspy.context(lm=lm):
        assert dspy.Predict("question -> answer")(question="2+2?").answer == "4"


def test_autologged_libraries_in_jaeger_and_the_cli_view(
    jaeger, fake, autologged, monkeypatch, tmp_path, capsys
):
    service = f"autolog-{uuid.uuid4().hex[:8]}"
    traces_file = tmp_path / "traces.jsonl"
    monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    tracing.reset()
    tracing.set_destination(
        [OtlpDestination(jaeger.otlp_http + "/v1/traces"), FileDestination(str(traces_file))]
    )
    try:
        _run_four_libraries(fake, autologged)
        assert mlflow.flush_trace_async_logging(timeout_s=30)
    finally:
        tracing.set_destination(None)

    # --- Jaeger: one trace per library call, typed spans with inputs, outputs and usage --------
    def roots() -> dict[str, list[dict[str, Any]]]:
        by_root: dict[str, list[dict[str, Any]]] = {}
        for trace in jaeger.traces(service):
            spans = trace["spans"]
            for span in spans:
                span["tagmap"] = {t["key"]: t["value"] for t in span.get("tags", [])}
            (root,) = [s for s in spans if not s.get("references")]
            by_root[root["operationName"]] = spans
        return by_root

    expected = {"messages.create", "ClaudeChat", "RetrieverQueryEngine.query", "Predict.forward"}
    wait_until(lambda: expected <= set(roots()), 60, "the four libraries' traces in Jaeger", interval=0.5)
    by_root = roots()
    llama_root = "RetrieverQueryEngine.query"
    for name, spans in by_root.items():
        assert all("mlflow.spanType" in s["tagmap"] for s in spans), name  # every span typed
        with_usage = [s for s in spans if "mlflow.chat.tokenUsage" in s["tagmap"]]
        assert len(with_usage) <= 1 or name.endswith("query"), (
            name,
            [s["operationName"] for s in with_usage],
        )

    (provider,) = by_root["messages.create"]
    tags = provider["tagmap"]
    assert tags["mlflow.spanType"] == "CHAT_MODEL"
    assert json.loads(tags["mlflow.spanInputs"])["messages"] == [{"role": "user", "content": "what is otel"}]
    assert json.loads(tags["mlflow.spanOutputs"])["content"][0]["text"] == "Echo: what is otel"
    assert json.loads(tags["mlflow.chat.tokenUsage"])["total_tokens"] == 15

    chain = {s["operationName"]: s["tagmap"] for s in by_root["ClaudeChat"]}
    assert chain["ClaudeChat"]["mlflow.spanType"] == "CHAIN"  # demoted: its usage is the provider's
    assert "mlflow.chat.tokenUsage" not in chain["ClaudeChat"]
    assert json.loads(chain["messages.create"]["mlflow.chat.tokenUsage"])["total_tokens"] == 13
    assert "hello langchain" in chain["ClaudeChat"]["mlflow.spanInputs"]

    llama = {s["operationName"]: s["tagmap"] for s in by_root[llama_root]}
    types = {t["mlflow.spanType"] for t in llama.values()}
    assert {"CHAIN", "RETRIEVER", "EMBEDDING"} <= types and types & {"LLM", "CHAT_MODEL"}
    assert "text text text text" in llama[llama_root]["mlflow.spanOutputs"]

    program = {s["operationName"]: s["tagmap"] for s in by_root["Predict.forward"]}
    assert program["Predict.forward"]["mlflow.spanType"] == "CHAIN"
    assert json.loads(program["Predict.forward"]["mlflow.spanInputs"]) == {"question": "2+2?"}
    assert json.loads(program["completion"]["mlflow.chat.tokenUsage"])["output_tokens"] == 11

    # --- the CLI view of the same traces (the local file destination) ------------------------------
    capsys.readouterr()
    assert cli.main(["show", "--file", str(traces_file), "--last", "0", "-v"]) == 0
    shown = capsys.readouterr().out
    for name, span_type in (
        ("messages.create", "CHAT_MODEL"),
        ("ClaudeChat", "CHAIN"),
        ("Predict.forward", "CHAIN"),
        ("VectorIndexRetriever.retrieve", "RETRIEVER"),
    ):
        assert any(name in line and span_type in line for line in shown.splitlines()), (name, shown)
    assert "what is otel" in shown and "Echo: what is otel" in shown and "2+2?" in shown
    assert "15 tokens (11 in, 4 out)" in shown, shown  # the provider call, and its trace's total
    langchain = next(block for block in shown.split("\n\n") if "ClaudeChat" in block)
    assert langchain.count("13 tokens") == 2, langchain  # on the provider span and the header: once
    assert Path(traces_file).stat().st_size > 0
