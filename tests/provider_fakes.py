"""Loopback fakes of model providers' HTTP APIs (Anthropic, Gemini, Bedrock), for driving the real
client libraries in tests with no network.

Each speaks the wire format its client parses: Anthropic's Messages API (JSON and Server-Sent
Events), the Gemini API's ``models/{model}:generateContent`` (and ``:streamGenerateContent``), and
Bedrock Runtime's ``/model/{id}/converse`` and ``/model/{id}/invoke`` (an Anthropic-shaped body),
and an OpenAI-compatible ``/v1/chat/completions`` that gives the answers a test scripted.
The answer echoes the last user text; requests with tools get a tool call back; usage is reported
as each API reports it (words + 5 in, words out). OpenAI-compatible providers (Groq, Mistral,
LiteLLM, DSPy, the Agents SDK) use ``tests/openai_server.py``. Every request is recorded.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _last_user(messages: Any, role_key: str = "role", user: str = "user") -> str:
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get(role_key) == user:
            return _text_of(message.get("content") if "content" in message else message.get("parts"))
    return ""


class _Handler(BaseHTTPRequestHandler):
    server: ProviderFake.HTTP  # type: ignore[name-defined]

    def log_message(self, *args: Any) -> None:
        pass

    def _read(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode("latin-1")}
        self.server.owner.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        return body

    def _json(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[tuple[Optional[str], Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for event, data in events:
            if event:
                self.wfile.write(f"event: {event}\n".encode())
            self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()

    def do_POST(self) -> None:
        body = self._read()
        path = self.path.split("?", 1)[0]
        if path.endswith("/v1/messages"):
            self._anthropic(body)
        elif m := re.search(r"/models/([^/:]+):(generateContent|streamGenerateContent)$", path):
            self._gemini(body, m.group(1), m.group(2) == "streamGenerateContent")
        elif m := re.search(r"/model/([^/]+)/(converse|invoke)$", path):
            self._bedrock(body, m.group(1), m.group(2))
        elif path.endswith("/chat/completions"):
            self._scripted_chat(body)
        else:
            self._json(404, {"error": f"no route {self.path}"})

    # --- Anthropic Messages API -------------------------------------------------------------------
    def _anthropic_message(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = _last_user(body.get("messages"))
        text = f"Echo: {prompt}"
        tools = body.get("tools") or []
        if tools:
            content = [{"type": "tool_use", "id": "toolu_1", "name": tools[0]["name"], "input": {"a": 1}}]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": text}]
            stop = "end_turn"
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-test"),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": _tokens(prompt) + 5,
                "output_tokens": _tokens(text),
                "cache_read_input_tokens": 3,
                "cache_creation_input_tokens": 0,
            },
        }

    def _anthropic(self, body: dict[str, Any]) -> None:
        message = self._anthropic_message(body)
        if not body.get("stream"):
            self._json(200, message)
            return
        usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        events: list[tuple[Optional[str], Any]] = [
            ("message_start", {"type": "message_start", "message": start})
        ]
        text = message["content"][0].get("text", "")
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        for i, word in enumerate(text.split(" ")):
            piece = word if i == 0 else " " + word
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        self._sse(events)

    # --- Gemini API ---------------------------------------------------------------------------------
    def _gemini(self, body: dict[str, Any], model: str, stream: bool) -> None:
        prompt = _last_user(body.get("contents"))
        text = f"Echo: {prompt}"
        answer = {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": _tokens(prompt) + 5,
                "candidatesTokenCount": _tokens(text),
                "totalTokenCount": _tokens(prompt) + 5 + _tokens(text),
            },
            "modelVersion": f"{model}-001",
            "responseId": "resp-1",
        }
        if stream:
            self._sse([(None, answer)])
        else:
            self._json(200, answer)

    # --- an OpenAI-compatible chat endpoint with scripted answers (DSPy parses what it asked for) ---
    def _scripted_chat(self, body: dict[str, Any]) -> None:
        prompt = _last_user(body.get("messages"))
        answers = self.server.owner.answers
        text = answers.pop(0) if answers else f"Echo: {prompt}"
        tokens_in, tokens_out = _tokens(prompt) + 5, _tokens(text)
        self._json(
            200,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body.get("model", "gpt-test"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": tokens_in,
                    "completion_tokens": tokens_out,
                    "total_tokens": tokens_in + tokens_out,
                },
            },
        )

    # --- Bedrock Runtime -----------------------------------------------------------------------------
    def _bedrock(self, body: dict[str, Any], model_id: str, action: str) -> None:
        if action == "invoke":
            self._json(200, self._anthropic_message({**body, "model": model_id}))
            return
        prompt = _last_user(body.get("messages"))
        text = f"Echo: {prompt}"
        tokens_in, tokens_out = _tokens(prompt) + 5, _tokens(text)
        self._json(
            200,
            {
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": "end_turn",
                "usage": {
                    "inputTokens": tokens_in,
                    "outputTokens": tokens_out,
                    "totalTokens": tokens_in + tokens_out,
                },
                "metrics": {"latencyMs": 3},
            },
        )


class ProviderFake:
    """``with ProviderFake() as fake: Anthropic(base_url=fake.base_url, api_key="test")``."""

    class HTTP(ThreadingHTTPServer):
        daemon_threads = True
        owner: ProviderFake

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        #: Answers the chat endpoint gives, in order (then it echoes).
        self.answers: list[str] = []
        self._http = ProviderFake.HTTP(("127.0.0.1", 0), _Handler)
        self._http.owner = self
        self.port = self._http.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._http.serve_forever, name="provider-fake", daemon=True)

    def start(self) -> ProviderFake:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> ProviderFake:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
