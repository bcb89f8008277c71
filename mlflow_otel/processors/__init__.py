"""The processor chain: the stage between a finished span and its exporter (DESIGN.md section 3).

It runs on the export workers, never on the application's thread. A processor is a plain callable
``fn(span) -> None`` that mutates the span it is given (MLflow's span-processor contract), exactly
like the user hooks registered with ``mlflow_otel.tracing.configure(span_processors=[...])``.
The chain, in order::

    user hooks  ->  content capture switch  ->  redaction  ->  trimming  ->  (user hooks placed after)

Place a hook after the built-ins with the ``BUILTINS`` marker:
``configure(span_processors=[early_hook, BUILTINS, late_hook])``.

Each processor is isolated: one that raises is counted (``processor_errors``) and logged once, its
changes to the span are rolled back, and the span goes on. A processor drops a span on purpose by
raising :class:`DropSpan` (counted as ``dropped.by_processor``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Callable, Optional

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status, StatusCode

from mlflow_otel import _conventions as conv
from mlflow_otel._log import warn_limited
from mlflow_otel._reads import SpanReads
from mlflow_otel._serialize import dumps, loads_or_raw, to_attribute_value
from mlflow_otel._telemetry import COUNTERS

Processor = Callable[["SpanView"], None]


class DropSpan(Exception):
    """Raise from a processor to drop the span on purpose (it is counted, not logged)."""


class _Builtins:
    """Marks where the built-in processors go in ``configure(span_processors=[...])``."""

    def __repr__(self) -> str:
        return "BUILTINS"


BUILTINS = _Builtins()

_MISSING = object()


class SpanView(SpanReads):
    """A finished span as a processor sees it: MLflow's span API, mutable until export.

    Reads are free; the first write copies the attributes (copy-on-write), so processors that only
    look cost nothing, and a raising processor's writes can be rolled back.
    """

    __slots__ = ("_attrs", "_dirty", "_events", "_fresh", "_name", "_span", "_status")

    def __init__(self, span: ReadableSpan) -> None:
        self._span = span
        self._attrs: Any = span.attributes or {}
        self._name = span.name
        self._status = span.status
        self._events: Sequence[Event] = span.events
        self._fresh = False  # True once _attrs is our own copy, writable in place
        self._dirty = False

    # --- state for rollback ----------------------------------------------------------------------
    def _checkpoint(self) -> tuple[Any, ...]:
        self._fresh = False  # the next write copies again, so the checkpoint stays intact
        return (self._attrs, self._name, self._status, self._events, self._dirty)

    def _restore(self, state: tuple[Any, ...]) -> None:
        self._attrs, self._name, self._status, self._events, self._dirty = state
        self._fresh = False

    def writable_attributes(self) -> dict[str, Any]:
        """The attribute dict, copied on first write; processors that edit raw values use it."""
        if not self._fresh:
            self._attrs = dict(self._attrs)
            self._fresh = True
        self._dirty = True
        return self._attrs

    @property
    def raw_attributes(self) -> Any:
        """Attribute values as OTel holds them (JSON strings undecoded). Read-only."""
        return self._attrs

    # --- MLflow span API -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    def set_name(self, name: str) -> None:
        self._name = str(name)
        self._dirty = True

    @property
    def trace_id(self) -> str:
        return "tr-" + format(self._span.context.trace_id, "032x")

    request_id = trace_id

    @property
    def span_id(self) -> str:
        return format(self._span.context.span_id, "016x")

    @property
    def parent_id(self) -> Optional[str]:
        return format(self._span.parent.span_id, "016x") if self._span.parent is not None else None

    @property
    def start_time_ns(self) -> Optional[int]:
        return self._span.start_time

    @property
    def end_time_ns(self) -> Optional[int]:
        return self._span.end_time

    @property
    def span_type(self) -> Optional[str]:
        value = self._attrs.get(conv.SPAN_TYPE)
        return loads_or_raw(value) if isinstance(value, str) and value.startswith('"') else value

    @property
    def attributes(self) -> dict[str, Any]:
        return {k: self._decode(k, v) for k, v in self._attrs.items()}

    def get_attribute(self, key: str) -> Any:
        return self._decode(key, self._attrs.get(key))

    @staticmethod
    def _decode(key: str, value: Any) -> Any:
        if key in conv.JSON_KEYS:
            return loads_or_raw(value)
        return list(value) if isinstance(value, tuple) else value

    def set_inputs(self, inputs: Any) -> None:
        self.writable_attributes()[conv.SPAN_INPUTS] = dumps(inputs)

    def set_outputs(self, outputs: Any) -> None:
        self.writable_attributes()[conv.SPAN_OUTPUTS] = dumps(outputs)

    def set_attribute(self, key: str, value: Any) -> None:
        attrs = self.writable_attributes()
        if value is None:
            attrs.pop(key, None)
        else:
            attrs[str(key)] = to_attribute_value(value)

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def del_attribute(self, key: str) -> None:
        self.writable_attributes().pop(key, None)

    @property
    def status(self) -> Any:
        from mlflow_otel.entities import SpanStatus, SpanStatusCode

        return SpanStatus(SpanStatusCode.from_otel(self._status.status_code), self._status.description or "")

    def set_status(self, status: Any) -> None:
        from mlflow_otel.entities import SpanStatus

        coerced = SpanStatus.coerce(status)
        code = coerced.status_code.to_otel()
        self._status = Status(code, coerced.description or None if code is StatusCode.ERROR else None)
        self._dirty = True

    @property
    def events(self) -> Sequence[Event]:
        return self._events

    def set_events(self, events: Sequence[Event]) -> None:
        self._events = tuple(events)
        self._dirty = True

    # --- result --------------------------------------------------------------------------------------
    def result(self) -> ReadableSpan:
        """The span to export: the original object when nothing changed (byte-identical export)."""
        if not self._dirty:
            return self._span
        s = self._span
        return ReadableSpan(
            name=self._name,
            context=s.context,
            parent=s.parent,
            resource=s.resource,
            attributes=self._attrs,
            events=self._events,
            links=s.links,
            kind=s.kind,
            status=self._status,
            start_time=s.start_time,
            end_time=s.end_time,
            instrumentation_scope=s.instrumentation_scope,
        )


# --- configuration -------------------------------------------------------------------------------------
class ChainConfig:
    """What the chain runs: user hooks around the built-ins. Replaced whole, read without locks."""

    __slots__ = ("after", "before", "builtins", "capture_content")

    def __init__(
        self,
        before: tuple[Processor, ...],
        builtins: tuple[Processor, ...],
        after: tuple[Processor, ...],
        capture_content: bool = True,
    ):
        self.before = before
        self.builtins = builtins
        self.after = after
        self.capture_content = capture_content

    @property
    def processors(self) -> tuple[Processor, ...]:
        return self.before + self.builtins + self.after


_lock = threading.Lock()
_user_hooks: tuple[Any, ...] = ()
_builtin_overrides: dict[str, Any] = {}
_config: Optional[ChainConfig] = None


def _split(hooks: Sequence[Any]) -> tuple[tuple[Processor, ...], tuple[Processor, ...]]:
    items = list(hooks)
    if BUILTINS in items:
        i = items.index(BUILTINS)
        before, after = items[:i], [h for h in items[i + 1 :] if h is not BUILTINS]
    else:
        before, after = items, []
    return tuple(before), tuple(after)


def current_chain() -> ChainConfig:
    """The chain in force, built at first use from settings and ``configure`` calls."""
    config = _config
    if config is not None:
        return config
    with _lock:
        return _rebuild()


def _rebuild() -> ChainConfig:
    """Build the chain. Never raises: a broken built-in leaves the others (and the hooks) running."""
    global _config, _capture
    from mlflow_otel.processors.builtin import build_builtins

    before, after = _split(_user_hooks)
    try:
        builtins, capture_content = build_builtins(_builtin_overrides)
    except Exception as exc:  # pragma: no cover - defensive: settings are parsed safely already
        warn_limited("builtins", "Built-in span processors unavailable: %r", exc)
        builtins, capture_content = (), _capture_from_settings()
    _config = ChainConfig(before, builtins, after, capture_content)
    _capture = capture_content
    return _config


class TracingConfigContext:
    """Returned by ``configure``: the change is in force now; as a context manager, the previous
    configuration comes back on exit (MLflow's ``TracingConfigContext``)."""

    def __init__(self, previous: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
        self._previous = previous

    def __enter__(self) -> TracingConfigContext:
        return self

    def __exit__(self, *exc: Any) -> None:
        global _user_hooks, _builtin_overrides
        with _lock:
            _user_hooks, _builtin_overrides = self._previous
            _rebuild()


def configure(
    span_processors: Optional[Sequence[Any]] = None,
    *,
    capture_content: Optional[bool] = None,
    redaction: Any = _MISSING,
    redaction_defaults: Optional[bool] = None,
    max_attribute_bytes: Optional[int] = None,
    max_span_bytes: Optional[int] = None,
) -> TracingConfigContext:
    """Configure the processor chain; only the arguments given change (MLflow's semantics).

    ``span_processors``: hooks ``fn(span) -> None`` run in order, before the built-ins unless placed
    after ``BUILTINS``. ``capture_content``: False drops inputs, outputs, messages and stream chunks
    (names, types, status, timings, model and token usage stay). ``redaction``: a policy in the OTel
    Collector redaction processor's schema (a dict, a path to a YAML/JSON file), or None to remove
    the user policy. ``redaction_defaults``: False switches the built-in secret patterns off.
    ``max_attribute_bytes`` / ``max_span_bytes``: trimming budgets.
    """
    global _user_hooks, _builtin_overrides
    with _lock:
        previous = (_user_hooks, dict(_builtin_overrides))
        if span_processors is not None:
            hooks = tuple(span_processors)
            for hook in hooks:
                if hook is not BUILTINS and not callable(hook):
                    raise TypeError(f"span processor {hook!r} is not callable")
            _user_hooks = hooks
        updates = {
            "capture_content": capture_content,
            "redaction_defaults": redaction_defaults,
            "max_attribute_bytes": max_attribute_bytes,
            "max_span_bytes": max_span_bytes,
        }
        overrides = dict(_builtin_overrides)
        overrides.update({k: v for k, v in updates.items() if v is not None})
        if redaction is not _MISSING:
            overrides["redaction"] = redaction
        _builtin_overrides = overrides
        _rebuild()
    return TracingConfigContext(previous)


def reset() -> None:
    """Forget code-level configuration (tests); the next use rebuilds from settings."""
    global _user_hooks, _builtin_overrides, _config, _capture
    with _lock:
        _user_hooks, _builtin_overrides, _config, _capture = (), {}, None, None


_capture: Optional[bool] = None


def _capture_from_settings() -> bool:
    from mlflow_otel._settings import load_processor_settings

    return bool(_builtin_overrides.get("capture_content", load_processor_settings().capture_content))


def capture_content_enabled() -> bool:
    """Read on the request path: with content capture off, payloads are not even encoded.

    Only the flag is computed here (one settings read, once); the chain itself is built by the
    export worker, so no regular expression is compiled on the application's thread.
    """
    global _capture
    flag = _capture
    if flag is None:
        flag = _capture = _capture_from_settings()
    return flag


# --- running the chain ---------------------------------------------------------------------------------
def _processor_name(processor: Any) -> str:
    return getattr(processor, "__qualname__", None) or type(processor).__name__


def process(span: ReadableSpan, chain: ChainConfig) -> Optional[ReadableSpan]:
    """Run ``span`` through the chain; None if a processor dropped it."""
    view = SpanView(span)
    for processor in chain.processors:
        state = view._checkpoint()
        try:
            processor(view)
        except DropSpan:
            COUNTERS.add("dropped.by_processor")
            return None
        except Exception as exc:
            view._restore(state)
            name = _processor_name(processor)
            COUNTERS.add("processor_errors")
            warn_limited(
                f"processor:{name}",
                "Span processor %s raised %r; the span is exported without its changes.",
                name,
                exc,
            )
    return view.result()


def process_batch(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    chain = current_chain()
    if not chain.processors:
        return list(spans)
    out = []
    for span in spans:
        result = process(span, chain)
        if result is not None:
            out.append(result)
    return out


__all__ = [
    "BUILTINS",
    "DropSpan",
    "SpanView",
    "TracingConfigContext",
    "configure",
    "process",
    "process_batch",
]
