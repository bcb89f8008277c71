"""Switching auto-tracing on and off, and what every autologged span goes through.

``mlflow_otel.autolog()`` enables every installed library; ``disable=True`` uninstruments; a second
call changes nothing; the application's global tracer provider is never touched; a missing
instrumentor is one message naming the extra; importing a face imports nothing heavy;
``tracing.context`` stamps third-party spans; content capture, redaction and trimming apply to
third-party spans as to ours; ``tracing.disable()`` makes no third-party spans.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel.integrations import registry
from mlflow_otel.integrations.base import MissingDependency
from mlflow_otel.integrations.instrumented import OPENINFERENCE, Instrumentor, InstrumentorIntegration
from tests.autolog_checks import attr, autologged_fixture, usage  # noqa: F401 (fixture)
from tests.conftest import run_python
from tests.provider_fakes import ProviderFake

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "what is otel"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[ProviderFake]:
    with ProviderFake() as server:
        yield server


@pytest.fixture
def claude(fake):
    import anthropic

    client = anthropic.Anthropic(base_url=fake.base_url, api_key="test", max_retries=0)

    def ask(text: str = "what is otel") -> str:
        reply = client.messages.create(
            model="claude-test", max_tokens=64, messages=[{"role": "user", "content": text}]
        )
        return reply.content[0].text

    return ask


def _anthropic_instrumentor():
    from openinference.instrumentation.anthropic import AnthropicInstrumentor

    return AnthropicInstrumentor()


# --- on, off, twice ------------------------------------------------------------------------------------


def test_autolog_enables_every_installed_library_and_disable_undoes_it():
    expected = {
        name
        for name, integration in registry.INTEGRATIONS.items()
        if isinstance(integration, InstrumentorIntegration)
        and integration.library_installed()
        and integration.available()
    }
    # What CI's test extra installs; crewai is not in it (see README, "Auto-tracing other libraries").
    assert {
        "anthropic",
        "langchain",
        "llama_index",
        "dspy",
        "bedrock",
        "gemini",
        "groq",
        "mistral",
    } <= expected
    assert {"litellm", "openai_agents"} <= expected
    try:
        mlflow.autolog()
        on = {name for name, i in registry.INTEGRATIONS.items() if i.is_instrumented}
        assert on == expected | {"openai"}
        for name in expected:
            active = registry.INTEGRATIONS[name].active
            assert active is not None and active.convention == OPENINFERENCE, name
        assert _anthropic_instrumentor().is_instrumented_by_opentelemetry
    finally:
        mlflow.autolog(disable=True)
    assert not [name for name, i in registry.INTEGRATIONS.items() if i.is_instrumented]
    assert not _anthropic_instrumentor().is_instrumented_by_opentelemetry


def test_autolog_exclude_flavors_and_mlflow_arguments_accepted():
    try:
        mlflow.autolog(exclude_flavors=["anthropic"], log_models=False, extra_tags={"a": "b"}, silent=True)
        assert not registry.INTEGRATIONS["anthropic"].is_instrumented
        assert registry.INTEGRATIONS["groq"].is_instrumented
    finally:
        mlflow.autolog(disable=True)


def test_disable_uninstruments_and_calls_go_untraced(claude, otlp_http, receiver):
    mlflow.anthropic.autolog()
    claude()
    assert len(otlp_http(1)) == 1
    mlflow.anthropic.autolog(disable=True)
    assert not _anthropic_instrumentor().is_instrumented_by_opentelemetry
    receiver.clear()
    assert claude() == "Echo: what is otel"
    assert mlflow.flush_trace_async_logging()
    assert receiver.spans() == []


def test_autolog_twice_changes_nothing(claude, otlp_http, autologged, caplog):
    autologged("anthropic")
    integration = registry.INTEGRATIONS["anthropic"]
    bound = integration.active
    with caplog.at_level(logging.WARNING):
        autologged("anthropic")
        autologged("anthropic", log_models=True, silent=False)
    assert integration.active is bound
    assert "already instrumented" not in caplog.text.lower()
    claude()
    spans = otlp_http(1)
    assert len(spans) == 1 and usage(spans[0])["total_tokens"] == 15


def test_application_instrumented_itself_is_left_alone(caplog):
    from opentelemetry.sdk.trace import TracerProvider

    own = TracerProvider()
    _anthropic_instrumentor().instrument(tracer_provider=own)
    try:
        with caplog.at_level(logging.WARNING):
            mlflow.anthropic.autolog()
        assert "already instrumented by the application" in caplog.text
        assert registry.INTEGRATIONS["anthropic"].active is None
        mlflow.anthropic.autolog(disable=True)
        assert _anthropic_instrumentor().is_instrumented_by_opentelemetry  # still the app's
    finally:
        _anthropic_instrumentor().uninstrument()
        mlflow.anthropic.autolog(disable=True)


# --- the application's provider, the missing extra, imports -------------------------------------------------


def test_never_touches_the_applications_global_tracer_provider(tmp_path, fake):
    """An application with its own global SDK provider: autolog binds the instrumentor to ours,
    the application's exporter sees none of the library's spans, its provider stays global."""
    code = f"""
import json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

app_spans = InMemorySpanExporter()
app_provider = TracerProvider()
app_provider.add_span_processor(SimpleSpanProcessor(app_spans))
trace.set_tracer_provider(app_provider)

import anthropic
import mlflow_otel as mlflow
mlflow.anthropic.autolog()
client = anthropic.Anthropic(base_url={fake.base_url!r}, api_key="t", max_retries=0)
client.messages.create(model="claude-test", max_tokens=5, messages=[{{"role": "user", "content": "hi"}}])
with trace.get_tracer("app").start_as_current_span("app-span"):
    pass
mlflow.flush_trace_async_logging()
print(json.dumps({{
    "global_is_app": trace.get_tracer_provider() is app_provider,
    "app_spans": [s.name for s in app_spans.get_finished_spans()],
}}))
"""
    traces_file = tmp_path / "traces.jsonl"
    result = run_python(code, {"MLFLOW_OTEL_TRACES_FILE": str(traces_file)}, tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["global_is_app"] is True
    # The app's provider gets its own span (and the Anthropic SDK's native ones, if the SDK emits
    # them), never the instrumentor's: that one went through our pipeline.
    assert "app-span" in report["app_spans"] and "messages.create" not in report["app_spans"]
    exported = traces_file.read_text()
    assert "messages.create" in exported and "CHAT_MODEL" in exported and "app-span" not in exported


def test_missing_library_and_instrumentor_one_message_naming_the_extra(caplog):
    assert "crewai" not in sys.modules
    with caplog.at_level(logging.WARNING):
        mlflow.crewai.autolog()
    messages = [r.getMessage() for r in caplog.records if r.name == "mlflow_otel"]
    assert messages == [
        "mlflow_otel.crewai.autolog() needs crewai, openinference-instrumentation-crewai: "
        "pip install 'mlflow-otel[crewai]'"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        mlflow.crewai.autolog(silent=True)
    assert caplog.records == []


def test_library_without_instrumentor_named_by_autolog(caplog, monkeypatch):
    missing = (
        Instrumentor(
            "openinference-instrumentation-notinstalled",
            "openinference.instrumentation.x",
            "X",
            OPENINFERENCE,
        ),
    )
    monkeypatch.setattr(registry.INTEGRATIONS["groq"], "instrumentors", missing)
    monkeypatch.setattr(registry.INTEGRATIONS["mistral"], "instrumentors", missing)
    with pytest.raises(
        MissingDependency, match=r"needs openinference-instrumentation-notinstalled: .*\[groq\]"
    ):
        registry.INTEGRATIONS["groq"].instrument()
    try:
        with caplog.at_level(logging.WARNING):
            mlflow.autolog()
    finally:
        mlflow.autolog(disable=True)
    lines = [r.getMessage() for r in caplog.records if "without an instrumentor" in r.getMessage()]
    assert lines == [
        "mlflow_otel.autolog(): groq, mistral installed without an instrumentor, not traced: "
        "pip install 'mlflow-otel[groq,mistral]'"
    ]


def test_importing_faces_imports_no_library(tmp_path):
    code = """
import sys
import mlflow_otel as mlflow
for name in ("anthropic", "langchain", "llama_index", "dspy", "bedrock", "gemini", "groq", "mistral",
             "litellm", "crewai", "openai_agents"):
    assert callable(getattr(mlflow, name).autolog)
heavy = [m for m in ("anthropic", "langchain_core", "llama_index", "dspy", "boto3", "google.genai", "groq",
                     "mistralai", "litellm", "agents", "openinference") if m in sys.modules]
print(heavy)
"""
    result = run_python(code, {}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


# --- tracing.context, the switch ---------------------------------------------------------------------------


def test_tracing_context_stamps_third_party_spans_and_their_trace(claude, mlflow_traces, autologged):
    autologged("anthropic")
    with tracing.context(session_id="sess-7", user="ann", tags={"team": "search"}, metadata={"tier": "gold"}):
        claude()

        @mlflow.trace
        def handler() -> str:
            return claude("inner")

        handler()
    claude("outside")
    own, nested, outside = sorted(mlflow_traces.wait(3), key=lambda t: t.info.request_time)
    for trace in (own, nested):
        assert trace.info.tags["team"] == "search"
        assert trace.info.trace_metadata["tier"] == "gold"
        assert trace.info.trace_metadata["mlflow.trace.session"] == "sess-7"
        assert trace.info.trace_metadata["mlflow.trace.user"] == "ann"
        for span in trace.data.spans:
            assert span.attributes["session.id"] == "sess-7" or span.name == "handler"
    assert own.data.spans[0].name == "messages.create" and own.info.request_preview == "what is otel"
    library_span = next(s for s in nested.data.spans if s.name == "messages.create")
    assert library_span.attributes["user.id"] == "ann"
    assert "team" not in outside.info.tags and "session.id" not in outside.data.spans[0].attributes


def test_disabled_tracing_makes_no_third_party_spans(claude, otlp_http, receiver, autologged):
    autologged("anthropic")
    with tracing.context(enabled=False):
        assert claude() == "Echo: what is otel"
    tracing.disable()
    try:
        claude()
    finally:
        tracing.enable()
    assert mlflow.flush_trace_async_logging()
    assert receiver.spans() == []
    claude()
    assert len(otlp_http(1)) == 1


def test_last_active_trace_id_after_an_autologged_call(claude, mlflow_traces, autologged):
    autologged("anthropic")
    claude()
    (trace,) = mlflow_traces.wait(1)
    assert mlflow.get_last_active_trace_id() == trace.info.trace_id


# --- content capture, redaction, trimming on third-party spans ----------------------------------------------


def test_content_capture_off_strips_third_party_content(claude, otlp_http, autologged):
    tracing.configure(capture_content=False)
    autologged("anthropic")
    claude()
    (span,) = otlp_http(1)
    keys = set(span.attributes)
    assert span.attributes["mlflow.spanType"] == "CHAT_MODEL"
    assert usage(span)["total_tokens"] == 15 and span.attributes["mlflow.llm.model"] == "claude-test"
    assert not keys & {"mlflow.spanInputs", "mlflow.spanOutputs", "input.value", "output.value"}
    assert not [k for k in keys if k.startswith(("llm.input_messages", "llm.output_messages"))]
    assert "what is otel" not in json.dumps(span.attributes)


def test_content_capture_off_also_with_openinference_convention_kept(
    claude, otlp_http, autologged, monkeypatch
):
    monkeypatch.setenv("MLFLOW_OTEL_SEMCONV", "mlflow,gen_ai,openinference")
    monkeypatch.setenv("MLFLOW_OTEL_CAPTURE_CONTENT", "false")
    tracing.reset()
    autologged("anthropic")
    claude()
    (span,) = otlp_http(1)
    assert "what is otel" not in json.dumps(span.attributes)
    assert span.attributes["llm.token_count.total"] == 15


def test_redaction_masks_secrets_in_third_party_spans(claude, otlp_http, autologged):
    secret = "sk-ant-api03-ZZZZZZZZZZZZZZZZZZZZZZZZ"
    autologged("anthropic")
    claude(f"my key is {secret}")
    (span,) = otlp_http(1)
    wire = json.dumps(span.attributes) + json.dumps([e for e in span.events])
    assert secret not in wire
    assert attr(span, "mlflow.spanInputs")["messages"][0]["content"] == "my key is ****"
    assert attr(span, "mlflow.spanOutputs")["content"][0]["text"] == "Echo: my key is ****"


def test_redaction_applies_to_kept_openinference_content_too(claude, otlp_http, autologged, monkeypatch):
    monkeypatch.setenv("MLFLOW_OTEL_SEMCONV", "mlflow,gen_ai,openinference")
    tracing.reset()
    secret = "sk-ant-api03-ZZZZZZZZZZZZZZZZZZZZZZZZ"
    autologged("anthropic")
    claude(f"my key is {secret}")
    (span,) = otlp_http(1)
    assert secret not in json.dumps(span.attributes)
    assert "my key is ****" in span.attributes["input.value"]
    assert span.attributes["llm.input_messages.0.message.content"] == "my key is ****"


def test_trimming_applies_to_third_party_spans(claude, otlp_http, autologged):
    tracing.configure(max_attribute_bytes=2048)
    autologged("anthropic")
    claude("otel " * 2000)
    (span,) = otlp_http(1)
    inputs = span.attributes["mlflow.spanInputs"]
    assert len(inputs.encode()) <= 2048
    assert json.loads(inputs)["model"] == "claude-test"  # still valid JSON, cut inside
    trimmed = json.loads(span.attributes["mlflow_otel.trimmed"])
    assert trimmed["mlflow.spanInputs"]["original_bytes"] > 10_000
