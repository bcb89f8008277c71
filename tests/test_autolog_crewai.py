"""CrewAI autologged (``mlflow_otel.crewai.autolog()``, OpenInference's instrumentor) in the venv
``tests/backends/install.sh`` makes for it: CrewAI 1.15 pins openai 2.x and mcp 1.x, which the
project's test extra cannot share. A one-agent crew runs against a loopback fake of the OpenAI API
(``tests/provider_fakes.py``) and sends its trace to Jaeger v2: the crew, agent and model-call spans
in one tree, typed, with inputs, outputs and the model call's token usage counted once."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends import CREWAI_VENV, wait_until
from tests.conftest import ROOT
from tests.provider_fakes import ProviderFake

pytestmark = pytest.mark.backend

CREW_APP = """
import json, os, sys
import mlflow_otel as mlflow

mlflow.crewai.autolog()
mlflow.openai.autolog()  # CrewAI's native OpenAI provider: the model calls (README, crewai)
from crewai import LLM, Agent, Crew, Task

llm = LLM(model="openai/gpt-test", base_url=sys.argv[1] + "/v1", api_key="test")
agent = Agent(role="Researcher", goal="Answer questions about tracing", backstory="You know OpenTelemetry.",
              llm=llm)
task = Task(description="What is OpenTelemetry?", expected_output="One sentence.", agent=agent)
result = Crew(agents=[agent], tasks=[task]).kickoff()
print(json.dumps({"answer": result.raw, "flushed": mlflow.flush_trace_async_logging(timeout_s=30),
                  "stats": mlflow.tracing.stats()}))
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[ProviderFake]:
    with ProviderFake() as server:
        yield server


def test_a_crewai_crew_in_jaeger(jaeger, fake, tmp_path: Path):
    python = CREWAI_VENV / "bin" / "python"
    if not python.exists():
        pytest.skip(f"{python} missing: run tests/backends/install.sh")
    service = f"crew-{uuid.uuid4().hex[:8]}"
    fake.answers.append("Thought: I now can give a great answer\nFinal Answer: OpenTelemetry is a standard.")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        OTEL_SERVICE_NAME=service,
        OTEL_EXPORTER_OTLP_ENDPOINT=jaeger.otlp_http,
        OTEL_BSP_SCHEDULE_DELAY="100",
        CREWAI_DISABLE_TELEMETRY="true",
        CREWAI_TRACING_ENABLED="false",
        MLFLOW_OTEL_TRACES_FILE=str(tmp_path / "traces.jsonl"),
    )
    result = subprocess.run(
        [str(python), "-c", CREW_APP, fake.base_url], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["answer"] == "OpenTelemetry is a standard." and report["flushed"]
    assert report["stats"]["spans_delivered"] == report["stats"]["spans_started"] == 3, report

    spans = wait_until(lambda: (s := jaeger.spans(service)) and len(s) >= 3 and s, 30, "the crew's spans")
    (trace,) = jaeger.traces(service)
    by_id = {s["spanID"]: s for s in spans}
    (root,) = [s for s in spans if not s.get("references")]
    assert root["operationName"].endswith(".kickoff") and root["tagmap"]["mlflow.spanType"] == "CHAIN"
    assert "OpenTelemetry is a standard." in root["tagmap"]["mlflow.spanOutputs"]
    (agent,) = [s for s in spans if s["tagmap"]["mlflow.spanType"] == "AGENT"]
    assert agent["references"][0]["spanID"] == root["spanID"]
    assert json.loads(agent["tagmap"]["mlflow.spanInputs"])["agent"]["role"] == "Researcher"
    assert "OpenTelemetry is a standard." in agent["tagmap"]["mlflow.spanOutputs"]
    (model,) = [s for s in spans if s["tagmap"]["mlflow.spanType"] in ("CHAT_MODEL", "LLM")]
    assert by_id[model["references"][0]["spanID"]] is agent  # the model call inside the agent's step
    usage = json.loads(model["tagmap"]["mlflow.chat.tokenUsage"])
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    assert [s for s in spans if "mlflow.chat.tokenUsage" in s["tagmap"]] == [model]  # counted once
    assert len(trace["spans"]) == 3
