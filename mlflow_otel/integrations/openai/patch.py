"""The OpenAI client's request layer, wrapped: one span per API call, whatever the endpoint.

``SyncAPIClient.request`` / ``AsyncAPIClient.request`` (``openai._base_client``) are the single
door every resource method goes through, retries included, so wrapping them covers chat, responses,
embeddings and any endpoint added later, for clients created before or after ``autolog()``. The
class attributes are replaced and restored; nothing else in ``openai`` is touched.

A span's life: started (and made current, so HTTP client instrumentations nest under it) when the
request starts; ended when the response is parsed, or, for a stream, when the stream is exhausted,
closed, garbage-collected or fails. Whatever happens in here is caught: a failure to describe a
call costs a counted, rate-limited warning (``autolog_errors``), and the span still ends.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry import trace as otel_trace

from mlflow_otel import semconv as conv
from mlflow_otel._log import warn_limited
from mlflow_otel._runtime import RUNTIME
from mlflow_otel._serialize import dumps
from mlflow_otel._settings import GenAiSettings
from mlflow_otel._settings import load as load_settings
from mlflow_otel._state import STATE
from mlflow_otel.integrations.openai.aggregate import aggregate
from mlflow_otel.processors.normalization import openai_extract as _extract
from mlflow_otel.processors.normalization import openai_messages as _messages
from mlflow_otel.spans.fluent import chunk_event, start_live_span
from mlflow_otel.spans.live import LiveSpan

#: Marks our wrappers, so a second ``autolog()`` never wraps a wrapper.
_MARK = "__mlflow_otel_wrapped__"
#: Set on a span a stream's consumer stopped reading before the end.
STREAM_CLOSED_EARLY = "mlflow_otel.stream.closed_early"


class _State:
    settings: GenAiSettings = GenAiSettings()
    inject_trace_context: bool = False
    originals: dict[type, Callable[..., Any]] = {}
    raw_response_types: tuple[type, ...] = ()
    streaming_response_types: tuple[type, ...] = ()


def _failed(what: str, exc: BaseException) -> None:
    RUNTIME.counters.add("autolog_errors")
    warn_limited(
        f"openai_{what}", "mlflow_otel.openai: could not %s: %r (the call itself is unaffected)", what, exc
    )


def _body(options: Any) -> dict[str, Any]:
    """The JSON the client sends (``json_data`` merged with ``extra_body``), or the query of a GET."""
    body: dict[str, Any] = {}
    data = getattr(options, "json_data", None)
    if isinstance(data, Mapping):
        body.update(data)
    extra = getattr(options, "extra_json", None)
    if isinstance(extra, Mapping):
        body.update(extra)
    if not body:
        params = getattr(options, "params", None)
        if isinstance(params, Mapping):
            body.update(params)
    return body


class _Call:
    """One API call's span, from request to the end of its response or stream."""

    __slots__ = ("chunks", "ended", "endpoint", "live", "settings", "started_ns")

    def __init__(self, live: LiveSpan, endpoint: _extract.Endpoint, settings: GenAiSettings) -> None:
        self.live = live
        self.endpoint = endpoint
        self.settings = settings
        self.chunks: list[tuple[int, Any]] = []
        self.ended = False
        self.started_ns = time.time_ns()

    # --- start ---------------------------------------------------------------------------------
    @classmethod
    def begin(cls, client: Any, options: Any) -> Optional[_Call]:
        try:
            settings = _State.settings
            semconv = settings.semconv
            endpoint = _extract.classify(
                str(getattr(options, "method", "post")), str(getattr(options, "url", ""))
            )
            base_url = str(getattr(client, "base_url", ""))
            provider = _extract.provider_for(base_url, type(client).__name__)
            netloc = urlsplit(base_url).netloc.rsplit("@", 1)[-1]
            body = _body(options)
            attrs = _extract.request_attributes(endpoint, body, provider, netloc, semconv)
            content = STATE.capture_content
            body_json = dumps(body) if content else None
            if content:
                attrs[conv.SPAN_INPUTS] = body_json
                tools = _extract.chat_tools(body)
                if settings.capture_messages and "gen_ai" in semconv:
                    attrs.update(_messages.genai_attributes(endpoint, body, None, tools))
                if "openinference" in semconv:
                    attrs.update(_messages.openinference_attributes(endpoint, body, None, body_json, None))
            live = start_live_span(endpoint.name, endpoint.span_type, attributes=attrs)
            return cls(live, endpoint, settings)
        except Exception as exc:
            _failed("start a span", exc)
            return None

    def activate(self) -> Any:
        return otel_context.attach(otel_trace.set_span_in_context(self.live.otel_span))

    def inject(self, options: Any) -> Any:
        """W3C ``traceparent`` (and the configured propagators' headers) on the outgoing request,
        only when ``autolog(inject_trace_context=True)`` asked for it: OpenAI does not read them,
        and an OpenAI-compatible gateway that does is the user's to opt in to."""
        try:
            headers = dict(options.headers) if isinstance(getattr(options, "headers", None), Mapping) else {}
            propagate.inject(headers, context=otel_trace.set_span_in_context(self.live.otel_span))
            copy = getattr(options, "model_copy", None) or options.copy
            return copy(update={"headers": headers})
        except Exception as exc:
            _failed("inject trace context", exc)
            return options

    # --- end -----------------------------------------------------------------------------------
    def _finish(self, response: Any, status_error: Optional[BaseException] = None, **extra: Any) -> None:
        """Outputs and response attributes, then end; each step guarded, the end unconditional."""
        if self.ended:
            return
        self.ended = True
        live = self.live
        if not live.recording:  # sampled out: nothing to describe
            return
        try:
            semconv = self.settings.semconv
            live.set_attributes(_extract.response_attributes(self.endpoint, response, semconv))
            if extra:
                live.set_attributes(extra)
            if response is not None and STATE.capture_content:
                output_json = dumps(response)
                if live.otel_span.is_recording():
                    live.otel_span.set_attribute(conv.SPAN_OUTPUTS, output_json)
                if self.settings.capture_messages and "gen_ai" in semconv:
                    live.set_attributes(_messages.genai_attributes(self.endpoint, None, response, None))
                if "openinference" in semconv:
                    live.set_attributes(
                        _messages.openinference_attributes(self.endpoint, None, response, None, output_json)
                    )
        except Exception as exc:
            _failed("describe the response", exc)
        if status_error is not None:
            with contextlib.suppress(Exception):
                code = getattr(status_error, "status_code", None)
                live.set_attribute("error.type", str(code) if code else type(status_error).__qualname__)
                live.record_exception(status_error)
        live.end()

    def fail(self, exc: BaseException) -> None:
        self._finish(None, exc)

    def succeed(self, result: Any) -> Any:
        """Called with what ``request`` returned; returns it unchanged (a stream, wrapped)."""
        try:
            parsed = result
            if _State.raw_response_types and isinstance(result, _State.raw_response_types):
                parsed = result.parse()  # cached by the raw response: the user's parse() gets the same
            elif _State.streaming_response_types and isinstance(result, _State.streaming_response_types):
                # with_streaming_response: the body is the caller's to read; we do not consume it.
                self._finish(None, None, **{"http.response.status_code": result.status_code})
                return result
            if hasattr(parsed, "_iterator") and hasattr(parsed, "response"):
                _wrap_stream(self, parsed)
                return result
            self._finish(_extract.plain(parsed))
        except Exception as exc:
            _failed("read the response", exc)
            self._finish(None)
        return result

    # --- streams -------------------------------------------------------------------------------
    def chunk(self, item: Any) -> None:
        if self.live.recording:
            self.chunks.append((time.time_ns(), item))

    def end_stream(self, error: Optional[BaseException] = None, closed_early: bool = False) -> None:
        if self.ended:
            return
        response = None
        try:
            plain = [_extract.plain(c) for _, c in self.chunks]
            for index, ((ts, _), item) in enumerate(zip(self.chunks, plain)):
                chunk_event(self.live, index, item, ts)
            response = aggregate(self.endpoint, plain)
        except Exception as exc:
            _failed("assemble the stream", exc)
        extra = {STREAM_CLOSED_EARLY: True} if closed_early else {}
        self.chunks = []
        self._finish(response, error, **extra)


def _wrap_stream(call: _Call, stream: Any) -> None:
    """Replace the stream's item iterator by one that records chunks and ends the span, and its
    ``close`` by one that ends the span too (``with`` blocks and explicit closes)."""
    inner = stream._iterator
    if hasattr(inner, "__anext__"):

        async def agen() -> Any:
            try:
                async for item in inner:
                    call.chunk(item)
                    yield item
            except GeneratorExit:
                call.end_stream(closed_early=True)
                with contextlib.suppress(Exception):
                    await inner.aclose()
                raise
            except BaseException as exc:
                call.end_stream(error=exc)
                raise
            call.end_stream()

        stream._iterator = agen()
        original_aclose = stream.close

        async def close() -> None:
            try:
                await original_aclose()
            finally:
                call.end_stream(closed_early=True)

        stream.close = close
        return

    def gen() -> Any:
        try:
            for item in inner:
                call.chunk(item)
                yield item
        except GeneratorExit:
            call.end_stream(closed_early=True)
            with contextlib.suppress(Exception):
                inner.close()
            raise
        except BaseException as exc:
            call.end_stream(error=exc)
            raise
        call.end_stream()

    stream._iterator = gen()
    original_close = stream.close

    def sync_close() -> None:
        try:
            original_close()
        finally:
            call.end_stream(closed_early=True)

    stream.close = sync_close


# --- the wrappers -----------------------------------------------------------------------------------
def _enter(client: Any, options: Any) -> Optional[tuple[_Call, Any, Any]]:
    """Before the request: None to call through untraced, else the call, the options to send (with
    trace headers if asked) and the context token that makes the call's span current."""
    if not STATE.enabled:
        return None
    call = _Call.begin(client, options)
    if call is None:
        return None
    if _State.inject_trace_context:
        options = call.inject(options)
    return call, options, call.activate()


def _leave(token: Any) -> None:
    with contextlib.suppress(Exception):
        otel_context.detach(token)


def _sync_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        entered = _enter(self, options)
        if entered is None:
            return original(self, cast_to, options, *args, **kwargs)
        call, options, token = entered
        try:
            result = original(self, cast_to, options, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            _leave(token)
        return call.succeed(result)

    setattr(request, _MARK, True)
    return request


def _async_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        entered = _enter(self, options)
        if entered is None:
            return await original(self, cast_to, options, *args, **kwargs)
        call, options, token = entered
        try:
            result = await original(self, cast_to, options, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            _leave(token)
        return call.succeed(result)

    setattr(request, _MARK, True)
    return request


def install(inject_trace_context: bool) -> None:
    """Wrap both clients' ``request`` (idempotent); settings are re-read on every call."""
    from openai import _base_client

    _State.settings = load_settings().genai  # read at each autolog(), as documented
    _State.inject_trace_context = inject_trace_context
    raw: list[type] = []
    streaming: list[type] = []
    with contextlib.suppress(ImportError):
        from openai._legacy_response import LegacyAPIResponse

        raw.append(LegacyAPIResponse)
    with contextlib.suppress(ImportError):
        from openai._response import BaseAPIResponse

        streaming.append(BaseAPIResponse)
    _State.raw_response_types = tuple(raw)
    _State.streaming_response_types = tuple(streaming)
    for cls, wrap in (
        (_base_client.SyncAPIClient, _sync_wrapper),
        (_base_client.AsyncAPIClient, _async_wrapper),
    ):
        current = cls.__dict__["request"]
        if getattr(current, _MARK, False):
            continue
        _State.originals[cls] = current
        cls.request = wrap(current)  # type: ignore[method-assign]


def uninstall() -> None:
    """Put the original methods back (only if ours are still the ones installed)."""
    for cls, original in list(_State.originals.items()):
        if getattr(cls.__dict__.get("request"), _MARK, False):
            cls.request = original  # type: ignore[method-assign]
        del _State.originals[cls]


def installed() -> bool:
    return bool(_State.originals)
