"""Arize Phoenix (a real ``phoenix serve``, tests/backends.Phoenix) on a RAG-style app traced with this
SDK: what Phoenix stored, read back through its GraphQL API (the one its UI reads), and its trace
page in headless Chromium. Every MLflow span type must arrive with an OpenInference kind (no
``unknown``), inputs and outputs with the right mime type (text not quoted), the retriever's
documents counted, tokens, metadata and tags, the session and user, and the error."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel.destinations import OtlpDestination
from mlflow_otel.entities import SpanType
from tests.backends import PHOENIX_VENV
from tests.backends.browser import chromium
from tests.openai_server import OpenAiServer

pytestmark = pytest.mark.backend

#: Every MLflow span type beside the app's own (AGENT, RETRIEVER, TOOL, CHAT_MODEL, the root's UNKNOWN),
#: and the OpenInference kind Phoenix must show for it.
OTHER_TYPES = {
    SpanType.CHAIN: "chain",
    SpanType.PARSER: "chain",
    SpanType.MEMORY: "chain",
    SpanType.WORKFLOW: "chain",
    SpanType.TASK: "chain",
    SpanType.LLM: "llm",
    SpanType.EMBEDDING: "embedding",
    SpanType.RERANKER: "reranker",
    SpanType.GUARDRAIL: "guardrail",
    SpanType.EVALUATOR: "evaluator",
}

SPANS_QUERY = """
{
  projects(first: 100) { edges { node { name
    spans(first: 100) { edges { node {
      name spanKind statusCode statusMessage parentId numDocuments metadata attributes
      tokenCountPrompt tokenCountCompletion tokenCountTotal
      input { value mimeType } output { value mimeType }
      events { name message }
      trace { traceId userId session { sessionId userId numTraces firstInput { value } } }
    } } }
  } } }
}
"""


def _rag_app(openai_base_url: str, other_types: bool = True):
    from openai import OpenAI

    client = OpenAI(base_url=openai_base_url, api_key="test")

    @mlflow.trace(span_type=SpanType.RETRIEVER)
    def search_docs(query: str) -> list[dict[str, Any]]:
        # MLflow's ``Document``s as a retriever returns them (``Document.to_dict()``).
        return [
            {"page_content": "Refunds are accepted within 30 days.", "metadata": {"score": 0.92, "source": "refunds.md"}, "id": "doc-1"},
            {"page_content": "Shipping takes 5 days.", "metadata": {"score": 0.41, "source": "shipping.md"}, "id": "doc-2"},
        ]  # fmt: skip

    @mlflow.trace(span_type=SpanType.TOOL)
    def lookup_order(order_id: int) -> dict[str, Any]:
        return {"order_id": order_id, "status": "delivered"}

    @mlflow.trace(span_type=SpanType.TOOL)
    def cancel_order(order_id: int) -> None:
        raise LookupError(f"order {order_id} cannot be cancelled")

    @mlflow.trace(span_type=SpanType.AGENT)
    def support_agent(question: str) -> str:
        docs = search_docs(question)
        lookup_order(42)
        try:
            cancel_order(42)
        except LookupError:
            pass
        for span_type in OTHER_TYPES if other_types else ():
            with mlflow.start_span(f"step_{span_type.lower()}", span_type=span_type) as span:
                span.set_inputs({"text": question})
                span.set_outputs("done")
        answer = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "Answer from the documents."},
                {"role": "user", "content": docs[0]["page_content"] + " " + question},
            ],
        )
        return answer.choices[0].message.content

    @mlflow.trace  # MLflow's default type (UNKNOWN): a plain root
    def answer(question: str) -> str:
        mlflow.update_current_trace(
            session_id="session-px-1",
            user="ann",
            tags={"environment": "production"},
            metadata={"app_version": "1.4"},
        )
        return support_agent(question)

    return answer


def _obj(value: Any) -> Any:
    """Phoenix stores JSON-string attributes decoded (``load_json_strings``); either way, the object."""
    return json.loads(value) if isinstance(value, str) else value


def _spans(
    phoenix, project: str, count: int, timeout: float = 60.0, query: str = SPANS_QUERY
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        data = phoenix.graphql(query)
        for edge in data["projects"]["edges"]:
            if edge["node"]["name"] == project:
                found = [e["node"] for e in edge["node"]["spans"]["edges"]]
        if len(found) >= count:
            break
        time.sleep(0.5)
    return {s["name"]: s for s in found}


def _run_app(monkeypatch, phoenix, project: str, other_types: bool = True) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"openinference.project.name={project}")
    with OpenAiServer() as server:
        mlflow.openai.autolog()
        try:
            app = _rag_app(server.base_url, other_types)
            assert "Refunds" in app("Can I return my order?")
        finally:
            mlflow.openai.autolog(disable=True)
    assert mlflow.flush_trace_async_logging()


EXPECTED_SPANS = 6 + len(OTHER_TYPES)  # answer, support_agent, search_docs, 2 tools, the model call


def _check_rendering(spans: dict[str, dict[str, Any]]) -> None:
    kinds = {name: s["spanKind"] for name, s in spans.items()}
    assert "unknown" not in kinds.values(), kinds
    assert kinds["answer"] == "chain" and kinds["support_agent"] == "agent"
    assert kinds["search_docs"] == "retriever" and kinds["lookup_order"] == "tool"
    for span_type, kind in OTHER_TYPES.items():
        assert kinds[f"step_{span_type.lower()}"] == kind, span_type
    model = next(s for s in spans.values() if s["spanKind"] == "llm" and s["name"] != "step_llm")

    # Inputs and outputs: text as text (not quoted JSON), structures as JSON.
    root = spans["answer"]
    assert root["input"] == {"value": "Can I return my order?", "mimeType": "text"}
    assert root["output"]["mimeType"] == "text" and "Refunds are accepted" in root["output"]["value"]
    assert spans["step_parser"]["output"] == {"value": "done", "mimeType": "text"}
    assert spans["lookup_order"]["input"] == {"value": "42", "mimeType": "text"} or json.loads(
        spans["lookup_order"]["input"]["value"]
    ) == {"order_id": 42}
    assert json.loads(spans["lookup_order"]["output"]["value"]) == {"order_id": 42, "status": "delivered"}
    assert spans["lookup_order"]["output"]["mimeType"] == "json"
    tool_attrs = json.loads(spans["lookup_order"]["attributes"])
    assert tool_attrs["tool"]["name"] == "lookup_order"
    assert _obj(tool_attrs["tool"]["parameters"])["properties"] == {"order_id": {"type": "integer"}}

    # Documents: counted, with content, id, score and metadata.
    retriever = spans["search_docs"]
    assert retriever["numDocuments"] == 2
    documents = json.loads(retriever["attributes"])["retrieval"]["documents"]
    first = documents[0]["document"]
    assert first["content"] == "Refunds are accepted within 30 days." and first["id"] == "doc-1"
    assert first["score"] == pytest.approx(0.92) and _obj(first["metadata"])["source"] == "refunds.md"

    # The model call: messages, tokens, the model that answered.
    attrs = json.loads(model["attributes"])
    assert attrs["llm"]["model_name"].startswith("gpt-4o-mini")
    messages = attrs["llm"]["input_messages"]
    assert [m["message"]["role"] for m in messages] == ["system", "user"]
    assert attrs["llm"]["output_messages"][0]["message"]["role"] == "assistant"
    assert model["tokenCountPrompt"] > 0 and model["tokenCountCompletion"] > 0
    assert model["tokenCountTotal"] == model["tokenCountPrompt"] + model["tokenCountCompletion"]

    # Trace level: metadata, tags, session and user.
    assert json.loads(root["metadata"]) == {"app_version": "1.4"}
    assert json.loads(root["attributes"])["tag"]["tags"] == ["environment:production"]
    trace = root["trace"]
    assert trace["userId"] == "ann"
    assert trace["session"]["sessionId"] == "session-px-1" and trace["session"]["userId"] == "ann"
    assert trace["session"]["firstInput"]["value"] == "Can I return my order?"

    # The error: status and the exception event.
    failed = spans["cancel_order"]
    assert failed["statusCode"] == "ERROR" and "cannot be cancelled" in failed["statusMessage"]
    assert any(e["name"] == "exception" and "cannot be cancelled" in e["message"] for e in failed["events"])
    assert all(s["statusCode"] != "ERROR" for n, s in spans.items() if n != "cancel_order")


def test_default_otlp_endpoint_renders_in_phoenix(phoenix, monkeypatch):
    """A user who only points the OTLP endpoint at Phoenix sees everything (the OTLP default
    conventions include OpenInference); Phoenix's project comes from the resource attribute."""
    project = f"rag-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix.uri)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    tracing.reset()
    _run_app(monkeypatch, phoenix, project)
    spans = _spans(phoenix, project, EXPECTED_SPANS)
    assert len(spans) == EXPECTED_SPANS, sorted(spans)
    _check_rendering(spans)
    # The default keeps MLflow's keys too (an MLflow server behind a collector reads them).
    assert "mlflow" in json.loads(spans["answer"]["attributes"])


def test_phoenix_destination_with_openinference_only_sends_content_once(phoenix, monkeypatch):
    """``OtlpDestination(semconv="openinference")``: the same rendering, over gRPC, and MLflow's
    content keys left out (each payload travels once)."""
    project = f"rag-once-{uuid.uuid4().hex[:8]}"
    tracing.reset()
    tracing.set_destination(OtlpDestination(phoenix.otlp_grpc, protocol="grpc", semconv="openinference"))
    _run_app(monkeypatch, phoenix, project)
    spans = _spans(phoenix, project, EXPECTED_SPANS)
    _check_rendering(spans)
    for span in spans.values():
        stored = json.loads(span["attributes"])
        assert "spanInputs" not in stored.get("mlflow", {}) and "spanOutputs" not in stored.get("mlflow", {})
    assert json.loads(spans["answer"]["attributes"])["mlflow"]["spanType"] == "UNKNOWN"


@pytest.fixture(scope="module")
def browser():
    yield from chromium("1600,1000", 60)


def test_phoenix_trace_page_in_chromium(phoenix, monkeypatch, browser, tmp_path):
    """Phoenix's own UI: the trace list shows the root's kind, input and output as text; the
    trace page shows every span and the retriever's documents."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    project = f"rag-ui-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix.uri)
    tracing.reset()
    _run_app(monkeypatch, phoenix, project)
    spans = _spans(phoenix, project, EXPECTED_SPANS)
    project_id = next(
        e["node"]["id"]
        for e in phoenix.graphql("{ projects { edges { node { id name } } } }")["projects"]["edges"]
        if e["node"]["name"] == project
    )
    trace_id = spans["answer"]["trace"]["traceId"]

    def text(d) -> str:
        return d.find_element(By.TAG_NAME, "body").text

    browser.get(f"{phoenix.uri}/projects/{project_id}/traces")
    WebDriverWait(browser, 60).until(lambda d: "Can I return my order?" in text(d), "the trace list")
    listing = text(browser)
    browser.save_screenshot(str(tmp_path / "phoenix-traces.png"))
    assert '"Can I return my order?"' not in listing  # text, not quoted JSON
    assert "unknown" not in listing.lower()

    browser.get(f"{phoenix.uri}/projects/{project_id}/traces/{trace_id}")
    WebDriverWait(browser, 60).until(lambda d: "search_docs" in text(d) and "cancel_order" in text(d))
    page = text(browser)
    for name in ("answer", "support_agent", "lookup_order", *(f"step_{t.lower()}" for t in OTHER_TYPES)):
        assert name in page, name
    browser.find_element(By.XPATH, "//*[normalize-space(text())='search_docs']").click()
    # The retriever's pane: its documents with id and score (not in any other span's pane).
    WebDriverWait(browser, 30).until(lambda d: "doc-1" in text(d) and "doc-2" in text(d), "the documents")
    assert "Shipping takes 5 days." in text(browser)
    browser.save_screenshot(str(tmp_path / "phoenix-retriever.png"))
    print(f"screenshots in {tmp_path}")


# --- side by side with the app traced Phoenix's own way (tests/phoenix_reference_app.py) -------------------

REFERENCE_APP = Path(__file__).with_name("phoenix_reference_app.py")
ROWS_QUERY = SPANS_QUERY.replace("name spanKind", "name context { spanId } spanKind")
#: The reference's spans, ``_rag_app`` without the extra types: the root, the agent, the retriever, two
#: tools, the model call.
REFERENCE_SPANS = 6
#: The model call's span is named by whoever instruments the client: OpenInference's instrumentor
#: ``ChatCompletion``, ours MLflow's ``Completions`` (``mlflow.openai.autolog``'s name). Compared as one row.
MODEL_ROW = "<the chat call>"


def _rows(spans: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The spans by name (the model call as ``MODEL_ROW``), each with its parent's name."""
    key = {s["context"]["spanId"]: MODEL_ROW if s["spanKind"] == "llm" else n for n, s in spans.items()}
    return {
        key[s["context"]["spanId"]]: dict(
            s, attributes=json.loads(s["attributes"]), parent=key.get(s["parentId"])
        )
        for s in spans.values()
    }


def _payload(value: dict[str, Any] | None) -> Any:
    """A payload as Phoenix shows it: text as the text, JSON as the structure (whitespace aside)."""
    if value is None:
        return None
    shown = json.loads(value["value"]) if value["mimeType"] == "json" else value["value"]
    return value["mimeType"], shown


def test_renders_row_for_row_like_the_phoenix_native_reference(phoenix, monkeypatch):
    """The reference (arize-phoenix-otel, openinference-instrumentation-openai, OpenInference's span
    and context helpers) into project A, our app of the same shape (``OtlpDestination(semconv=
    "openinference")``, project from ``openinference.project.name``) into project B; then, over
    Phoenix's GraphQL API, row for row. What differs by design is named where it is skipped."""
    reference, ours = f"native-{uuid.uuid4().hex[:8]}", f"ours-{uuid.uuid4().hex[:8]}"
    with OpenAiServer() as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLFLOW_", "PHOENIX_"))}
        command = [str(PHOENIX_VENV / "bin" / "python"), str(REFERENCE_APP), phoenix.otlp_http, reference]
        subprocess.run([*command, server.base_url], env=env, check=True, timeout=120)
    tracing.reset()
    tracing.set_destination(OtlpDestination(phoenix.otlp_http, semconv="openinference"))
    _run_app(monkeypatch, phoenix, ours, other_types=False)
    native = _rows(_spans(phoenix, reference, REFERENCE_SPANS, query=ROWS_QUERY))
    mine = _rows(_spans(phoenix, ours, REFERENCE_SPANS, query=ROWS_QUERY))

    assert sorted(mine) == sorted(native) and len(native) == REFERENCE_SPANS, (sorted(mine), sorted(native))
    for name, want in native.items():
        got = mine[name]
        at = f"{name}: ours {got} / native {want}"
        assert got["spanKind"] == want["spanKind"] and got["parent"] == want["parent"], at
        assert _payload(got["input"]) == _payload(want["input"]), at
        assert _payload(got["output"]) == _payload(want["output"]), at
        assert got["numDocuments"] == want["numDocuments"], at
        for count in ("tokenCountPrompt", "tokenCountCompletion", "tokenCountTotal"):
            assert got[count] == want[count], (count, at)
        # MLflow ends a span that raised nothing with OK; the reference's hand-made retriever span
        # leaves its status UNSET. An error is an error on both, with the same message and event.
        assert (got["statusCode"] == "ERROR") == (want["statusCode"] == "ERROR"), at
        assert got["statusMessage"] == want["statusMessage"], at
        assert got["events"] == want["events"], at
        mine_attrs, native_attrs = got["attributes"], want["attributes"]
        assert mine_attrs.get("retrieval") == native_attrs.get("retrieval"), at  # documents, field for field
        if "tool" in native_attrs:
            # OpenInference's @tracer.tool writes the function's JSON Schema (empty property schemas,
            # `required`); ours names each argument's JSON type (the function is not at hand off the
            # request path). Same name, title and parameters.
            mine_tool, native_tool = mine_attrs["tool"], native_attrs["tool"]
            assert mine_tool["name"] == native_tool["name"], at
            mine_params, native_params = _obj(mine_tool["parameters"]), _obj(native_tool["parameters"])
            assert mine_params["type"] == native_params["type"] == "object", at
            assert mine_params["title"] == native_params["title"], at
            assert sorted(mine_params["properties"]) == sorted(native_params["properties"]), at

    # The model call: messages, the model that answered, the request's parameters. `llm.system` /
    # `llm.provider` differ by design: ours names a base URL other than OpenAI's `openai_compatible`
    # (here the loopback fake), the instrumentor says `openai` for any base URL.
    mine_llm, native_llm = mine[MODEL_ROW]["attributes"]["llm"], native[MODEL_ROW]["attributes"]["llm"]
    for key in ("input_messages", "output_messages", "model_name", "token_count", "finish_reason"):
        assert mine_llm.get(key) == native_llm.get(key), key
    assert _obj(mine_llm["invocation_parameters"]) == _obj(native_llm["invocation_parameters"])

    # Trace level: the same session and user on the trace, and, as OpenInference's `using_session` /
    # `using_user` / `using_metadata` / `using_tags` stamp every span opened inside them, the trace's
    # metadata, tags, session and user on every span (ours from the root's, `update_current_trace`).
    root = next(n for n, r in native.items() if r["parent"] is None)
    assert mine[root]["parent"] is None
    for name, want in native.items():
        trace, want_trace = mine[name]["trace"], want["trace"]
        assert trace["userId"] == want_trace["userId"] == "ann", name
        assert trace["session"]["sessionId"] == want_trace["session"]["sessionId"] == "session-px-1", name
        assert trace["session"]["firstInput"] == want_trace["session"]["firstInput"], name
        assert _obj(want["metadata"]) == {"app_version": "1.4"}, name
        assert want["attributes"]["tag"]["tags"] == ["environment:production"], name
        assert _obj(mine[name]["metadata"]) == _obj(want["metadata"]), name
        for key in ("tag", "session", "user"):
            assert mine[name]["attributes"][key] == want["attributes"][key], (name, key)


def test_genai_retrieval_documents_are_read_by_phoenix(phoenix, monkeypatch):
    """GenAI's retrieval span content (``gen_ai.retrieval.documents`` / ``gen_ai.retrieval.query.text``,
    semantic conventions v1.40+, Opt-In: written with ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``)
    to a destination of the GenAI convention alone: Phoenix, which also reads GenAI, counts and shows
    the documents and the query as text."""
    project = f"rag-genai-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    tracing.reset()
    tracing.set_destination(OtlpDestination(phoenix.otlp_http, semconv="gen_ai"))
    _run_app(monkeypatch, phoenix, project, other_types=False)
    retriever = _spans(phoenix, project, REFERENCE_SPANS)["search_docs"]
    assert retriever["spanKind"] == "retriever" and retriever["numDocuments"] == 2
    assert retriever["input"] == {"value": "Can I return my order?", "mimeType": "text"}
    attrs = json.loads(retriever["attributes"])
    # Sent once: GenAI's documents, not MLflow's output (Phoenix derives its own keys from GenAI's).
    assert "spanOutputs" not in attrs["mlflow"]
    documents = _obj(attrs["gen_ai"]["retrieval"]["documents"])
    assert [(d["id"], d["score"], d["content"]) for d in documents] == [
        ("doc-1", 0.92, "Refunds are accepted within 30 days."),
        ("doc-2", 0.41, "Shipping takes 5 days."),
    ]
