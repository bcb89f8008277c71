"""Content the OpenTelemetry GenAI instrumentations keep off their spans, captured onto the span.

The OTel GenAI instrumentations (``opentelemetry-instrumentation-google-genai``, ``-openai-v2``, built
on ``opentelemetry-util-genai``) put messages on the span only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` asks for it, and otherwise hand them to a
*completion hook* (semantic conventions, gen-ai-spans.md, "Uploading content to external storage")
or emit them as log events (gen-ai-events.md). An MLflow server ingests no OTLP logs, so both are
brought back onto the span here, on the app thread while the span is still open:

* ``COMPLETION_HOOK``: ``on_completion(inputs=, outputs=, system_instruction=, tool_definitions=,
  span=)`` writes ``gen_ai.input.messages`` / ``gen_ai.output.messages`` /
  ``gen_ai.system_instructions`` / ``gen_ai.tool.definitions`` (the conventions' JSON shapes) when
  the span does not carry them yet;
* ``LOGGER_PROVIDER``: each log event emitted in a span's context becomes an event on that span
  (structured values as JSON), which the normalization processor reads
  (``processors/normalization/``).

Nothing is captured with content capture off (``MLFLOW_OTEL_CAPTURE_CONTENT=false``); redaction and
trimming apply to the result as to every span.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Optional

from opentelemetry import trace as trace_api
from opentelemetry._logs import Logger, LoggerProvider

from mlflow_otel._log import warn_limited
from mlflow_otel._serialize import dumps
from mlflow_otel._state import STATE

INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOOL_DEFINITIONS = "gen_ai.tool.definitions"
#: Event attributes that carry content (gen-ai-events.md, ``gen_ai.client.inference.operation.details``).
CONTENT_KEYS = (INPUT_MESSAGES, OUTPUT_MESSAGES, SYSTEM_INSTRUCTIONS)


def _json(items: Sequence[Any]) -> str:
    return dumps(
        [dataclasses.asdict(i) if dataclasses.is_dataclass(i) else i for i in items], STATE.capture_limit
    )


class CompletionHook:
    """``opentelemetry.util.genai.completion_hook.CompletionHook``, writing content onto the span."""

    def on_completion(
        self,
        *,
        inputs: Sequence[Any] = (),
        outputs: Sequence[Any] = (),
        system_instruction: Sequence[Any] = (),
        tool_definitions: Optional[Sequence[Any]] = None,
        span: Any = None,
        log_record: Any = None,
        **future: Any,
    ) -> None:
        if span is None or not span.is_recording() or not STATE.capture_content:
            return
        try:
            present = getattr(span, "attributes", None) or {}
            for key, items in (
                (INPUT_MESSAGES, inputs),
                (OUTPUT_MESSAGES, outputs),
                (SYSTEM_INSTRUCTIONS, system_instruction),
                (TOOL_DEFINITIONS, tool_definitions),
            ):
                if items and key not in present:
                    span.set_attribute(key, _json(items))
        except Exception as exc:  # never into the instrumented call
            warn_limited("genai_hook", "Could not capture GenAI content onto the span: %r", exc)


def _attribute_value(value: Any) -> Any:
    """A span event attribute: primitives as they are, anything structured as JSON."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, bool, int, float)) for v in value):
        return list(value)
    return dumps(value, STATE.capture_limit)


class SpanEventLogger(Logger):
    """An OTel ``Logger`` whose records become events on the span they were emitted in."""

    def enabled(self, *args: Any, **kwargs: Any) -> bool:
        return STATE.capture_content

    def emit(self, record: Any = None, **fields: Any) -> None:  # type: ignore[override]
        try:
            if record is not None:
                fields = {
                    "context": getattr(record, "context", None),
                    "event_name": getattr(record, "event_name", None),
                    "attributes": getattr(record, "attributes", None),
                    "body": getattr(record, "body", None),
                    "timestamp": getattr(record, "timestamp", None),
                }
            span = trace_api.get_current_span(fields.get("context"))
            if not span.is_recording() or not STATE.capture_content:
                return
            raw = fields.get("attributes") or {}
            body = fields.get("body")
            if body is None and not any(key in raw for key in CONTENT_KEYS):
                return  # no content: the span already has everything else the event repeats
            attributes = {k: _attribute_value(v) for k, v in raw.items()}
            if body is not None:
                attributes["body"] = _attribute_value(body)
            span.add_event(fields.get("event_name") or "log", attributes, fields.get("timestamp"))
        except Exception as exc:
            warn_limited("genai_log", "Could not capture a GenAI log event onto its span: %r", exc)


class SpanEventLoggerProvider(LoggerProvider):
    """What ``autolog()`` passes as ``logger_provider=`` to GenAI instrumentors."""

    def get_logger(
        self,
        name: str,
        version: Optional[str] = None,
        schema_url: Optional[str] = None,
        attributes: Any = None,
    ) -> Logger:
        return SpanEventLogger(name, version, schema_url, attributes)


COMPLETION_HOOK = CompletionHook()
LOGGER_PROVIDER = SpanEventLoggerProvider()
