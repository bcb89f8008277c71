"""MLflow's fluent tracing API: ``trace``, ``start_span``, ``update_current_trace`` and friends.

Behaviour follows MLflow's ``mlflow/tracing/fluent.py``: inputs are the bound arguments without
``self``/``cls``; outputs the return value (generators: the list of items or the reducer's result,
each item also a ``mlflow.chunk.item.<i>`` event); an exception sets status ERROR with ``Type: msg``,
adds an ``exception`` event and is re-raised untouched; a span that ends without error gets OK.

The builders run on the request path, so they do the least that must happen at call time: start the
OTel span, capture inputs/outputs as JSON (a later mutation of the caller's objects must not change
what is exported) and end it. Anything that fails in here is swallowed: user code runs on untraced.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
from collections.abc import AsyncGenerator, Generator, Sequence
from json.encoder import encode_basestring
from typing import Any, Callable, Optional, Union

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace.propagation import _SPAN_KEY

from mlflow_otel import semconv as conv
from mlflow_otel._log import warn_limited
from mlflow_otel._serialize import dumps, to_attribute_value
from mlflow_otel._state import STATE
from mlflow_otel.exceptions import MlflowException
from mlflow_otel.otlp.ids import mlflow_trace_id, parse_trace_id
from mlflow_otel.spans.live import NO_OP_SPAN, LiveSpan, NoOpSpan
from mlflow_otel.spans.propagation import baggage_attributes
from mlflow_otel.spans.sampling import RATIO_OVERRIDE_KEY
from mlflow_otel.spans.tracer import RUNNING, LeanTracer, RecordingSpan
from mlflow_otel.spans.types import Link, SpanEvent, SpanLogLevel, SpanType, default_log_level

_MISSING = object()

#: ``tracing.set_destination(dest, context_local=True)``: where new traces in this context go.
_context_destinations: contextvars.ContextVar[Optional[tuple[Any, ...]]] = contextvars.ContextVar(
    "mlflow_otel_destinations", default=None
)


def set_context_destination(destinations: Optional[tuple[Any, ...]]) -> None:
    """Route the traces started in the current context (None: the process-wide destinations)."""
    _context_destinations.set(destinations)


class TraceContext:
    """What ``tracing.context(...)`` stamps on the traces started inside it (MLflow 3.11+)."""

    __slots__ = ("attributes", "enabled")

    def __init__(self, attributes: dict[str, str], enabled: Optional[bool]) -> None:
        #: Root-span attributes: ``mlflow.traceTag.*``, ``mlflow.traceMetadata.*``, session and user.
        self.attributes = attributes
        self.enabled = enabled


#: The innermost ``tracing.context`` block, merged with the blocks around it.
_trace_context: contextvars.ContextVar[Optional[TraceContext]] = contextvars.ContextVar(
    "mlflow_otel_trace_context", default=None
)


def current_trace_context() -> Optional[TraceContext]:
    return _trace_context.get()


def enter_trace_context(context: TraceContext) -> contextvars.Token[Optional[TraceContext]]:
    outer = _trace_context.get()
    if outer is not None:
        merged = {**outer.attributes, **context.attributes}
        enabled = context.enabled if context.enabled is not None else outer.enabled
        context = TraceContext(merged, enabled)
    return _trace_context.set(context)


def exit_trace_context(token: contextvars.Token[Optional[TraceContext]]) -> None:
    with contextlib.suppress(ValueError):  # a token from another context: nothing to restore
        _trace_context.reset(token)


def suppressed() -> bool:
    """True inside ``tracing.context(enabled=False)``: spans are not created there."""
    context = _trace_context.get()
    return context is not None and context.enabled is False


# --- OTel's context on the request path --------------------------------------------------------------
#: The ContextVar under OTel's default runtime context (``opentelemetry.context``): the request path
#: reads and sets it directly, the same variable OTel's ``attach`` / ``get_current`` use, without
#: their Python layers (three calls deep per read). Any other runtime context (``OTEL_PYTHON_CONTEXT``)
#: goes through OTel's API.
#: (Read defensively: private names of opentelemetry-api; without them the API is used.)
_runtime_context = getattr(otel_context, "_RUNTIME_CONTEXT", None)
_context_var: Any = getattr(_runtime_context, "_current_context", None)
_default_runtime = type(_runtime_context) is ContextVarsRuntimeContext
if not (_default_runtime and isinstance(_context_var, contextvars.ContextVar)):
    _context_var = None


def _current_span(parent: Optional[Context]) -> Any:
    """``opentelemetry.trace.get_current_span(parent)``: the span in ``parent`` (None: the current
    context), or OTel's invalid span."""
    if parent is None:
        if _context_var is None:
            return otel_trace.get_current_span()
        parent = _context_var.get()
    span = parent.get(_SPAN_KEY)
    if span.__class__ is RecordingSpan:  # ours: no ABC check
        return span
    if span is None or not isinstance(span, otel_trace.Span):
        return otel_trace.INVALID_SPAN
    return span


class SpanExtras:
    """The rarely used span options (log level, links, description), validated once."""

    __slots__ = ("description", "links", "log_level")

    def __init__(
        self,
        log_level: Union[SpanLogLevel, str, None] = None,
        links: Optional[Sequence[Link]] = None,
        description: Optional[str] = None,
    ) -> None:
        #: Raises MlflowException for an invalid level, as MLflow does.
        self.log_level = int(SpanLogLevel.from_value(log_level)) if log_level is not None else None
        self.links = otel_links(links)
        self.description = description

    @classmethod
    def of(
        cls,
        log_level: Union[SpanLogLevel, str, None] = None,
        links: Optional[Sequence[Link]] = None,
        description: Optional[str] = None,
    ) -> Optional[SpanExtras]:
        if log_level is None and not links and description is None:
            return None
        return cls(log_level, links, description)


def otel_links(links: Optional[Sequence[Link]]) -> Optional[list[otel_trace.Link]]:
    """OTel span links for MLflow ``Link`` entities; an invalid one is skipped with a warning."""
    if not links:
        return None
    out = []
    for link in links:
        try:
            if not isinstance(link, Link):
                raise MlflowException.invalid_parameter_value(
                    f"The `link` parameter must be a Link instance, got {type(link).__name__}."
                )
            trace_id, span_id = link.otel_ids()
            context = otel_trace.SpanContext(trace_id, span_id, is_remote=True)
            out.append(otel_trace.Link(context, dict(link.attributes) if link.attributes else None))
        except MlflowException as exc:
            warn_limited("link", "Skipping invalid link: %s", exc)
    return out or None


#: Default log level by span type, as an int, for the request path.
_DEFAULT_LEVELS = {t: int(default_log_level(t)) for t in vars(SpanType).values() if isinstance(t, str)}
_DEBUG = int(SpanLogLevel.DEBUG)


# --- building spans ---------------------------------------------------------------------------------
def start_live_span(
    name: str,
    span_type: str = SpanType.UNKNOWN,
    parent: Optional[Context] = None,
    attributes: Optional[dict[str, Any]] = None,
    inputs: Any = _MISSING,
    function_name_json: Optional[str] = None,
    start_time_ns: Optional[int] = None,
    destination: Any = None,
    sampling_ratio: Optional[float] = None,
    extras: Optional[SpanExtras] = None,
) -> LiveSpan:
    """Start an OTel span with MLflow's attributes; ``parent`` None means the current context.

    ``destination`` and ``sampling_ratio`` only apply when the span starts a new trace (MLflow's
    rule for ``trace_destination``); inside a trace, the root's choices hold. Every span carries
    its log level (MLflow 3.18: the span type's default unless one is given).
    """
    attrs: dict[str, Any] = {
        conv.SPAN_TYPE: str(span_type),
        conv.LOG_LEVEL: _DEFAULT_LEVELS.get(span_type, _DEBUG),
    }
    links = None
    if extras is not None:
        if extras.log_level is not None:
            attrs[conv.LOG_LEVEL] = extras.log_level
        if extras.description is not None:
            attrs[conv.SPAN_DESCRIPTION] = str(extras.description)
        if extras.links:
            links = [*(links or ()), *extras.links]
    parent_ctx = _current_span(parent).get_span_context()
    in_trace = parent_ctx.is_valid
    registry = RUNNING.registry
    state = registry.open_trace(parent_ctx.trace_id) if in_trace else None
    if state is None and in_trace and registry.timed_out(parent_ctx.trace_id):
        # The timeout ended this trace and exported it; the code it timed out on runs on. Its new
        # spans start a trace of their own, linked to where they came from, rather than appear
        # under an ended root (documented in docs/mlflow-compatibility.md).
        RUNNING.counters.add("spans_after_trace_timeout")
        follows = otel_trace.Link(parent_ctx, {"mlflow_otel.link": "continues_timed_out_trace"})
        links = [follows, *(links or ())]
        parent = Context()
        parent_ctx = otel_trace.INVALID_SPAN_CONTEXT
        in_trace = False
    if sampling_ratio is not None and not in_trace:
        attrs[RATIO_OVERRIDE_KEY] = float(sampling_ratio)
    if state is not None:
        attrs[conv.TRACE_REQUEST_ID] = state.request_id_json
    if function_name_json is not None:
        attrs[conv.FUNCTION_NAME] = function_name_json
    if inputs is not _MISSING and STATE.capture_content:
        attrs[conv.SPAN_INPUTS] = dumps(inputs, STATE.capture_limit)
    json_keys = None
    if attributes:
        for key, value in attributes.items():
            encoded = to_attribute_value(value)
            if isinstance(encoded, str) and not isinstance(value, str):
                json_keys = json_keys or set()
                json_keys.add(key)
            attrs[str(key)] = encoded

    tracer = RUNNING.tracer()
    if tracer.__class__ is LeanTracer:  # (name, context, attributes, start_time, links, parent_span_context)
        otel_span = tracer.start_span(name, parent, attrs, start_time_ns, links, parent_ctx)
    else:
        otel_span = tracer.start_span(
            name, context=parent, attributes=attrs, start_time=start_time_ns, links=links
        )
    if not otel_span.is_recording():  # sampled out: carries context, records nothing
        RUNNING.counters.add("spans_sampled_out")
        return LiveSpan(otel_span, None, span_type, name)
    span_ctx = otel_span.get_span_context()
    if state is None:
        state = registry.join_trace(span_ctx.trace_id)
        otel_span.set_attribute(conv.TRACE_REQUEST_ID, state.request_id_json)
        if state.root is None:
            chosen = (destination,) if destination is not None else _context_destinations.get()
            if chosen is None:
                chosen = STATE.destinations  # tracing.set_destination, as it was when the trace began
            if chosen is not None:
                state.destinations = chosen
            context = _trace_context.get()
            if context is not None and context.attributes:
                otel_span.set_attributes(context.attributes)
            if in_trace:  # a fragment of a distributed trace: opt-in baggage applies
                incoming = baggage_attributes(parent)
                if incoming:
                    otel_span.set_attributes(incoming)
    live = LiveSpan(otel_span, state, span_type, name, json_keys)
    registry.track(live, span_ctx.span_id, state)
    return live


def _activate(live: LiveSpan) -> object:
    """``attach(set_span_in_context(span))``, as OTel does it: a copy of the current context with
    the span in it."""
    if _context_var is None:
        return otel_context.attach(otel_trace.set_span_in_context(live.otel_span))
    values = _context_var.get().copy()
    values[_SPAN_KEY] = live.otel_span
    return _context_var.set(Context(values))


def _deactivate(token: object) -> None:
    if _context_var is not None:
        try:
            _context_var.reset(token)  # type: ignore[arg-type]
            return
        except Exception:  # a token of another context: OTel's detach logs the error
            pass
    with contextlib.suppress(Exception):  # it must never raise here
        otel_context.detach(token)  # type: ignore[arg-type]


# --- inputs -----------------------------------------------------------------------------------------
class _InputBinder:
    """Maps call arguments to MLflow's inputs dict: bound arguments with defaults, no self/cls.

    The signature is inspected once per decorated function, and the common all-positional call is
    bound without ``Signature.bind``.
    """

    __slots__ = ("_fast_names", "_signature")

    def __init__(self, func: Callable[..., Any]) -> None:
        try:
            self._signature: Optional[inspect.Signature] = inspect.signature(func)
        except (TypeError, ValueError):  # some builtins have no signature
            self._signature = None
        self._fast_names: Optional[tuple[str, ...]] = None
        if self._signature is not None:
            params = list(self._signature.parameters.values())
            simple = all(
                p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
                for p in params
            )
            if simple:
                self._fast_names = tuple(p.name for p in params)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names = self._fast_names
        if names is not None and not kwargs and len(args) == len(names):
            inputs = dict(zip(names, args))
        else:
            try:
                if self._signature is None:
                    raise TypeError
                bound = self._signature.bind(*args, **kwargs)
                bound.apply_defaults()
                inputs = dict(bound.arguments)
            except TypeError:
                inputs = {"args": list(args), **kwargs} if args else dict(kwargs)
        if "self" in inputs:
            del inputs["self"]
        if "cls" in inputs:
            del inputs["cls"]
        return inputs


# --- the decorator ----------------------------------------------------------------------------------
def _end_ok(live: LiveSpan, outputs: Any) -> None:
    try:
        otel_span = live.otel_span
        if otel_span.__class__ is RecordingSpan:  # the lean tracer's span: one call
            if STATE.capture_content:
                otel_span.end_ok(conv.SPAN_OUTPUTS, dumps(outputs, STATE.capture_limit))
            else:
                otel_span.end_ok(None, None)
            return
        live.set_outputs(outputs)
        live.end()
    except Exception as exc:  # pragma: no cover - LiveSpan methods already guard themselves
        warn_limited("end_span", "Could not end span: %s", exc)


def _end_error(live: LiveSpan, exc: BaseException, partial_outputs: Any = _MISSING) -> None:
    """Status ERROR, an ``exception`` event, and for streams the items produced before the error."""
    try:
        if partial_outputs is not _MISSING:
            live.set_outputs(partial_outputs)
        live.record_exception(exc)
        live.end()
    except Exception as inner:  # pragma: no cover
        warn_limited("end_span", "Could not record exception on span: %s", inner)


def _reduce(outputs: list[Any], reducer: Optional[Callable[[list[Any]], Any]]) -> Any:
    if reducer is None:
        return outputs
    try:
        return reducer(outputs)
    except Exception as exc:
        warn_limited("output_reducer", "output_reducer raised %r; recording the raw chunks instead.", exc)
        return outputs


def chunk_event(live: LiveSpan, index: int, item: Any, timestamp_ns: Optional[int] = None) -> Optional[str]:
    """One streamed item as MLflow's ``mlflow.chunk.item.<i>`` event (generators, OpenAI streams);
    returns the item's JSON (None with content capture off)."""
    if not STATE.capture_content:
        return None
    text = dumps(item, STATE.capture_limit)
    live.add_event(
        SpanEvent(
            conv.CHUNK_EVENT_NAME_FORMAT.format(index=index),
            timestamp=timestamp_ns,
            attributes={conv.CHUNK_EVENT_VALUE_KEY: text},
        )
    )
    return text


class _Stream:
    """The items a traced generator yielded, each encoded once: for its chunk event and, with no
    ``output_reducer``, again as a member of the outputs (joined, not encoded a second time)."""

    __slots__ = ("items", "live", "reducer", "texts")

    def __init__(self, live: LiveSpan, reducer: Optional[Callable[[list[Any]], Any]]) -> None:
        self.live, self.reducer = live, reducer
        self.items: list[Any] = []
        self.texts: list[str] = []

    def add(self, item: Any) -> None:
        text = chunk_event(self.live, len(self.items), item)
        self.items.append(item)
        if text is not None:
            self.texts.append(text)

    def set_outputs(self) -> None:
        """The outputs: the reducer's value, else the list of items within the capture budget
        (a quarter over the limit, like ``dumps``; the rest counted in a marker)."""
        otel_span = self.live.otel_span
        if self.reducer is not None or len(self.texts) != len(self.items):
            self.live.set_outputs(_reduce(self.items, self.reducer))
        elif otel_span.is_recording() and STATE.capture_content:
            budget = STATE.capture_limit + STATE.capture_limit // 4
            parts: list[str] = []
            for text in self.texts:
                budget -= len(text) + 1
                if budget < 0:
                    parts.append(encode_basestring(f"…[{len(self.texts) - len(parts)} more items truncated]"))
                    break
                parts.append(text)
            otel_span.set_attribute(conv.SPAN_OUTPUTS, "[" + ",".join(parts) + "]")

    def end_ok(self) -> None:
        try:
            self.set_outputs()
            self.live.end()
        except Exception as exc:  # pragma: no cover - LiveSpan methods already guard themselves
            warn_limited("end_span", "Could not end span: %s", exc)

    def end_error(self, exc: BaseException) -> None:
        """Status ERROR, an ``exception`` event, and the items produced before the error."""
        try:
            if self.items:
                self.set_outputs()
            self.live.record_exception(exc)
            self.live.end()
        except Exception as inner:  # pragma: no cover
            warn_limited("end_span", "Could not record exception on span: %s", inner)


class _Traced:
    """What one decorated function needs at call time, computed once at decoration."""

    __slots__ = (
        "attributes",
        "binder",
        "destination",
        "extras",
        "function_name",
        "function_name_json",
        "name",
        "reducer",
        "sampling_ratio",
        "span_type",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        name: Optional[str],
        span_type: str,
        attributes: Any,
        reducer: Any,
        destination: Any = None,
        sampling_ratio: Optional[float] = None,
        extras: Optional[SpanExtras] = None,
    ):
        self.extras = extras
        self.function_name = getattr(func, "__name__", None) or type(func).__name__
        self.function_name_json = dumps(self.function_name)  # once, not per call
        self.name = name or self.function_name
        self.span_type = span_type
        self.attributes = dict(attributes) if attributes else None
        self.reducer = reducer
        self.binder = _InputBinder(func)
        self.destination = destination
        self.sampling_ratio = sampling_ratio

    def start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Optional[LiveSpan]:
        context = _trace_context.get()
        if context is not None and context.enabled is False:  # suppressed(), inlined
            return None
        try:
            return start_live_span(  # positional: the request path pays for keyword matching
                self.name,
                self.span_type,
                None,
                self.attributes,
                self.binder.bind(args, kwargs),
                self.function_name_json,
                None,
                self.destination,
                self.sampling_ratio,
                self.extras,
            )
        except Exception as exc:
            warn_limited("start_span", "Could not start span %r; the call runs untraced: %s", self.name, exc)
            return None


def _wrap(func: Callable[..., Any], spec: _Traced) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            live = spec.start(args, kwargs) if STATE.enabled else None
            if live is None:
                async for item in func(*args, **kwargs):
                    yield item
                return
            ctx = otel_trace.set_span_in_context(live.otel_span)
            stream = _Stream(live, spec.reducer)
            token = otel_context.attach(ctx)
            try:
                agen = func(*args, **kwargs)
            except BaseException as exc:
                _end_error(live, exc)
                raise
            finally:
                _deactivate(token)
            to_send: Any = None
            to_throw: Optional[BaseException] = None
            while True:
                token = otel_context.attach(ctx)
                try:
                    if to_throw is not None:
                        item = await agen.athrow(to_throw)
                    else:
                        item = await agen.asend(to_send)
                except StopAsyncIteration:
                    break
                except BaseException as exc:  # includes CancelledError: the span still ends
                    stream.end_error(exc)
                    raise
                finally:
                    _deactivate(token)
                stream.add(item)
                to_throw = None
                try:
                    to_send = yield item
                except GeneratorExit:  # closed early by the consumer
                    stream.end_ok()
                    await agen.aclose()
                    raise
                except BaseException as exc:
                    to_throw = exc
            stream.end_ok()

        return async_gen_wrapper

    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            live = spec.start(args, kwargs) if STATE.enabled else None
            if live is None:
                return (yield from func(*args, **kwargs))
            ctx = otel_trace.set_span_in_context(live.otel_span)
            stream = _Stream(live, spec.reducer)
            token = otel_context.attach(ctx)
            try:
                gen = func(*args, **kwargs)
            except BaseException as exc:
                _end_error(live, exc)
                raise
            finally:
                _deactivate(token)
            to_send: Any = None
            to_throw: Optional[BaseException] = None
            while True:
                token = otel_context.attach(ctx)
                try:
                    item = gen.throw(to_throw) if to_throw is not None else gen.send(to_send)
                except StopIteration as stop:
                    stream.end_ok()
                    return stop.value
                except BaseException as exc:
                    stream.end_error(exc)
                    raise
                finally:
                    _deactivate(token)
                stream.add(item)
                to_throw = None
                try:
                    to_send = yield item
                except GeneratorExit:  # closed early (break, close(), garbage collection)
                    stream.end_ok()
                    gen.close()
                    raise
                except BaseException as exc:
                    to_throw = exc

        return gen_wrapper

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            live = spec.start(args, kwargs) if STATE.enabled else None
            if live is None:
                return await func(*args, **kwargs)
            token = _activate(live)
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                _end_error(live, exc)
                raise
            finally:
                _deactivate(token)
            _end_ok(live, result)
            return result

        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not STATE.enabled:
            return func(*args, **kwargs)
        live = spec.start(args, kwargs)
        if live is None:
            return func(*args, **kwargs)
        token = _activate(live)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            _end_error(live, exc)
            raise
        finally:
            _deactivate(token)
        _end_ok(live, result)
        return result

    return wrapper


def trace(
    func: Optional[Callable[..., Any]] = None,
    name: Optional[str] = None,
    span_type: str = SpanType.UNKNOWN,
    attributes: Optional[dict[str, Any]] = None,
    output_reducer: Optional[Callable[[list[Any]], Any]] = None,
    trace_destination: Any = None,
    sampling_ratio_override: Optional[float] = None,
    log_level: Union[SpanLogLevel, str, None] = None,
    links: Optional[list[Link]] = None,
    description: Optional[str] = None,
) -> Any:
    """Trace a function: ``@trace``, ``@trace(name=..., span_type=...)`` or ``trace(math.pow)``.

    Works for sync and async functions, generators and async generators (``output_reducer`` turns
    the list of yielded items into the recorded output), and above or below ``classmethod``,
    ``staticmethod`` and ``property``. ``trace_destination`` and ``sampling_ratio_override`` apply
    when the call starts a new trace. An invalid ``sampling_ratio_override`` or ``log_level``
    raises ``MlflowException`` here, at decoration, as in MLflow; nothing raises at call time.
    """
    if sampling_ratio_override is not None and not 0.0 <= float(sampling_ratio_override) <= 1.0:
        raise MlflowException.invalid_parameter_value(
            f"sampling_ratio_override must be between 0.0 and 1.0, got {sampling_ratio_override}"
        )
    extras = SpanExtras.of(log_level, links, description)

    def decorator(fn: Any) -> Any:
        # Descriptors: trace the function inside and wrap it again (MLflow traces all orders).
        if isinstance(fn, (classmethod, staticmethod)):
            return type(fn)(decorator(fn.__func__))
        if isinstance(fn, property):
            getter = decorator(fn.fget) if fn.fget is not None else None
            return property(getter, fn.fset, fn.fdel, fn.__doc__)
        reducer = output_reducer
        if reducer is not None and not (inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)):
            warn_limited("output_reducer", "output_reducer only applies to generator functions; ignored.")
            reducer = None
        spec = _Traced(
            fn, name, span_type, attributes, reducer, trace_destination, sampling_ratio_override, extras
        )
        return _wrap(fn, spec)

    return decorator(func) if func is not None else decorator


# --- the context manager ----------------------------------------------------------------------------
class _SpanContext:
    """``with start_span(...) as span``: the span is current inside the block and ends on exit."""

    __slots__ = (
        "_attributes",
        "_destination",
        "_extras",
        "_live",
        "_name",
        "_run_id",
        "_span_type",
        "_token",
    )

    def __init__(
        self,
        name: str,
        span_type: str,
        attributes: Optional[dict[str, Any]],
        destination: Any,
        extras: Optional[SpanExtras] = None,
        run_id: Optional[str] = None,
    ) -> None:
        self._name = name
        self._span_type = span_type
        self._attributes = attributes
        self._destination = destination
        self._extras = extras
        self._run_id = run_id
        self._live: Optional[LiveSpan] = None
        self._token: object = None

    def __enter__(self) -> Any:
        if not STATE.enabled or suppressed():
            return NO_OP_SPAN
        try:
            self._live = start_live_span(
                self._name,
                self._span_type,
                attributes=self._attributes,
                destination=self._destination,
                extras=self._extras,
            )
            if self._run_id is not None:
                _set_source_run(self._live, self._run_id)
            self._token = _activate(self._live)
        except Exception as exc:
            warn_limited(
                "start_span", "Could not start span %r; the block runs untraced: %s", self._name, exc
            )
            return NO_OP_SPAN
        return self._live

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        live = self._live
        if live is None:
            return
        self._live = None
        if exc is not None:
            _end_error(live, exc)
        else:
            live.end()
        _deactivate(self._token)

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


class _NoOpSpanContext:
    """``start_span`` that could not start: the block runs with a ``NoOpSpan``."""

    def __enter__(self) -> NoOpSpan:
        return NO_OP_SPAN

    def __exit__(self, *exc: Any) -> None:
        return None

    async def __aenter__(self) -> NoOpSpan:
        return NO_OP_SPAN

    async def __aexit__(self, *exc: Any) -> None:
        return None


def _set_source_run(live: LiveSpan, run_id: str) -> None:
    """MLflow's ``run_id=``: the trace's ``mlflow.sourceRun`` metadata, for a root span only."""
    state = live.trace_state
    if state is not None and state.root is live:
        live.otel_span.set_attribute(conv.TRACE_METADATA_PREFIX + conv.SOURCE_RUN, str(run_id))
    elif state is not None:
        warn_limited(
            "run_id",
            "The `run_id` parameter can only be used for root spans, but the span %r is not a root "
            "span. The specified value %r will be ignored.",
            live.name,
            run_id,
        )


def start_span(
    name: str = "span",
    span_type: Optional[str] = SpanType.UNKNOWN,
    attributes: Optional[dict[str, Any]] = None,
    trace_destination: Any = None,
    log_level: Union[SpanLogLevel, str, None] = None,
    run_id: Optional[str] = None,
    links: Optional[list[Link]] = None,
    description: Optional[str] = None,
) -> _SpanContext:
    """A context manager yielding a live span, current in OTel's context inside the block.

    An invalid ``log_level`` makes the block run untraced (MLflow yields a no-op span too)."""
    try:
        extras = SpanExtras.of(log_level, links, description)
    except MlflowException as exc:
        warn_limited("start_span", "Could not start span %r; the block runs untraced: %s", name, exc)
        return _NoOpSpanContext()
    return _SpanContext(name, span_type or SpanType.UNKNOWN, attributes, trace_destination, extras, run_id)


def start_span_no_context(
    name: str,
    span_type: str = SpanType.UNKNOWN,
    parent_span: Any = None,
    inputs: Any = None,
    attributes: Optional[dict[str, Any]] = None,
    tags: Optional[dict[str, Any]] = None,
    metadata: Optional[dict[str, Any]] = None,
    experiment_id: Optional[str] = None,
    start_time_ns: Optional[int] = None,
    log_level: Union[SpanLogLevel, str, None] = None,
    links: Optional[list[Link]] = None,
    description: Optional[str] = None,
) -> Any:
    """Start a span that is not made current (MLflow's ``start_span_no_context``); end it with
    ``span.end()``. Without ``parent_span`` it starts a new trace. Never raises: a failure (an
    invalid log level included) gives a ``NoOpSpan`` and a warning, as in MLflow."""
    if not STATE.enabled or suppressed():
        return NO_OP_SPAN
    try:
        if isinstance(parent_span, NoOpSpan):
            return NO_OP_SPAN
        if parent_span is not None:
            parent = otel_trace.set_span_in_context(parent_span.otel_span)
        else:
            parent = Context()
        destination = None
        if experiment_id is not None and parent_span is None:
            from mlflow_otel.destinations import MlflowExperimentLocation

            destination = MlflowExperimentLocation(str(experiment_id))
        live = start_live_span(
            name,
            span_type,
            parent=parent,
            attributes=attributes,
            inputs=inputs if inputs is not None else _MISSING,
            start_time_ns=start_time_ns,
            destination=destination,
            extras=SpanExtras.of(log_level, links, description),
        )
        if (tags or metadata) and live.trace_state is not None and live.trace_state.root is live:
            live.otel_span.set_attributes(trace_level_attributes(tags, metadata))
        return live
    except Exception as exc:
        warn_limited("start_span", "Failed to start span %r: %s", name, exc)
        return NO_OP_SPAN


# --- the current span and trace ---------------------------------------------------------------------
def get_current_active_span() -> Optional[LiveSpan]:
    """The innermost of our live spans in the current context, or None.

    Inside a sampled-out trace this is a non-recording span whose setters do nothing, so code that
    annotates the current span works the same whether or not its trace is kept.
    """
    current = otel_trace.get_current_span()
    span_ctx = current.get_span_context()
    if not span_ctx.is_valid:
        return None
    live = RUNNING.registry.live_span(span_ctx.span_id)
    if live is None and not current.is_recording() and not span_ctx.is_remote:
        return LiveSpan(current, None, SpanType.UNKNOWN, "")
    return live  # None for a caller's span in another process (MLflow's behaviour)


def get_active_trace_id() -> Optional[str]:
    """MLflow's id (``tr-<hex>``) of the current trace, or None: also None inside a sampled-out
    trace, whose id no backend will ever hold (MLflow's behaviour; the W3C context still carries
    the id with ``sampled=0`` for downstream services)."""
    live = get_current_active_span()
    return live.trace_id if live is not None and live.recording else None


def get_last_active_trace_id(thread_local: bool = False) -> Optional[str]:
    """The id of the most recent trace whose root span ended in this process, or, with
    ``thread_local=True``, in this thread."""
    last = RUNNING.registry.last_trace_id(thread_local)
    return None if last is None else mlflow_trace_id(last)


def _text(value: Any) -> str:
    """MLflow stores trace tags and metadata as ``str(value)``."""
    return value if isinstance(value, str) else str(value)


def trace_level_attributes(
    tags: Optional[dict[str, Any]] = None,
    metadata: Optional[dict[str, Any]] = None,
    session_id: Optional[str] = None,
    user: Optional[str] = None,
) -> dict[str, str]:
    """Trace tags and metadata as root-span attributes (``mlflow.traceTag.<k>``,
    ``mlflow.traceMetadata.<k>``); MLflow's session and user keys also set the semantic-convention
    ``session.id`` / ``user.id``. ``None`` values are left out, as MLflow leaves them out."""
    attrs: dict[str, str] = {}
    meta = dict(metadata or {})
    if session_id is not None:
        meta[conv.MLFLOW_SESSION_KEY] = session_id
    if user is not None:
        meta[conv.MLFLOW_USER_KEY] = user
    for prefix, items in ((conv.TRACE_TAG_PREFIX, tags), (conv.TRACE_METADATA_PREFIX, meta)):
        for key, value in (items or {}).items():
            if value is None:
                continue
            text = _text(value)
            attrs[prefix + str(key)] = text
            if key == conv.MLFLOW_SESSION_KEY:
                attrs[conv.SESSION_ID] = text
            elif key == conv.MLFLOW_USER_KEY:
                attrs[conv.USER_ID] = text
    return attrs


#: ``update_current_trace(state=...)``: the states a user may set (MLflow's rule).
_SETTABLE_STATES = ("OK", "ERROR")


def update_current_trace(
    tags: Optional[dict[str, Any]] = None,
    metadata: Optional[dict[str, Any]] = None,
    client_request_id: Optional[str] = None,
    request_preview: Optional[str] = None,
    response_preview: Optional[str] = None,
    state: Any = None,
    model_id: Optional[str] = None,
    session_id: Optional[str] = None,
    user: Optional[str] = None,
) -> None:
    """Attach trace-level data to the current trace (MLflow 3.18's parameters); it travels on the
    trace's local root span, so every backend sees it and an MLflow server files it in the trace's
    record. The root span stays the span it was: only attributes are added.

    Inside a recording trace, a ``state`` other than OK/ERROR and a preview that is not a string
    raise ``MlflowException`` with MLflow's message, as MLflow does: they are programming errors a
    first traced run shows, not data a request brings; anything else is logged, never raised.
    """
    try:
        live = get_current_active_span()
        trace_state = live.trace_state if live is not None else None
        root = trace_state.root if trace_state is not None else None
    except Exception as exc:
        warn_limited("update_trace", "update_current_trace() failed: %s", exc)
        return
    if root is None or not root.otel_span.is_recording():  # MLflow's order: no trace, no checks
        warn_limited("update_trace", "update_current_trace() was called with no active trace; ignored.")
        return
    if state is not None and str(getattr(state, "value", state)).upper() not in _SETTABLE_STATES:
        raise MlflowException.invalid_parameter_value(
            f"State must be either 'OK' or 'ERROR', but got '{getattr(state, 'value', state)}'."
        )
    for preview, what in ((request_preview, "request_preview"), (response_preview, "response_preview")):
        if preview is not None and not isinstance(preview, str):
            raise MlflowException.invalid_parameter_value(f"The `{what}` parameter must be a string.")
    try:
        meta = dict(metadata or {})
        if model_id is not None:
            meta[conv.MODEL_ID] = model_id
        attrs: dict[str, Any] = trace_level_attributes(tags, meta, session_id, user)
        if client_request_id is not None:
            attrs[conv.CLIENT_REQUEST_ID] = _text(client_request_id)
        if request_preview is not None:
            attrs[conv.REQUEST_PREVIEW] = request_preview
        if response_preview is not None:
            attrs[conv.RESPONSE_PREVIEW] = response_preview
        if state is not None:
            attrs[conv.TRACE_STATE] = str(getattr(state, "value", state)).upper()
        root.otel_span.set_attributes(attrs)
    except Exception as exc:
        warn_limited("update_trace", "update_current_trace() failed: %s", exc)


def set_trace_tag(trace_id: str, key: str, value: Any) -> None:
    """Tag a trace that is still open in this process (its root carries the tag). A finished
    trace's tags are the store's business: ``MlflowClient().set_trace_tag`` on an MLflow server."""
    _on_open_root(trace_id, "set_trace_tag", {conv.TRACE_TAG_PREFIX + str(key): _text(value)})


def delete_trace_tag(trace_id: str, key: str) -> None:
    """Remove a tag from a trace that is still open in this process."""
    _on_open_root(trace_id, "delete_trace_tag", {conv.TRACE_TAG_PREFIX + str(key): None})


def _on_open_root(trace_id: str, what: str, attrs: dict[str, Any]) -> None:
    state = RUNNING.registry.open_trace(parse_trace_id(trace_id))
    root = state.root if state is not None else None
    if root is None or not root.otel_span.is_recording():
        warn_limited(
            what,
            "%s(%r): the trace is not open in this process; for a finished trace use "
            "MlflowClient().%s on an MLflow server.",
            what,
            trace_id,
            what,
        )
        return
    for key, value in attrs.items():
        if value is None:
            root.remove_attribute(key)
        else:
            root.otel_span.set_attribute(key, value)


def log_trace(
    name: str = "Task",
    request: Any = None,
    response: Any = None,
    intermediate_outputs: Optional[dict[str, Any]] = None,
    attributes: Optional[dict[str, Any]] = None,
    tags: Optional[dict[str, str]] = None,
    start_time_ms: Optional[int] = None,
    execution_time_ms: Optional[int] = None,
) -> Optional[str]:
    """A one-span trace from values already known (MLflow's ``log_trace``, deprecated there since
    3.6); returns its id."""
    attrs = dict(attributes or {})
    if intermediate_outputs:
        attrs[conv.INTERMEDIATE_OUTPUTS] = intermediate_outputs
    span = start_span_no_context(
        name,
        inputs=request,
        attributes=attrs,
        tags=tags,
        start_time_ns=start_time_ms * 1_000_000 if start_time_ms else None,
    )
    end_ns = (start_time_ms + execution_time_ms) * 1_000_000 if start_time_ms and execution_time_ms else None
    span.end(outputs=response, end_time_ns=end_ns)
    return None if isinstance(span, NoOpSpan) else span.trace_id


def flush_trace_async_logging(terminate: bool = False, timeout_s: Optional[float] = None) -> bool:
    """Export every finished trace now; returns False if the deadline passed first or any span was
    dropped meanwhile (``tracing.stats()`` counts why: ``dropped.<reason>``).

    This is what a serverless handler calls before returning. The default deadline,
    ``MLFLOW_OTEL_FLUSH_TIMEOUT_SECONDS`` (5 s), suits a request handler, and with it a destination
    that refuses connections is not waited for; an explicit ``timeout_s`` waits for every
    destination (one coming back within it still gets its spans). ``terminate`` also shuts the
    pipeline down (MLflow: "shut down the logging threads"); a later span starts a new one with the
    settings in force: ``tracing.disable()`` and code-set destinations stay, traces open on other
    threads are kept.
    """
    before = RUNNING.counters.dropped()
    ok = RUNNING.flush(timeout_s, timeout_s is not None)
    if RUNNING.counters.dropped() > before:
        ok = False  # spans were dropped meanwhile: tracing.stats() says why (dropped.<reason>)
    if terminate:
        RUNNING.terminate()
    return ok


__all__ = [
    "NoOpSpan",
    "delete_trace_tag",
    "flush_trace_async_logging",
    "get_active_trace_id",
    "get_current_active_span",
    "get_last_active_trace_id",
    "log_trace",
    "set_trace_tag",
    "start_live_span",
    "start_span",
    "start_span_no_context",
    "trace",
    "update_current_trace",
]
