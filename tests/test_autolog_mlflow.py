"""Autologged libraries on a real MLflow server (``mlflow_server``: MLflow 3.18 from
``tests/backends/install.sh``), read back with MLflow's own client: span types (filterable with
``span.type``), inputs and outputs, the trace's token usage counted once, request and response
previews. Anthropic (a provider client), LangChain over Anthropic (a framework span demoted above
the provider span), DSPy over LiteLLM (a module tree with the provider call at the bottom)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import mlflow_otel as mlflow
from tests.autolog_checks import autologged_fixture, claude_chat  # noqa: F401 (fixture)
from tests.backends import wait_until
from tests.provider_fakes import ProviderFake

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

pytestmark = pytest.mark.backend

#: Runs in MLflow's virtualenv: the traces of an experiment as MLflow's client returns them.
READER = """
import json, sys, warnings
warnings.filterwarnings("ignore")
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
client = mlflow.MlflowClient()
exp = client.get_experiment_by_name(sys.argv[2])
traces = [] if exp is None else client.search_traces(
    experiment_ids=[exp.experiment_id], filter_string=sys.argv[3] or None, max_results=100)
print(json.dumps([{
    "trace_id": t.info.trace_id,
    "request_preview": t.info.request_preview,
    "response_preview": t.info.response_preview,
    "token_usage": t.info.token_usage,
    "tags": dict(t.info.tags),
    "metadata": dict(t.info.trace_metadata),
    "spans": [{"name": s.name, "span_id": s.span_id, "parent_id": s.parent_id, "span_type": s.span_type,
               "inputs": s.inputs, "outputs": s.outputs,
               "usage": s.get_attribute("mlflow.chat.tokenUsage")} for s in t.data.spans],
} for t in traces], default=str))
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[ProviderFake]:
    with ProviderFake() as server:
        yield server


def read(server: Any, experiment: str, filter_string: str = "") -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    result = subprocess.run(
        [str(server.venv / "bin" / "python"), "-c", READER, server.uri, experiment, filter_string],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def wait_for(server: Any, experiment: str, count: int) -> list[dict[str, Any]]:
    def enough() -> Any:
        traces = read(server, experiment)
        return traces if len(traces) >= count and all(t["spans"] for t in traces) else None

    return wait_until(enough, 60, f"{count} traces in MLflow", interval=1.0)


def test_autologged_libraries_on_an_mlflow_server(mlflow_server, fake, autologged):
    import anthropic
    import dspy

    experiment = f"autolog-{uuid.uuid4().hex[:8]}"
    mlflow.set_tracking_uri(mlflow_server.uri)
    mlflow.set_experiment(experiment)
    for name in ("anthropic", "langchain", "dspy", "litellm"):
        autologged(name)
    client = anthropic.Anthropic(base_url=fake.base_url, api_key="test", max_retries=0)

    # 1. A provider client on its own.
    client.messages.create(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "what is otel"}]
    )

    # 2. LangChain over the same client (the LangChain span is demoted: tokens count once).

    with mlflow.tracing.context(session_id="s-42", tags={"app": "lc"}):
        claude_chat(client).invoke("hello langchain")

    # 3. DSPy over LiteLLM.
    fake.answers.append("[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]")
    lm = dspy.LM(
        "openai/gpt-test", api_base=fake.base_url + "/v1", api_key="test", cache=False, engine="litellm"
    )
    with dspy.context(lm=lm):
        assert dspy.Predict("question -> answer")(question="2+2?").answer == "4"
    assert mlflow.flush_trace_async_logging(timeout_s=30)

    traces = wait_for(mlflow_server, experiment, 3)
    by_root = {next(s["name"] for s in t["spans"] if s["parent_id"] is None): t for t in traces}
    assert set(by_root) == {"messages.create", "ClaudeChat", "Predict.forward"}

    provider = by_root["messages.create"]
    (span,) = provider["spans"]
    assert span["span_type"] == "CHAT_MODEL"
    assert span["inputs"]["messages"] == [{"role": "user", "content": "what is otel"}]
    assert span["outputs"]["content"][0]["text"] == "Echo: what is otel"
    assert provider["token_usage"]["total_tokens"] == 15, provider
    assert provider["request_preview"] == "what is otel"

    chain = by_root["ClaudeChat"]
    types = {s["name"]: s["span_type"] for s in chain["spans"]}
    assert types == {"ClaudeChat": "CHAIN", "messages.create": "CHAT_MODEL"}
    assert chain["token_usage"]["total_tokens"] == 13  # counted once, not 26
    assert chain["tags"]["app"] == "lc" and chain["metadata"]["mlflow.trace.session"] == "s-42"
    assert "hello langchain" in chain["request_preview"]
    assert "Echo: hello langchain" in chain["response_preview"]

    program = by_root["Predict.forward"]
    types = {s["name"]: s["span_type"] for s in program["spans"]}
    assert types["Predict.forward"] == "CHAIN" and types["completion"] == "CHAT_MODEL"
    assert types["LM.__call__"] == "CHAT_MODEL"
    root = next(s for s in program["spans"] if s["parent_id"] is None)
    assert root["inputs"] == {"question": "2+2?"} and root["outputs"] == {"answer": "4"}
    assert program["request_preview"] == '{"question": "2+2?"}' or "2+2?" in program["request_preview"]
    assert program["token_usage"]["output_tokens"] == 11

    chat_traces = read(mlflow_server, experiment, "span.type = 'CHAT_MODEL'")
    assert {t["trace_id"] for t in chat_traces} == {t["trace_id"] for t in traces}
    chain_traces = read(mlflow_server, experiment, "span.type = 'CHAIN'")
    assert {t["trace_id"] for t in chain_traces} == {chain["trace_id"], program["trace_id"]}
