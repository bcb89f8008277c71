"""An OpenAI-compatible HTTP server on loopback, for driving the real ``openai`` client in tests.

Speaks the wire format the client parses: JSON bodies, and Server-Sent Events for ``stream=True``
(chat completion chunks ending in ``data: [DONE]``; Responses API typed events). The model name
picks a behaviour, so one server serves every test:

* ``fail-500`` / ``fail-400`` / ``fail-429``: that status with an OpenAI error body;
* ``slow``: answers after 2 s (for client timeouts);
* ``stream-error``: a stream that sends two chunks, then an ``error`` event;
* requests with ``tools`` get a tool call back; otherwise the answer echoes the last user text.

Usage is reported as an API does (streams only with ``stream_options.include_usage``).
Every request is recorded (path, headers, body) for assertions.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CREATED = 1_700_000_000


def _last_user_text(messages: Any) -> str:
    for msg in reversed(messages or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    return ""


def _responses_text(raw: Any) -> str:
    return raw if isinstance(raw, str) else _last_user_text(raw)


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _tool_name(tool: dict[str, Any]) -> str:
    return (tool.get("function") or {}).get("name") or tool.get("name") or "tool"


class _Handler(BaseHTTPRequestHandler):
    server: OpenAiServer.HTTP  # type: ignore[name-defined]

    def log_message(self, *args: Any) -> None:
        pass

    # --- plumbing --------------------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode("latin-1")}
        self.server.owner.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        return body

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{len(self.server.owner.requests)}")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": {"message": message, "type": "server_error", "code": str(status)}})

    def _sse_start(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()

    def _sse(self, data: Any, event: str | None = None) -> None:
        text = (f"event: {event}\n" if event else "") + f"data: {json.dumps(data)}\n\n"
        self.wfile.write(text.encode())
        self.wfile.flush()

    def _fault(self, model: str) -> bool:
        if model.startswith("fail-"):
            self._error(int(model.split("-", 1)[1]), f"injected failure {model}")
            return True
        if model == "slow":
            time.sleep(2.0)
        return False

    # --- routes --------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._read()
        if self.path.rstrip("/").endswith("/models"):
            self._json(
                200,
                {
                    "object": "list",
                    "data": [{"id": "gpt-test", "object": "model", "created": CREATED, "owned_by": "tests"}],
                },
            )
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        body = self._read()
        path = self.path.split("?", 1)[0].rstrip("/")
        model = str(body.get("model", ""))
        if self._fault(model):
            return
        if path.endswith("/chat/completions"):
            self._chat(body, model)
        elif path.endswith("/responses"):
            self._responses(body, model)
        elif path.endswith("/embeddings"):
            self._embeddings(body, model)
        elif path.endswith("/completions"):
            self._completions(body, model)
        elif path.endswith("/moderations"):
            self._json(
                200,
                {
                    "id": "modr-1",
                    "model": model or "omni-moderation-latest",
                    "results": [{"flagged": False, "categories": {}, "category_scores": {}}],
                },
            )
        else:
            self._error(404, f"no route {self.path}")

    def _chat(self, body: dict[str, Any], model: str) -> None:
        tools = body.get("tools") or []
        prompt = _last_user_text(body.get("messages"))
        n = int(body.get("n") or 1)
        text = f"Echo: {prompt}"
        usage = {"prompt_tokens": _tokens(prompt) + 5, "completion_tokens": _tokens(text), "total_tokens": 0}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        usage["prompt_tokens_details"] = {"cached_tokens": 2}
        base = {
            "id": "chatcmpl-1",
            "created": CREATED,
            "model": f"{model}-2024-08-06",
            "system_fingerprint": "fp_test",
        }
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": _tool_name(tools[0]) if tools else "", "arguments": '{"a": 1, "b": 2}'},
        }
        if not body.get("stream"):
            choices = []
            for i in range(n):
                if tools:
                    message = {"role": "assistant", "content": None, "tool_calls": [call]}
                    reason = "tool_calls"
                else:
                    message = {"role": "assistant", "content": text if i == 0 else f"{text} ({i})"}
                    reason = "stop"
                choices.append({"index": i, "message": message, "finish_reason": reason, "logprobs": None})
            self._json(200, {**base, "object": "chat.completion", "choices": choices, "usage": usage})
            return
        self._sse_start()
        chunk = {**base, "object": "chat.completion.chunk"}
        self._sse(
            {
                **chunk,
                "choices": [
                    {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                    for i in range(n)
                ],
            }
        )
        if model == "stream-error":
            self._sse(
                {**chunk, "choices": [{"index": 0, "delta": {"content": "Echo:"}, "finish_reason": None}]}
            )
            self._sse({"error": {"message": "the model is overloaded", "type": "server_error"}})
            return
        if tools:
            args = call["function"]["arguments"]
            first = {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            self._sse(
                {**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [first]}, "finish_reason": None}]}
            )
            for piece in (args[:5], args[5:]):
                self._sse(
                    {
                        **chunk,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]},
                                "finish_reason": None,
                            }
                        ],
                    }
                )
            self._sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        else:
            words = text.split(" ")
            for i in range(n):
                for j, word in enumerate(words):
                    piece = word if j == 0 else " " + word
                    self._sse(
                        {
                            **chunk,
                            "choices": [{"index": i, "delta": {"content": piece}, "finish_reason": None}],
                        }
                    )
                if i:
                    self._sse(
                        {
                            **chunk,
                            "choices": [{"index": i, "delta": {"content": f" ({i})"}, "finish_reason": None}],
                        }
                    )
            self._sse(
                {**chunk, "choices": [{"index": i, "delta": {}, "finish_reason": "stop"} for i in range(n)]}
            )
        if (body.get("stream_options") or {}).get("include_usage"):
            self._sse({**chunk, "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _responses(self, body: dict[str, Any], model: str) -> None:
        tools = body.get("tools") or []
        prompt = _responses_text(body.get("input"))
        text = f"Echo: {prompt}"
        if tools:
            item = {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": _tool_name(tools[0]),
                "arguments": '{"a": 1, "b": 2}',
                "status": "completed",
            }
        else:
            item = {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        usage = {
            "input_tokens": _tokens(prompt) + 3,
            "output_tokens": _tokens(text),
            "total_tokens": 0,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        response = {
            "id": "resp_1", "object": "response", "created_at": CREATED, "model": f"{model}-2024-08-06",
            "status": "completed", "output": [item], "usage": usage, "parallel_tool_calls": True,
            "tool_choice": "auto", "tools": tools, "instructions": body.get("instructions"),
        }  # fmt: skip
        if not body.get("stream"):
            self._json(200, response)
            return
        self._sse_start()
        started = {**response, "status": "in_progress", "output": [], "usage": None}
        seq = iter(range(1000))
        self._sse(
            {"type": "response.created", "sequence_number": next(seq), "response": started},
            "response.created",
        )
        self._sse(
            {
                "type": "response.output_item.added",
                "sequence_number": next(seq),
                "output_index": 0,
                "item": {**item, "status": "in_progress"},
            },
            "response.output_item.added",
        )
        if not tools:
            for word in text.split(" "):
                self._sse(
                    {
                        "type": "response.output_text.delta",
                        "sequence_number": next(seq),
                        "item_id": "msg_1",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": word + " ",
                        "logprobs": [],
                    },
                    "response.output_text.delta",
                )
        self._sse(
            {
                "type": "response.output_item.done",
                "sequence_number": next(seq),
                "output_index": 0,
                "item": item,
            },
            "response.output_item.done",
        )
        self._sse(
            {"type": "response.completed", "sequence_number": next(seq), "response": response},
            "response.completed",
        )

    def _embeddings(self, body: dict[str, Any], model: str) -> None:
        raw = body.get("input")
        inputs = raw if isinstance(raw, list) else [raw]
        data = []
        for i, text in enumerate(inputs):
            vector = [float(len(str(text))), 0.5, -0.25]
            value: Any = vector
            if body.get("encoding_format") == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(_tokens(str(t)) for t in inputs)
        self._json(
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _completions(self, body: dict[str, Any], model: str) -> None:
        prompt = str(body.get("prompt", ""))
        text = f" Echo: {prompt}"
        usage = {
            "prompt_tokens": _tokens(prompt),
            "completion_tokens": _tokens(text),
            "total_tokens": _tokens(prompt) + _tokens(text),
        }
        base = {"id": "cmpl-1", "object": "text_completion", "created": CREATED, "model": model}
        if not body.get("stream"):
            self._json(
                200,
                {
                    **base,
                    "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                    "usage": usage,
                },
            )
            return
        self._sse_start()
        for word in text.split(" "):
            self._sse(
                {
                    **base,
                    "choices": [{"index": 0, "text": word + " ", "finish_reason": None, "logprobs": None}],
                }
            )
        self._sse(
            {**base, "choices": [{"index": 0, "text": "", "finish_reason": "length", "logprobs": None}]}
        )
        self.wfile.write(b"data: [DONE]\n\n")


class OpenAiServer:
    """``with OpenAiServer() as server: OpenAI(base_url=server.base_url, api_key="test")``."""

    class HTTP(ThreadingHTTPServer):
        daemon_threads = True
        owner: OpenAiServer

        def handle_error(self, request: Any, client_address: Any) -> None:
            """A client that gave up (the timeout test) is expected; anything else is printed."""
            import sys

            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                super().handle_error(request, client_address)

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._http = OpenAiServer.HTTP(("127.0.0.1", 0), _Handler)
        self._http.owner = self
        self.port = self._http.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._http.serve_forever, name="openai-server", daemon=True)

    def start(self) -> OpenAiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> OpenAiServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
