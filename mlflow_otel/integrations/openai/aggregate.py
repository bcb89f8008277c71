"""Streamed chunks folded back into the one response a non-streamed call would have returned.

So a streamed call's span reads like any other: ``mlflow.spanOutputs`` is a ``chat.completion``
(content and tool calls reassembled per choice, as the API documents deltas), a Responses API
``response`` object, or a ``text_completion``; model, id, usage and finish reasons come from the
chunks that carried them. MLflow reassembles only the first choice's text and loses streamed tool
calls; this keeps every choice and every tool call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from mlflow_otel.processors.normalization.openai_extract import Endpoint


def _chat(chunks: list[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"object": "chat.completion"}
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for key in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(key) is not None:
                out[key] = chunk[key]
        if chunk.get("usage"):
            out["usage"] = chunk["usage"]
        for delta_choice in chunk.get("choices") or ():
            if not isinstance(delta_choice, Mapping):
                continue
            index = delta_choice.get("index", 0)
            choice = choices.setdefault(
                index,
                {"index": index, "message": {"role": "assistant", "content": None}, "finish_reason": None},
            )
            message = choice["message"]
            delta = delta_choice.get("delta") or {}
            if delta.get("role"):
                message["role"] = delta["role"]
            for field in ("content", "refusal", "reasoning_content"):
                piece = delta.get(field)
                if isinstance(piece, str):
                    message[field] = (message.get(field) or "") + piece
            for call_delta in delta.get("tool_calls") or ():
                calls = message.setdefault("tool_calls", {})
                call = calls.setdefault(
                    call_delta.get("index", len(calls)),
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if call_delta.get("id"):
                    call["id"] = call_delta["id"]
                if call_delta.get("type"):
                    call["type"] = call_delta["type"]
                fn = call_delta.get("function") or {}
                if fn.get("name"):
                    call["function"]["name"] += fn["name"]
                if fn.get("arguments"):
                    call["function"]["arguments"] += fn["arguments"]
            if delta_choice.get("finish_reason"):
                choice["finish_reason"] = delta_choice["finish_reason"]
            if delta_choice.get("logprobs"):
                choice.setdefault("logprobs", delta_choice["logprobs"])
    for choice in choices.values():
        calls = choice["message"].get("tool_calls")
        if calls is not None:
            choice["message"]["tool_calls"] = [calls[i] for i in sorted(calls)]
    out["choices"] = [choices[i] for i in sorted(choices)]
    return out


def _completions(chunks: list[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"object": "text_completion"}
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for key in ("id", "created", "model", "system_fingerprint"):
            if chunk.get(key) is not None:
                out[key] = chunk[key]
        if chunk.get("usage"):
            out["usage"] = chunk["usage"]
        for part in chunk.get("choices") or ():
            index = part.get("index", 0)
            choice = choices.setdefault(index, {"index": index, "text": "", "finish_reason": None})
            choice["text"] += part.get("text") or ""
            if part.get("finish_reason"):
                choice["finish_reason"] = part["finish_reason"]
    out["choices"] = [choices[i] for i in sorted(choices)]
    return out


#: Responses API events that carry the whole response object.
_FINAL_EVENTS = ("response.completed", "response.failed", "response.incomplete")


def _responses(events: list[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
    latest: Optional[dict[str, Any]] = None
    items: dict[int, Any] = {}
    for event in events:
        kind = event.get("type")
        if isinstance(event.get("response"), Mapping):
            latest = dict(event["response"])  # created / in_progress / completed ...
            if kind in _FINAL_EVENTS:
                return latest
        if kind == "response.output_item.done" and isinstance(event.get("item"), Mapping):
            items[event.get("output_index", len(items))] = event["item"]
    if latest is None and not items:
        return None
    # Closed early or failed mid-stream: the last snapshot plus the items that were finished.
    out = latest or {"object": "response"}
    if items:
        out["output"] = [items[i] for i in sorted(items)]
    return out


def aggregate(endpoint: Endpoint, chunks: list[Any]) -> Any:
    """One response from a stream's chunks (plain dicts); unknown streams stay a list of chunks."""
    if not chunks:
        return None
    maps = [c for c in chunks if isinstance(c, Mapping)]
    if endpoint.kind == "responses":
        return _responses(maps) or chunks
    kinds = {c.get("object") for c in maps}
    if "chat.completion.chunk" in kinds:
        return _chat([c for c in maps if c.get("object") == "chat.completion.chunk"])
    if "text_completion" in kinds:
        return _completions([c for c in maps if c.get("object") == "text_completion"])
    return chunks
