"""LangChain runs as the current OpenTelemetry span, so calls made inside them nest under them.

OpenInference's LangChain tracer starts a span per run but deliberately never makes it the current
span (``openinference/instrumentation/langchain/_tracer.py``: a callback system cannot guarantee the
detach). Then a provider call inside a chat model or a tool (the Anthropic client, our OpenAI
integration, ``@mlflow_otel.trace``) starts a trace of its own instead of nesting. MLflow's own
LangChain tracer does make its run spans current (``mlflow/langchain/langchain_tracer.py``); this
handler does the same for OpenInference's spans: on a run's start it attaches the run's span
(``LangChainInstrumentor.get_span``) to the context, on its end or error it detaches it. It runs
inline (``run_inline``), in the context the run itself runs in, and a detach that fails (a context
from another task) is ignored, so a lost token can never leave a span current elsewhere.

It joins every LangChain callback manager through ``langchain_core.tracers.context
.register_configure_hook`` once; ``enabled`` switches it with ``autolog``.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any, Optional
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace


def _handler_class() -> type:
    from langchain_core.callbacks import BaseCallbackHandler

    class CurrentSpanHandler(BaseCallbackHandler):
        """Attach each run's OpenInference span as the current span while the run runs."""

        run_inline = True

        def __init__(self) -> None:
            self.enabled = False
            self.instrumentor: Any = None
            self._tokens: dict[UUID, object] = {}

        def _start(self, run_id: UUID, **kwargs: Any) -> None:
            if not self.enabled or self.instrumentor is None:
                return
            span = self.instrumentor.get_span(run_id)
            if span is not None:
                self._tokens[run_id] = otel_context.attach(otel_trace.set_span_in_context(span))

        def _end(self, run_id: UUID, **kwargs: Any) -> None:
            token = self._tokens.pop(run_id, None)
            if token is not None:
                with contextlib.suppress(Exception):
                    otel_context.detach(token)  # type: ignore[arg-type]

        def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._start(run_id)

        def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._start(run_id)

        def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._start(run_id)

        def on_tool_start(self, serialized: Any, input_str: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._start(run_id)

        def on_retriever_start(self, serialized: Any, query: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._start(run_id)

        def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id)

        def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id)

        def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id)

        def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id)

        def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id)

        def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id)

        def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id)

        def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id)

    return CurrentSpanHandler


#: The one handler, created and registered with LangChain at the first ``enable``.
_handler: list[Any] = []


def enable(instrumentor: Any) -> None:
    if not _handler:
        from langchain_core.tracers.context import register_configure_hook

        handler = _handler_class()()
        register_configure_hook(ContextVar("mlflow_otel_langchain_context", default=handler), True)
        _handler.append(handler)
    _handler[0].instrumentor = instrumentor
    _handler[0].enabled = True


def disable() -> None:
    if _handler:
        _handler[0].enabled = False
        _handler[0].instrumentor = None


def enabled() -> Optional[bool]:
    return _handler[0].enabled if _handler else None
