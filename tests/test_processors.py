"""The processor chain on the wire: user hooks, content capture switch, redaction, trimming."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel.entities import SpanType
from mlflow_otel.pipeline.process import run_chain
from mlflow_otel.processors.redaction import DefaultRedactor, RedactionPolicy, Redactor
from mlflow_otel.processors.trimming import Trimmer
from tests.conftest import ROOT, by_name, decoded

POLICY_FILE = ROOT / "collector-config" / "redaction-policy.yaml"
SECRETS = [
    "sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4",
    "sk-ant-api03-ZZZZZZZZZZZZZZZZZZZZZZZZ",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_" + "a" * 36,
    "xoxb-1234567890-abcdefghij",
    "4111 1111 1111 1111",
]


# --- user hooks --------------------------------------------------------------------------------------


def test_mlflow_style_retriever_filter_and_pii_filter(otlp_http):
    def filter_retrieval_output(span):
        """Keep only document ids in retriever outputs (MLflow FAQ's example, our import)."""
        if span.span_type == SpanType.RETRIEVER and span.outputs:
            span.set_outputs([{"id": d["id"]} for d in span.outputs])

    def pii_filter(span):
        if inputs := span.inputs:
            for key in inputs:
                if "ssn" in key.lower():
                    inputs[key] = "[REDACTED]"
            span.set_inputs(inputs)

    mlflow.tracing.configure(span_processors=[filter_retrieval_output, pii_filter])

    @mlflow.trace(span_type=SpanType.RETRIEVER)
    def retrieve(query, ssn):
        return [{"id": "d1", "text": "private text"}, {"id": "d2", "text": "more"}]

    retrieve("q", ssn="078-05-1120")
    (span,) = otlp_http(1)
    assert decoded(span, "mlflow.spanOutputs") == [{"id": "d1"}, {"id": "d2"}]
    assert decoded(span, "mlflow.spanInputs") == {"query": "q", "ssn": "[REDACTED]"}


def test_configure_as_context_manager_restores_previous(otlp_http):
    def tag_a(span):
        span.set_attribute("hook", "a")

    def tag_b(span):
        span.set_attribute("hook", "b")

    mlflow.tracing.configure(span_processors=[tag_a])
    with mlflow.tracing.configure(span_processors=[tag_b]):
        with mlflow.start_span("inside"):
            pass
        assert mlflow.flush_trace_async_logging()
    with mlflow.start_span("outside"):
        pass
    spans = by_name(otlp_http(2))
    assert spans["inside"].attributes["hook"] == "b"
    assert spans["outside"].attributes["hook"] == "a"


def test_raising_hook_is_isolated_counted_and_logged_once(otlp_http, caplog):
    def half_done_then_raise(span):
        span.set_attribute("partial", "should be rolled back")
        raise RuntimeError("hook bug")

    def good(span):
        span.set_attribute("good", True)

    mlflow.tracing.configure(span_processors=[half_done_then_raise, good])
    for i in range(3):
        with mlflow.start_span(f"s{i}"):
            pass
    spans = otlp_http(3)
    assert len(spans) == 3
    assert all("partial" not in s.attributes and s.attributes["good"] is True for s in spans)
    assert tracing.stats()["processor_errors"] == 3
    assert caplog.text.count("hook bug") == 1


def test_hook_drops_span_on_purpose(otlp_http):
    def drop_health_checks(span):
        if span.name == "health":
            raise tracing.DropSpan()

    mlflow.tracing.configure(span_processors=[drop_health_checks])
    with mlflow.start_span("health"):
        pass
    with mlflow.start_span("real"):
        pass
    assert [s.name for s in otlp_http(1)] == ["real"]
    assert tracing.stats()["dropped.by_processor"] == 1


def test_hooks_before_and_after_builtins(otlp_http):
    def leaks_a_key(span):
        span.set_attribute("note", f"using {SECRETS[0]}")

    seen_by_late_hook = []

    def late(span):
        seen_by_late_hook.append(span.get_attribute("note"))

    mlflow.tracing.configure(span_processors=[leaks_a_key, tracing.BUILTINS, late])
    with mlflow.start_span("x"):
        pass
    (span,) = otlp_http(1)
    assert span.attributes["note"] == "using ****"  # a hook's own leak is still redacted
    assert seen_by_late_hook == ["using ****"]  # hooks after BUILTINS see redacted data


def test_hooks_run_off_the_request_path(otlp_http):
    import threading

    threads = []
    mlflow.tracing.configure(span_processors=[lambda span: threads.append(threading.current_thread().name)])
    with mlflow.start_span("x"):
        pass
    otlp_http(1)
    assert threads and all(name.startswith("mlflow-otel-export") for name in threads)


# --- content capture switch ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["env", "code"])
def test_content_capture_off_keeps_shape_and_usage(otlp_http, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("MLFLOW_OTEL_CAPTURE_CONTENT", "false")
        tracing.reset()
    else:
        mlflow.tracing.configure(capture_content=False)

    @mlflow.trace(span_type=SpanType.LLM)
    def llm(prompt):
        span = mlflow.get_current_active_span()
        span.set_attributes(
            {
                "mlflow.chat.tokenUsage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
                "mlflow.llm.model": "gpt-4o-mini",
                "gen_ai.input.messages": [{"role": "user", "content": "secret question"}],
            }
        )
        return "secret answer"

    @mlflow.trace(output_reducer="".join)
    def stream():
        yield from ["a", "b"]

    llm("secret question")
    list(stream())
    spans = by_name(otlp_http(2))
    s = spans["llm"]
    assert "mlflow.spanInputs" not in s.attributes and "mlflow.spanOutputs" not in s.attributes
    assert "gen_ai.input.messages" not in s.attributes
    assert s.attributes["mlflow.spanType"] == "LLM" and s.attributes["mlflow.llm.model"] == "gpt-4o-mini"
    assert json.loads(s.attributes["mlflow.chat.tokenUsage"])["total_tokens"] == 7
    assert s.status == "OK" and s.end_ns > s.start_ns
    assert spans["stream"].events == [] and "mlflow.spanOutputs" not in spans["stream"].attributes
    assert "secret" not in json.dumps([sp.attributes for sp in spans.values()])


# --- redaction -----------------------------------------------------------------------------------------


def test_default_policy_masks_nested_secrets_on_the_wire(otlp):
    @mlflow.trace
    def call_tool(config, messages):
        return {"result": "ok", "echo": f"card {SECRETS[5]} billed", "usage": {"input_tokens": 5}}

    call_tool(
        config={
            "openai": {"api_key": "not-shaped-like-a-key", "model": "gpt-4o"},
            "headers": ["Bearer abcdefghijkl"],
        },
        messages=[{"role": "user", "content": f"my keys: {SECRETS[0]} and {SECRETS[2]}"}],
    )
    (span,) = otlp(1)
    inputs = decoded(span, "mlflow.spanInputs")  # still valid JSON
    outputs = decoded(span, "mlflow.spanOutputs")
    assert inputs["config"]["openai"] == {"api_key": "****", "model": "gpt-4o"}
    assert inputs["config"]["headers"] == ["****"]
    assert inputs["messages"][0]["content"] == "my keys: **** and ****"
    assert outputs == {"result": "ok", "echo": "card **** billed", "usage": {"input_tokens": 5}}
    wire = json.dumps(span.attributes)
    assert not any(secret in wire for secret in [*SECRETS, "not-shaped-like-a-key"])
    assert span.attributes["redaction.masked.count"] == 4  # summary "info": counts, no key names
    assert "redaction.masked.keys" not in span.attributes


def test_collector_policy_file_loaded_as_is(otlp_http, monkeypatch):
    monkeypatch.setenv("MLFLOW_OTEL_REDACTION_CONFIG", str(POLICY_FILE))
    tracing.reset()

    @mlflow.trace
    def contact(email, cc):
        return "sent"

    contact("jane.doe@corp.example", "support@example.com")
    (span,) = otlp_http(1)
    assert decoded(span, "mlflow.spanInputs") == {"email": "****", "cc": "support@example.com"}


@pytest.mark.parametrize(
    ("summary", "expect_keys", "expect_counts"),
    [("debug", True, True), ("info", False, True), ("silent", False, False)],
)
def test_summary_attributes_per_setting(otlp_http, summary, expect_keys, expect_counts):
    mlflow.tracing.configure(
        redaction={
            "allow_all_keys": False,
            "allowed_keys": ["mlflow.spanType", "mlflow.spanInputs", "mlflow.traceRequestId", "note"],
            "ignored_keys": ["mlflow.spanFunctionName"],
            "blocked_values": ["secret-[0-9]+"],
            "summary": summary,
        },
        redaction_defaults=False,
    )
    with mlflow.start_span("s") as span:
        span.set_attribute("note", "has secret-123 in it")
        span.set_attribute("dropped_attr", "x")
    (s,) = otlp_http(1)
    assert s.attributes["note"] == "has **** in it"
    assert "dropped_attr" not in s.attributes  # not in allowed_keys: removed (fails closed)
    assert ("redaction.masked.keys" in s.attributes) is expect_keys
    assert ("redaction.redacted.count" in s.attributes) is expect_counts
    if expect_keys:
        assert s.attributes["redaction.masked.keys"] == "note"
        assert "dropped_attr" in s.attributes["redaction.redacted.keys"].split(",")
    if expect_counts:
        assert s.attributes["redaction.masked.count"] == 1


@pytest.mark.parametrize(
    ("function", "digest"),
    [
        ("md5", lambda t: hashlib.md5(t.encode()).hexdigest()),
        ("sha1", lambda t: hashlib.sha1(t.encode()).hexdigest()),
        ("sha3", lambda t: hashlib.sha3_256(t.encode()).hexdigest()),
    ],
)
def test_hash_function_replaces_matches_with_their_hash(otlp_http, function, digest):
    mlflow.tracing.configure(
        redaction={"allow_all_keys": True, "blocked_values": ["ACCT-[0-9]{6}"], "hash_function": function},
        redaction_defaults=False,
    )

    @mlflow.trace
    def f(account):
        return None

    f("billing ACCT-123456 now")
    (span,) = otlp_http(1)
    assert decoded(span, "mlflow.spanInputs") == {"account": f"billing {digest('ACCT-123456')} now"}


def test_redaction_applies_to_other_instrumentations_spans(receiver, tmp_path):
    from tests.conftest import run_python

    receiver.clear()
    code = f"""
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
trace.set_tracer_provider(TracerProvider())
import mlflow_otel as mlflow
with trace.get_tracer("httpx-like").start_as_current_span("POST /v1/chat") as span:
    span.set_attribute("http.request.header.authorization", "Bearer {"x" * 24}")
    span.set_attribute("gen_ai.input.messages", '[{{"role":"user","content":"key {SECRETS[0]}"}}]')
mlflow.flush_trace_async_logging()
"""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint,
        "MLFLOW_USE_DEFAULT_TRACER_PROVIDER": "false",
    }
    result = run_python(code, env, tmp_path)
    assert result.returncode == 0, result.stderr
    (span,) = receiver.wait_for_spans(1)
    assert span.attributes["http.request.header.authorization"] == "****"
    assert json.loads(span.attributes["gen_ai.input.messages"]) == [{"role": "user", "content": "key ****"}]


def test_defaults_can_be_switched_off(otlp_http):
    mlflow.tracing.configure(redaction_defaults=False)

    @mlflow.trace
    def f(api_key):
        return None

    f("sk-proj-keepmebecauseyouaskedforit123")
    (span,) = otlp_http(1)
    assert decoded(span, "mlflow.spanInputs") == {"api_key": "sk-proj-keepmebecauseyouaskedforit123"}


def test_broken_policy_fails_closed(otlp_http, tmp_path, caplog):
    # A policy that cannot be loaded turns content capture off (tests/test_reliability.py covers
    # every way a policy can fail to load).
    mlflow.tracing.configure(redaction=str(tmp_path / "missing.yaml"))

    @mlflow.trace
    def f(token):
        return None

    f("abc")
    (span,) = otlp_http(1)
    assert "mlflow.spanInputs" not in span.attributes
    assert "missing.yaml" in caplog.text


# --- trimming ------------------------------------------------------------------------------------------


def test_5mb_input_arrives_trimmed_as_valid_json_with_original_size(otlp, monkeypatch):
    from mlflow_otel import _serialize

    monkeypatch.setattr(_serialize, "CAPTURE_TIME_BUDGET_S", 60.0)  # the byte budget alone here
    big = {
        "document": "lorem ipsum " * (450 * 1024),
        "pages": list(range(200_000)),
        "meta": {"source": "upload"},
    }

    @mlflow.trace
    def ingest(payload):
        return "ok"

    ingest(big)
    (span,) = otlp(1)
    raw = span.attributes["mlflow.spanInputs"]
    assert len(raw.encode()) <= 1024 * 1024
    inputs = json.loads(raw)  # valid JSON
    assert inputs["payload"]["meta"] == {"source": "upload"}
    assert "truncated" in inputs["payload"]["document"]
    assert "more items truncated" in inputs["payload"]["pages"][-1]
    record = json.loads(span.attributes["mlflow_otel.trimmed"])
    # Capture (app thread) already cut the 5.5 MB text to the limit; trimming (export side) records
    # what it received, then cut in a balanced way.
    assert record["mlflow.spanInputs"]["original_bytes"] > 1024 * 1024
    assert decoded(span, "mlflow.spanOutputs") == "ok"


def test_base64_image_is_summarised(otlp_http, monkeypatch):
    mlflow.tracing.configure(max_attribute_bytes=50_000)
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + bytes(range(256)) * 400).decode()

    @mlflow.trace
    def vision(messages):
        return "a cat"

    vision([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}}]}])
    (span,) = otlp_http(1)
    url = decoded(span, "mlflow.spanInputs")["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("<image/png base64, ") and "sha256:" in url and len(url) < 100


def test_otel_attribute_length_limit_is_respected_json_aware(otlp_http, monkeypatch):
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "2000")
    tracing.reset()
    tracing.reset()

    @mlflow.trace
    def f(items):
        return None

    f([f"item-{i}" for i in range(2000)])
    (span,) = otlp_http(1)
    raw = span.attributes["mlflow.spanInputs"]
    assert len(raw) <= 2000
    assert json.loads(raw)["items"][0] == "item-0"


# --- properties ----------------------------------------------------------------------------------------

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(SECRETS),
)
nested = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.sampled_from(["api_key", "password", "note"])),
            children,
            max_size=6,
        ),
    ),
    max_leaves=40,
)


def _finished_span(inputs, outputs, provider_exporter):
    provider, exporter = provider_exporter
    tracer = provider.get_tracer("t")
    from mlflow_otel._serialize import dumps

    with tracer.start_as_current_span("p") as span:
        span.set_attribute("mlflow.spanInputs", dumps(inputs))
        span.set_attribute("mlflow.spanOutputs", dumps(outputs))
    finished = exporter.get_finished_spans()[-1]
    exporter.clear()
    return finished


@pytest.fixture(scope="module")
def provider_exporter():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


_BLOCKED = [re.compile(p) for p in DefaultRedactor().policy.blocked_values]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inputs=nested, outputs=nested)
def test_chain_never_raises_keeps_json_valid_and_no_secret_survives(provider_exporter, inputs, outputs):
    span = _finished_span(inputs, outputs, provider_exporter)
    chain = (DefaultRedactor(), Redactor(RedactionPolicy.from_file(str(POLICY_FILE))), Trimmer(600, 2000))
    result = run_chain(span, chain)
    for key in ("mlflow.spanInputs", "mlflow.spanOutputs"):
        text = result.attributes[key]
        json.loads(text)
        assert not any(secret in text for secret in SECRETS)
        assert not any(p.search(text) for p in _BLOCKED)


def _keys(value: object) -> list[str]:
    """Every mapping key in a nested value."""
    if isinstance(value, dict):
        return [str(k) for k in value] + [k for v in value.values() for k in _keys(v)]
    if isinstance(value, (list, tuple)):
        return [k for v in value for k in _keys(v)]
    return []


def _card_like(text: str) -> bool:
    from mlflow_otel.processors.redaction.defaults import luhn_valid

    return any(luhn_valid(m) for m in re.findall(r"\d{13,19}", text))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inputs=nested, outputs=nested)
def test_spans_under_budget_without_secrets_are_identical(provider_exporter, inputs, outputs):
    span = _finished_span(inputs, outputs, provider_exporter)
    redactor = DefaultRedactor()
    chain = (redactor, Trimmer(10**6, 3 * 10**6))
    text = json.dumps([span.attributes["mlflow.spanInputs"], span.attributes["mlflow.spanOutputs"]])
    result = run_chain(span, chain)
    if (
        not any(secret in text for secret in SECRETS)
        and not any(redactor.block_key(key) for key in _keys([inputs, outputs]))  # e.g. "secret"
        and not _card_like(text)  # a Luhn-valid 13-19 digit number is a card to the default policy
    ):
        assert result is span  # not copied, not re-encoded: byte-identical on the wire


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=nested, budget=st.integers(min_value=64, max_value=4000))
def test_trimming_any_json_fits_the_budget_and_stays_valid(provider_exporter, doc, budget):
    span = _finished_span(doc, [doc, doc], provider_exporter)
    result = run_chain(span, (Trimmer(budget, budget * 3),))
    for key in ("mlflow.spanInputs", "mlflow.spanOutputs"):
        text = result.attributes[key]
        json.loads(text)
        assert len(text.encode()) <= max(64, budget)


def _span_with(provider_exporter, **attributes):
    provider, exporter = provider_exporter
    with provider.get_tracer("t").start_as_current_span("p") as span:
        for key, value in attributes.items():
            span.set_attribute(key, value)
    finished = exporter.get_finished_spans()[-1]
    exporter.clear()
    return finished


def test_secrets_inside_list_attributes_are_masked_by_the_default_policy(provider_exporter):
    span = _span_with(
        provider_exporter,
        urls=("https://bob:hunter2@db.example.com/x", "https://example.com/?api_key=sk-live-123456"),
        cards=(4111111111111111, 7),
    )
    result = run_chain(span, (DefaultRedactor(),))
    assert "hunter2" not in json.dumps(list(result.attributes["urls"]))
    assert "sk-live-123456" not in json.dumps(list(result.attributes["urls"]))
    assert 4111111111111111 not in list(result.attributes["cards"])


def test_a_list_attribute_counts_toward_the_span_budget(provider_exporter):
    span = _span_with(provider_exporter, chunks=tuple("y" * 10_000 for _ in range(500)))  # 5 MB
    result = run_chain(span, (Trimmer(1024 * 1024, 3 * 1024 * 1024),))
    assert sum(len(x) for x in result.attributes.get("chunks", ())) <= 3 * 1024 * 1024


# --- trace-level screens (processors/base.py): a screen that says "nothing to change" is never wrong
_FRAGMENTS = [
    "hello", "ok", " ", "key", '"api_key": ', '"password": "x"', "sk-proj-Q7mK2xPz9LwR4tYvB8nC3dFg6hJ1kM5s",
    "postgres://admin:pw@db:5432/app", "?q=1&token=abc", "4111 1111 1111 1111", "4111111111111111", "1234",
    "eyJhbGciOiJIUzI1NiJ9", "Bearer abc", "\\", "\u200b", "{", "[", '"', ":", ",", "monkey business",
]  # fmt: skip
_values = st.one_of(
    st.lists(st.sampled_from(_FRAGMENTS), max_size=6).map("".join),
    st.integers(min_value=-(10**19), max_value=10**19),
    st.lists(st.sampled_from(_FRAGMENTS), max_size=3).map(tuple),
    st.booleans(),
)
_attrs = st.dictionaries(
    st.sampled_from(["mlflow.spanInputs", "mlflow.spanOutputs", "note", "db.url", "n"]), _values
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trace=st.lists(_attrs, min_size=1, max_size=3))
def test_the_default_redaction_screen_never_passes_a_span_it_would_change(provider_exporter, trace):
    spans = [_span_with(provider_exporter, **attrs) for attrs in trace]
    redactor = DefaultRedactor()
    if redactor.screen(spans):
        for span in spans:
            assert run_chain(span, (redactor,)) is span  # unchanged: the very same object


def test_a_screened_processor_still_runs_on_a_span_an_earlier_hook_changed(provider_exporter):
    span = _span_with(provider_exporter, note="hello")
    redactor = DefaultRedactor()
    assert redactor.screen([span])

    def add_secret(view):
        view.set_attribute("db.url", "postgres://admin:hunter2@db:5432/app")

    result = run_chain(span, (add_secret, redactor), screened=(redactor,))
    assert "hunter2" not in result.attributes["db.url"]
    assert run_chain(span, (redactor,), screened=(redactor,)) is span
