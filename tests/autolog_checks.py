"""Shared checks for the auto-tracing tests: spans as they arrive on the OTLP wire.

``autologged`` switches a library's ``autolog()`` on for one test and off after it (the
instrumentors patch classes process-wide). The checks state what every autologged trace must
satisfy: one trace id, a tree whose parents all arrived, MLflow's keys, and token usage counted once
(no span with usage has an ancestor with usage).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from tests.otlp_receiver import ReceivedSpan

Autolog = Callable[..., Any]


@pytest.fixture(name="autologged")
def autologged_fixture() -> Iterator[Autolog]:
    """``autologged("anthropic", **kw)`` calls ``mlflow_otel.anthropic.autolog(**kw)``; every library
    switched on is switched off when the test ends."""
    on: list[Any] = []

    def switch_on(name: str, **kwargs: Any) -> Any:
        face = importlib.import_module(f"mlflow_otel.{name}")
        face.autolog(**kwargs)
        on.append(face)
        return face

    yield switch_on
    for face in reversed(on):
        face.autolog(disable=True)


def attr(span: ReceivedSpan, key: str) -> Any:
    """An attribute, JSON-decoded when it holds JSON (``mlflow.spanInputs``, usage, ...)."""
    value = span.attributes[key]
    if isinstance(value, str) and value[:1] in '{["':
        return json.loads(value)
    return value


def usage(span: ReceivedSpan) -> Any:
    return attr(span, "mlflow.chat.tokenUsage") if "mlflow.chat.tokenUsage" in span.attributes else None


def check_tree(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    """One trace, every parent present (one root), usage never on a span and on its ancestor."""
    assert len({s.trace_id for s in spans}) == 1, [(s.name, s.trace_id) for s in spans]
    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if s.parent_id is None]
    assert len(roots) == 1, [s.name for s in roots]
    for span in spans:
        assert span.parent_id is None or span.parent_id in by_id, span.name
    for span in spans:
        if usage(span) is None:
            continue
        parent = by_id.get(span.parent_id) if span.parent_id else None
        while parent is not None:
            assert usage(parent) is None, f"usage on {span.name} and again on its ancestor {parent.name}"
            parent = by_id.get(parent.parent_id) if parent.parent_id else None
    return by_id


def typed(spans: list[ReceivedSpan]) -> dict[str, str]:
    """Span name -> MLflow span type (every span of an autologged trace has one)."""
    return {s.name: s.attributes["mlflow.spanType"] for s in spans}


def total_tokens(spans: list[ReceivedSpan]) -> int:
    return sum(u["total_tokens"] for u in (usage(s) for s in spans) if u)


def claude_chat(client: Any) -> Any:
    """A LangChain chat model (``ClaudeChat``) that calls the Anthropic ``client``: a framework span
    over a provider span, both reporting the same usage (the framework's is demoted)."""
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class ClaudeChat(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "claude-chat"

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
            reply = client.messages.create(
                model="claude-test",
                max_tokens=64,
                messages=[{"role": "user", "content": m.content} for m in messages],
            )
            u = reply.usage
            usage = {
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "total_tokens": u.input_tokens + u.output_tokens,
            }
            message = AIMessage(content=reply.content[0].text, usage_metadata=usage)
            return ChatResult(generations=[ChatGeneration(message=message)])

    return ClaudeChat()
