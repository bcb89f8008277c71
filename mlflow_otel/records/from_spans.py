"""Build a trace's record and spans from OTel spans: MLflow's rules for the fields a trace record
has (``TraceInfo``) that OTel spans do not carry as such.

* ``request_time`` / ``execution_duration``: the root span's start and duration, in milliseconds.
* ``state``: ``update_current_trace(state=...)`` if given, else ERROR when the root span failed,
  else OK.
* previews: ``update_current_trace(request_preview=...)`` if given, else computed from the root's
  inputs / outputs the way MLflow computes them (``tracing/utils/truncation.py``: the text of the
  last user / assistant message when the payload is a chat request or response, else the JSON),
  cut to 1,000 characters with ``...``.
* metadata: ``mlflow.traceMetadata.<k>`` root attributes, MLflow's ``mlflow.traceInputs`` /
  ``mlflow.traceOutputs`` (the root's payloads, cut like previews; "" without one), the trace
  schema version and the token usage summed over spans that report it (``mlflow.trace.tokenUsage``).
* tags: ``mlflow.traceTag.<k>`` root attributes and ``mlflow.traceName`` (the root span's name).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from opentelemetry.sdk.trace import ReadableSpan

from mlflow_otel import semconv as conv
from mlflow_otel.otlp.ids import mlflow_trace_id, span_hex
from mlflow_otel.records.model import Span, Trace, TraceData, TraceInfo, TraceState
from mlflow_otel.spans.types import Link, SpanEvent, SpanStatus, SpanStatusCode, decode_attribute

#: MLflow's preview length on open-source servers (``TRACE_REQUEST_RESPONSE_PREVIEW_MAX_LENGTH_OSS``).
PREVIEW_MAX_CHARS = 1000
#: MLflow's cut of ``mlflow.traceInputs`` / ``mlflow.traceOutputs`` (``MAX_CHARS_IN_TRACE_INFO_METADATA``).
MAX_METADATA_CHARS = 250
_TOKEN_KEYS = ("input_tokens", "output_tokens", "total_tokens")


def span_from_otel(span: ReadableSpan) -> Span:
    """One OTel span (as the pipeline exports it) as MLflow's ``Span``."""
    ctx = span.get_span_context()
    status = span.status
    code = SpanStatusCode.from_otel(status.status_code) if status is not None else SpanStatusCode.UNSET
    return Span(
        trace_id=mlflow_trace_id(ctx.trace_id),
        span_id=span_hex(ctx.span_id),
        parent_id=span_hex(span.parent.span_id) if span.parent is not None else None,
        name=span.name,
        start_time_ns=span.start_time or 0,
        end_time_ns=span.end_time,
        status=SpanStatus(code, (status.description or "") if status is not None else ""),
        attributes=dict(span.attributes or {}),
        events=[SpanEvent(e.name, e.timestamp, dict(e.attributes or {})) for e in span.events or ()],
        links=[Link.from_otel(link) for link in span.links or ()],
    )


def otel_root_of(spans: Sequence[Any]) -> Optional[Any]:
    """``root_of`` over OTel spans (one trace's, without converting them): the span without a parent,
    else the earliest whose parent is elsewhere, else (a cycle) the earliest; None for no spans."""
    parentless = [s for s in spans if s.parent is None]
    if not parentless:
        ids = {s.get_span_context().span_id for s in spans}
        parentless = [s for s in spans if s.parent.span_id not in ids] or list(spans)
    return min(parentless, key=lambda s: s.start_time or 0) if parentless else None


def root_of(spans: Sequence[Span]) -> Optional[Span]:
    """The trace's root: the span without a parent, else the first whose parent is elsewhere (a
    fragment of a distributed trace)."""
    ids = {span.span_id for span in spans}
    parentless = [s for s in spans if s.parent_id is None]
    if parentless:
        return min(parentless, key=lambda s: s.start_time_ns)
    orphans = [s for s in spans if s.parent_id not in ids]
    return min(orphans, key=lambda s: s.start_time_ns) if orphans else None


def _truncate(text: str, limit: int = PREVIEW_MAX_CHARS) -> str:
    text = text.replace("\x00", "\ufffd")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _messages(obj: Any) -> Optional[list[Mapping[str, Any]]]:
    """Chat messages in the shapes MLflow recognises (Chat Completions and Responses, request and
    response, and a ``request`` wrapper)."""
    if not isinstance(obj, Mapping):
        return None

    def is_message(item: Any) -> bool:
        return isinstance(item, Mapping) and "role" in item and "content" in item

    for key in ("messages", "input", "output"):
        items = obj.get(key)
        if isinstance(items, list) and items:
            return [m for m in items if is_message(m)]
    choices = obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        message = choices[0].get("message")
        if is_message(message):
            return [message]
    if "request" in obj:
        return _messages(obj["request"])
    return None


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                return part
            if isinstance(part, Mapping) and part.get("type") in ("text", "output_text"):
                return str(part.get("text") or "")
    return ""


def preview(payload_json: Optional[str], role: str) -> Optional[str]:
    """MLflow's preview of a root span's inputs (``role="user"``) or outputs (``"assistant"``)."""
    if payload_json is None:
        return None
    try:
        obj = json.loads(payload_json)
    except ValueError:
        obj = None
    text = None
    messages = _messages(obj) if obj is not None else None
    if messages:
        chosen = next((m for m in reversed(messages) if m.get("role") == role), messages[-1])
        text = _message_text(chosen)
    return _truncate(text or payload_json)


def _token_usage(spans: Sequence[Span]) -> Optional[dict[str, int]]:
    return token_usage_of([span.raw_attributes.get(conv.CHAT_TOKEN_USAGE) for span in spans])


def trace_info_for(
    spans: Sequence[Span], trace_location: Optional[dict[str, Any]] = None
) -> Optional[TraceInfo]:
    """The record of a trace whose spans are ``spans`` (None without a root)."""
    root = root_of(spans)
    if root is None:
        return None
    return record_for(root, _token_usage(spans), trace_location)


def token_usage_of(raw_values: Sequence[Any]) -> Optional[dict[str, int]]:
    """The trace's token usage from its spans' ``mlflow.chat.tokenUsage`` values as on the wire
    (JSON text or a mapping), as ``trace_info_for`` sums them."""
    totals = dict.fromkeys(_TOKEN_KEYS, 0)
    found = False
    for raw in raw_values:
        usage = decode_attribute(conv.CHAT_TOKEN_USAGE, raw)
        if isinstance(usage, Mapping):
            found = True
            for key in _TOKEN_KEYS:
                value = usage.get(key)
                if isinstance(value, (int, float)):
                    totals[key] += int(value)
    return totals if found else None


def record_for(
    root: Span, usage: Optional[dict[str, int]], trace_location: Optional[dict[str, Any]] = None
) -> TraceInfo:
    """A trace's record from its root span and its summed token usage: all the record needs, so a
    writer converts only the root of each trace (the local store, the MLflow destination)."""
    raw = root.raw_attributes
    metadata: dict[str, str] = {"mlflow.trace_schema.version": "3"}
    tags: dict[str, str] = {conv.TRACE_NAME: root.name}
    for key, value in raw.items():
        if key.startswith(conv.TRACE_METADATA_PREFIX):
            metadata[key[len(conv.TRACE_METADATA_PREFIX) :]] = str(value)
        elif key.startswith(conv.TRACE_TAG_PREFIX):
            tags[key[len(conv.TRACE_TAG_PREFIX) :]] = str(value)
    inputs, outputs = raw.get(conv.SPAN_INPUTS), raw.get(conv.SPAN_OUTPUTS)
    for key, payload in (("mlflow.traceInputs", inputs), ("mlflow.traceOutputs", outputs)):
        # MLflow writes "" for a missing payload (a function that raised has no outputs)
        metadata.setdefault(key, "" if payload is None else _truncate(str(payload), MAX_METADATA_CHARS))
    if usage is not None:
        metadata.setdefault("mlflow.trace.tokenUsage", json.dumps(usage))
    state_override = raw.get(conv.TRACE_STATE)
    if state_override in ("OK", "ERROR"):
        state = TraceState(state_override)
    elif root.status.status_code is SpanStatusCode.ERROR:
        state = TraceState.ERROR
    elif root.end_time_ns is None:
        state = TraceState.IN_PROGRESS
    else:
        state = TraceState.OK
    request_preview = raw.get(conv.REQUEST_PREVIEW)
    response_preview = raw.get(conv.RESPONSE_PREVIEW)
    client_request_id = raw.get(conv.CLIENT_REQUEST_ID)
    return TraceInfo(
        trace_id=root.trace_id,
        trace_location=trace_location,
        request_time=root.start_time_ns // 1_000_000,
        execution_duration=(
            (root.end_time_ns - root.start_time_ns) // 1_000_000 if root.end_time_ns is not None else None
        ),
        state=state,
        request_preview=str(request_preview) if request_preview is not None else preview(inputs, "user"),
        response_preview=(
            str(response_preview) if response_preview is not None else preview(outputs, "assistant")
        ),
        client_request_id=str(client_request_id) if client_request_id is not None else None,
        trace_metadata=metadata,
        tags=tags,
    )


def trace_from_spans(spans: Sequence[Span], trace_location: Optional[dict[str, Any]] = None) -> Trace:
    """A ``Trace`` from its spans, ordered by start time (the root first)."""
    ordered = sorted(spans, key=lambda s: (s.start_time_ns, s.parent_id is not None))
    info = trace_info_for(ordered, trace_location)
    if info is None:  # pragma: no cover - a non-empty set of spans always has a root
        raise ValueError("a trace needs at least one span")
    return Trace(info, TraceData(ordered))


def trace_from_otel(spans: Sequence[ReadableSpan], trace_location: Optional[dict[str, Any]] = None) -> Trace:
    return trace_from_spans([span_from_otel(s) for s in spans], trace_location)
