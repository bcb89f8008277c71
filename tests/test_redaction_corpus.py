"""Redaction of every string that leaves the process, tested with a corpus both ways: secrets that
must be masked wherever the application puts them, and look-alikes (ordinary telemetry) that must
survive. On the default policy and on a Collector-schema policy (the shared policy file).

Each case is a traced call; the assertion is on the exported OTLP request (the in-test receiver's
exact bytes): the secret appears nowhere in it, the look-alike appears as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mlflow_otel as mlflow
from mlflow_otel.entities import SpanEvent, SpanStatus, SpanStatusCode

ROOT = Path(__file__).resolve().parent.parent
POLICY_FILE = ROOT / "collector-config" / "redaction-policy.yaml"

OPENAI_KEY = "sk-proj-" + "Q7mK2xPz9LwR4tYvB8nC3dFg6hJ1kM5s"
PASSWORD = "hunter2-correct-horse"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4iLCJpYXQiOjE1MTYyMzkwMjJ9."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
CARD = "4111111111111111"  # Luhn-valid test card


def _traced(body) -> None:
    @mlflow.trace(name="case")
    def case():
        body(mlflow.get_current_active_span())
        return "done"

    try:
        case()
    except RuntimeError:
        pass


def _raise_with_key(span) -> None:
    raise RuntimeError(f"Incorrect API key provided: {OPENAI_KEY}")


SECRET_CASES = {
    "status message of an exception": (_raise_with_key, OPENAI_KEY),
    "explicit status message": (
        lambda s: s.set_status(SpanStatus(SpanStatusCode.ERROR, f"auth failed for {OPENAI_KEY}")),
        OPENAI_KEY,
    ),
    "event name": (lambda s: s.add_event(SpanEvent(f"retry with {OPENAI_KEY}")), OPENAI_KEY),
    "attribute key": (lambda s: s.set_attribute(f"cache.{OPENAI_KEY}", 1), OPENAI_KEY),
    "custom JSON attribute": (lambda s: s.set_attribute("request", {"password": PASSWORD}), PASSWORD),
    "JSON inside a string": (
        lambda s: s.set_inputs({"payload": json.dumps({"api_key": PASSWORD})}),
        PASSWORD,
    ),
    "JSON inside a string, twice": (
        lambda s: s.set_inputs({"p": json.dumps({"inner": json.dumps({"password": PASSWORD})})}),
        PASSWORD,
    ),
    "camelCase userPassword": (lambda s: s.set_inputs({"userPassword": PASSWORD}), PASSWORD),
    "dbPassword": (lambda s: s.set_inputs({"config": {"dbPassword": PASSWORD}}), PASSWORD),
    "githubToken": (lambda s: s.set_inputs({"githubToken": PASSWORD}), PASSWORD),
    "openaiApiKey": (lambda s: s.set_inputs({"openaiApiKey": PASSWORD}), PASSWORD),
    "Api Key with a space": (lambda s: s.set_inputs({"Api Key": PASSWORD}), PASSWORD),
    "passphrase": (lambda s: s.set_inputs({"passphrase": PASSWORD}), PASSWORD),
    "credentials": (
        lambda s: s.set_inputs({"credentials": {"user": "a", "secret_value": PASSWORD}}),
        PASSWORD,
    ),
    "password inside a URL": (
        lambda s: s.set_attribute("db.url", f"postgres://admin:{PASSWORD}@db.internal:5432/app"),
        PASSWORD,
    ),
    "bare JWT under a plain key": (lambda s: s.set_inputs({"note": f"session {JWT}"}), JWT),
    "card with dots": (lambda s: s.set_inputs({"card": "4111.1111.1111.1111"}), "4111.1111.1111.1111"),
    "card as an int": (lambda s: s.set_inputs({"number": int(CARD)}), CARD),
    "zero-width key": (lambda s: s.set_inputs({"pass\u200bword": PASSWORD}), PASSWORD),
    "secret query parameter": (
        lambda s: s.set_attribute("url.full", f"https://api.example.com/v1?q=1&api_key={PASSWORD}"),
        PASSWORD,
    ),
    "secret key in a debug summary": (
        lambda s: (
            mlflow.tracing.configure(redaction={"allow_all_keys": True, "summary": "debug"}),
            s.set_attribute(f"cache.{OPENAI_KEY}", 1),
        ),
        OPENAI_KEY,
    ),
    "full-width key": (lambda s: s.set_inputs({"\uff30assword": PASSWORD}), PASSWORD),
    "span name": (lambda s: None, None),  # covered by test_span_name_is_redacted
}

LOOK_ALIKES = {
    "max_tokens": 512,
    "prompt_tokens": 12,
    "total_tokens": 40,
    "token_count": 7,
    "tokenizer": "cl100k_base",
    "request_id": "3f2b8c1e-9a4d-4e7b-8c2a-1b2c3d4e5f60",
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "model": "gpt-4o-mini-2024-07-18",
    "timestamp_ms": 1732982400123,
    "order_number": 1234567890123,  # 13 digits, not Luhn-valid
    "keyword": "monkey business",
    "url": "https://example.com/docs?q=1",
    "email_subject": "Your token balance",
}


def _secret_free(spans, secret: str) -> None:
    for span in spans:
        blob = json.dumps(
            [span.name, span.attributes, span.events, span.status_message, span.resource], default=str
        )
        assert secret not in blob, f"{secret!r} left the process in span {span.name!r}"


@pytest.mark.parametrize("case", [c for c in SECRET_CASES if c != "span name"])
def test_default_policy_masks_every_string_that_leaves(otlp_http, case):
    body, secret = SECRET_CASES[case]
    _traced(body)
    _secret_free(otlp_http(1), secret)


def test_span_name_is_redacted(otlp_http):
    with mlflow.start_span(f"call with {OPENAI_KEY}"):
        pass
    (span,) = otlp_http(1)
    assert OPENAI_KEY not in span.name and span.name.startswith("call with ")


def test_url_credentials_become_redacted_as_otel_prescribes(otlp_http):
    _traced(lambda s: s.set_attribute("url.full", "https://bob:s3cr3tpw@api.example.com/v1"))
    (span,) = otlp_http(1)
    assert span.attributes["url.full"] == "https://REDACTED:REDACTED@api.example.com/v1"


def test_resource_attributes_are_redacted(otlp_http, monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"db.url=postgres://admin:{PASSWORD}@db:5432/app")
    mlflow.tracing.reset()
    _traced(lambda s: None)
    (span,) = otlp_http(1)
    assert PASSWORD not in json.dumps(span.resource)


def test_look_alikes_survive_the_default_policy(otlp_http):
    _traced(lambda s: (s.set_inputs(dict(LOOK_ALIKES)), s.set_attributes(dict(LOOK_ALIKES))))
    (span,) = otlp_http(1)
    assert json.loads(span.attributes["mlflow.spanInputs"]) == LOOK_ALIKES
    for key, value in LOOK_ALIKES.items():
        assert span.attributes[key] == value
    assert "redaction.masked.count" not in span.attributes


def test_token_usage_stays_readable(otlp_http):
    usage = {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30}
    _traced(lambda s: s.set_attribute("mlflow.chat.tokenUsage", usage))
    (span,) = otlp_http(1)
    assert json.loads(span.attributes["mlflow.chat.tokenUsage"]) == usage


@pytest.mark.parametrize(
    "case",
    ["custom JSON attribute", "camelCase userPassword", "zero-width key", "full-width key", "dbPassword"],
)
def test_collector_schema_policy_gets_the_same_reach(otlp_http, case):
    """The shared policy file (Collector schema), default patterns off: its key patterns reach
    custom JSON attributes and every spelling of a key too."""
    mlflow.tracing.configure(redaction=str(POLICY_FILE), redaction_defaults=False)
    body, secret = SECRET_CASES[case]
    _traced(body)
    _secret_free(otlp_http(1), secret)


def test_collector_schema_policy_keeps_look_alikes(otlp_http):
    mlflow.tracing.configure(redaction=str(POLICY_FILE), redaction_defaults=False)
    _traced(lambda s: s.set_inputs(dict(LOOK_ALIKES)))
    (span,) = otlp_http(1)
    assert json.loads(span.attributes["mlflow.spanInputs"]) == LOOK_ALIKES


def test_a_policy_that_cannot_load_stops_capture_on_the_request_path_too(otlp_http, tmp_path):
    from mlflow_otel._state import STATE

    mlflow.tracing.configure(redaction=str(tmp_path / "missing.yaml"))
    _traced(lambda s: s.set_inputs({"q": "first"}))  # the chain is built, and fails closed
    otlp_http(1)
    assert STATE.capture_content is False  # the span builders no longer encode payloads
    _traced(lambda s: s.set_outputs({"a": "second"}))
    span = otlp_http(2)[-1]
    assert "mlflow.spanInputs" not in span.attributes and "mlflow.spanOutputs" not in span.attributes
