"""Chat messages in the OTel GenAI JSON shape, and OpenInference's flattened message keys.

Content-bearing, so only built when content capture is on and asked for: GenAI messages with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (the GenAI instrumentations' switch),
OpenInference ones with ``openinference`` in ``MLFLOW_OTEL_SEMCONV``.

GenAI shapes follow the semantic conventions' input/output message schemas
(``gen-ai-input-messages.json``, ``gen-ai-output-messages.json``): ``{"role", "parts": [...]}`` with
``text``, ``tool_call`` and ``tool_call_response`` parts, system prompts in
``gen_ai.system_instructions``, and ``finish_reason`` on output messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from mlflow_otel._serialize import dumps, loads_or_raw
from mlflow_otel.processors.normalization.openai_extract import Endpoint, finish_reasons

Message = dict[str, Any]


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts = []
    if isinstance(content, list):
        for item in content:
            if not isinstance(item, Mapping):
                continue
            kind = item.get("type")
            if kind in ("text", "input_text", "output_text"):
                parts.append({"type": "text", "content": item.get("text", "")})
            elif kind == "image_url":
                url = item.get("image_url")
                url = url.get("url") if isinstance(url, Mapping) else url
                parts.append({"type": "uri", "modality": "image", "uri": url})
            elif kind == "input_image":
                parts.append({"type": "uri", "modality": "image", "uri": item.get("image_url")})
            elif kind == "refusal":
                parts.append({"type": "text", "content": item.get("refusal", "")})
            else:
                parts.append({"type": str(kind), **{k: v for k, v in item.items() if k != "type"}})
    return parts


def _chat_message(msg: Mapping[str, Any]) -> Message:
    role = msg.get("role", "user")
    if role == "tool":
        return {
            "role": "tool",
            "parts": [
                {"type": "tool_call_response", "id": msg.get("tool_call_id"), "response": msg.get("content")}
            ],
        }
    parts = _content_parts(msg.get("content"))
    for call in msg.get("tool_calls") or ():
        if isinstance(call, Mapping):
            fn = call.get("function") or {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": fn.get("name"),
                    "arguments": loads_or_raw(fn.get("arguments")),
                }
            )
    out: Message = {"role": role, "parts": parts}
    if isinstance(msg.get("name"), str):
        out["name"] = msg["name"]
    return out


def _responses_item(item: Any) -> Optional[Message]:
    if isinstance(item, str):
        return {"role": "user", "parts": [{"type": "text", "content": item}]}
    if not isinstance(item, Mapping):
        return None
    kind = item.get("type", "message")
    if kind == "message" or "role" in item:
        return {"role": item.get("role", "user"), "parts": _content_parts(item.get("content"))}
    if kind == "function_call":
        call = {
            "type": "tool_call",
            "id": item.get("call_id"),
            "name": item.get("name"),
            "arguments": loads_or_raw(item.get("arguments")),
        }
        return {"role": "assistant", "parts": [call]}
    if kind == "function_call_output":
        return {
            "role": "tool",
            "parts": [
                {"type": "tool_call_response", "id": item.get("call_id"), "response": item.get("output")}
            ],
        }
    if kind == "reasoning":
        summary = item.get("summary") or []
        text = "".join(s.get("text", "") for s in summary if isinstance(s, Mapping))
        return {"role": "assistant", "parts": [{"type": "reasoning", "content": text}]}
    return {"role": "assistant", "parts": [{"type": str(kind)}]}


def input_messages(endpoint: Endpoint, body: Mapping[str, Any]) -> tuple[list[Message], list[dict[str, Any]]]:
    """(input messages, system instructions) of a chat or responses request."""
    system: list[dict[str, Any]] = []
    messages: list[Message] = []
    if endpoint.kind == "chat":
        for msg in body.get("messages") or ():
            if not isinstance(msg, Mapping):
                continue
            if msg.get("role") in ("system", "developer"):
                system.extend(_content_parts(msg.get("content")))
            else:
                messages.append(_chat_message(msg))
    elif endpoint.kind == "responses":
        if isinstance(body.get("instructions"), str):
            system.append({"type": "text", "content": body["instructions"]})
        raw = body.get("input")
        for item in [raw] if isinstance(raw, str) else (raw or ()):
            converted = _responses_item(item)
            if converted is not None:
                messages.append(converted)
    elif endpoint.kind == "completions" and isinstance(body.get("prompt"), str):
        messages.append({"role": "user", "parts": [{"type": "text", "content": body["prompt"]}]})
    return messages, system


def output_messages(endpoint: Endpoint, response: Any) -> list[Message]:
    if not isinstance(response, Mapping):
        return []
    if endpoint.kind == "responses":
        parts: list[dict[str, Any]] = []
        for item in response.get("output") or ():
            converted = _responses_item(item)
            if converted is not None:
                parts.extend(converted["parts"])
        reasons = finish_reasons(endpoint, response) or ["stop"]
        return [{"role": "assistant", "parts": parts, "finish_reason": reasons[0]}]
    out = []
    for choice in response.get("choices") or ():
        if not isinstance(choice, Mapping):
            continue
        if endpoint.kind == "completions":
            msg: Message = {"role": "assistant", "parts": _content_parts(choice.get("text"))}
        else:
            msg = _chat_message(choice.get("message") or {})
            msg["role"] = msg.get("role") or "assistant"
        msg["finish_reason"] = choice.get("finish_reason") or "stop"
        out.append(msg)
    return out


def genai_attributes(
    endpoint: Endpoint, body: Mapping[str, Any], response: Any, tools: Optional[list[Any]]
) -> dict[str, Any]:
    """``gen_ai.input.messages``, ``gen_ai.system_instructions``, ``gen_ai.output.messages`` and
    ``gen_ai.tool.definitions`` (JSON strings, as the conventions record structured values)."""
    attrs: dict[str, Any] = {}
    if endpoint.kind not in ("chat", "responses", "completions"):
        return attrs
    if body is not None:
        messages, system = input_messages(endpoint, body)
        if messages:
            attrs["gen_ai.input.messages"] = dumps(messages)
        if system:
            attrs["gen_ai.system_instructions"] = dumps(system)
        if tools:
            attrs["gen_ai.tool.definitions"] = dumps(tools)
    if response is not None:
        out = output_messages(endpoint, response)
        if out:
            attrs["gen_ai.output.messages"] = dumps(out)
    return attrs


def _flatten(prefix: str, messages: list[Message], attrs: dict[str, Any]) -> None:
    for i, msg in enumerate(messages):
        base = f"{prefix}.{i}.message"
        attrs[f"{base}.role"] = str(msg.get("role"))
        texts = [
            p.get("content")
            for p in msg["parts"]
            if p.get("type") == "text" and isinstance(p.get("content"), str)
        ]
        if texts:
            attrs[f"{base}.content"] = "".join(texts)
        calls = [p for p in msg["parts"] if p.get("type") == "tool_call"]
        for j, call in enumerate(calls):
            attrs[f"{base}.tool_calls.{j}.tool_call.id"] = str(call.get("id"))
            attrs[f"{base}.tool_calls.{j}.tool_call.function.name"] = str(call.get("name"))
            args = call.get("arguments")
            attrs[f"{base}.tool_calls.{j}.tool_call.function.arguments"] = (
                args if isinstance(args, str) else dumps(args)
            )
        responses = [p for p in msg["parts"] if p.get("type") == "tool_call_response"]
        if responses:
            attrs[f"{base}.tool_call_id"] = str(responses[0].get("id"))
            resp = responses[0].get("response")
            attrs[f"{base}.content"] = resp if isinstance(resp, str) else dumps(resp)


def openinference_attributes(
    endpoint: Endpoint,
    body: Optional[Mapping[str, Any]],
    response: Any,
    body_json: Optional[str],
    output_json: Optional[str],
) -> dict[str, Any]:
    """``input.value``/``output.value`` with their mime types and ``llm.*_messages.N.message.*``."""
    attrs: dict[str, Any] = {}
    if body_json is not None:
        attrs["input.value"] = body_json
        attrs["input.mime_type"] = "application/json"
    if output_json is not None:
        attrs["output.value"] = output_json
        attrs["output.mime_type"] = "application/json"
    if endpoint.kind in ("chat", "responses", "completions"):
        if body is not None:
            messages, system = input_messages(endpoint, body)
            if system:
                messages = [{"role": "system", "parts": system}, *messages]
            _flatten("llm.input_messages", messages, attrs)
            for i, tool in enumerate(body.get("tools") or ()):
                attrs[f"llm.tools.{i}.tool.json_schema"] = dumps(tool)
        if response is not None:
            _flatten("llm.output_messages", output_messages(endpoint, response), attrs)
    return attrs
