"""A lean tracer for our own TracerProvider: standard OTel spans at a fraction of the SDK's cost.

The SDK's ``Tracer.start_span`` is general: it cleans every attribute through ``BoundedAttributes``
(type checks, copies, a lock per write), fans out to a processor list, snapshots a new
``ReadableSpan`` at the end, and records internal metrics. On the request path that generality is
most of the cost of a span. When mlflow-otel owns its provider (the default), the only processor is
our own pipeline and our builders only set well-typed values, so this tracer builds spans directly:

* the span *is* an OTel span: it implements ``opentelemetry.trace.Span`` (so it lives in OTel's
  context and other instrumentations nest under it) and the SDK's ``ReadableSpan`` (so every
  exporter, ours or the OTel project's, encodes it unchanged);
* ids come from ``random.getrandbits`` like the SDK's ``RandomIdGenerator`` (re-seeded after any
  fork, a fork from C included, by the runtime's child hook: a child must not repeat its parent's ids);
* sampling is decided by the one sampler (``sampling.py``), through its fast path;
* the user's OpenTelemetry ``SpanProcessor.on_start`` hooks run here, as the SDK runs them (a tuple
  check when there are none);
* at ``end`` the span itself is handed to the pipeline (no snapshot copy): it is immutable from then.

When mlflow-otel joins the application's provider (``MLFLOW_USE_DEFAULT_TRACER_PROVIDER=false``),
the SDK's tracer is used instead, so the application's processors and sampler see our spans.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional

from opentelemetry import trace as trace_api
from opentelemetry.context import Context

# The clock is the OTel SDK's (``opentelemetry.sdk.trace.time_ns``, looked up per call as the SDK's
# tracer does), so code that mocks OTel's clock sees the same times on our spans.
from opentelemetry.sdk import trace as _otel_sdk_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, INVALID_SPAN_CONTEXT, NonRecordingSpan
from opentelemetry.util.types import Attributes

from mlflow_otel import _fork
from mlflow_otel._state import STATE
from mlflow_otel.spans.sampling import RATIO_OVERRIDE_KEY, TraceRatioSampler

if TYPE_CHECKING:
    from mlflow_otel._telemetry import Counters
    from mlflow_otel.spans.registry import Registry

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)
_OK = Status(StatusCode.OK)  # shared: a Status is immutable
_get_current_span = trace_api.get_current_span
_new_tuple = tuple.__new__
_NO_TRACE_STATE = DEFAULT_TRACE_STATE
_getrandbits = random.getrandbits


class RunningSlot:
    """What ``spans/`` is handed by the runtime (``_runtime.Runtime``), a floor above it
    (docs/architecture.md, "Floors"): ``_runtime`` fills the slot when it is imported (the package's
    ``__init__`` imports it first), and the request path pays one attribute read.

    * ``tracer``, ``flush``, ``terminate``: the running tracer (built at the first span), a flush,
      and a shutdown of the running pipeline after a flush (the next span starts a new one with the
      settings in force; nothing re-read, open traces kept);
    * ``registry``: the process's open traces and live spans (``spans/registry.py``);
    * ``counters``: the process's self-telemetry (``_telemetry.py``);
    * ``scopes``: the instrumentation scope names of tracers handed to instrumentors
      (``integrations/provider.py``), whose spans ``spans/adopt.py`` adopts."""

    def __init__(self) -> None:
        self.tracer: Callable[[], Any] = _unbound
        self.flush: Callable[[Optional[float], bool], bool] = _unbound
        self.terminate: Callable[[], None] = _unbound
        self.registry: Registry = _UNBOUND
        self.counters: Counters = _UNBOUND
        self.scopes: set[str] = set()


def _unbound(*_: Any) -> Any:
    raise RuntimeError("mlflow_otel._runtime was not imported: import mlflow_otel first")


class _Unbound:
    """A slot the runtime has not filled: every method of it raises ``_unbound``'s error."""

    def __getattr__(self, name: str) -> Any:
        return _unbound


_UNBOUND: Any = _Unbound()


#: The one slot (filled by ``_runtime``).
RUNNING = RunningSlot()


class RecordingSpan(ReadableSpan, trace_api.Span):
    """A recording span: the OTel ``Span`` API on top of the SDK's ``ReadableSpan`` fields."""

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: Optional[SpanContext],
        attributes: dict[str, Any],
        start_time: int,
        resource: Resource,
        scope: InstrumentationScope,
        on_end: Callable[[ReadableSpan], None],
    ) -> None:
        # ReadableSpan's fields, set directly (its __init__ only assigns them).
        self._name = name
        self._context = context
        self._kind = SpanKind.INTERNAL
        self._instrumentation_info = None
        self._instrumentation_scope = scope
        self._parent = parent
        self._start_time = start_time
        self._end_time: Optional[int] = None
        self._attributes = attributes
        # Most spans have no events or links: share one empty tuple until the first is added.
        self._events: Any = ()
        self._links: Any = ()
        self._resource = resource
        self._status = _UNSET
        self._on_end = on_end

    # --- opentelemetry.trace.Span ---------------------------------------------------------------------
    def get_span_context(self) -> SpanContext:
        return self._context

    def set_attributes(self, attributes: Any) -> None:
        if self._end_time is None:
            self._attributes.update(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end_time is None:
            self._attributes[key] = value

    def add_event(self, name: str, attributes: Attributes = None, timestamp: Optional[int] = None) -> None:
        if self._end_time is None:
            if self._events.__class__ is tuple:
                self._events = []
            self._events.append(
                Event(name, dict(attributes) if attributes else {}, timestamp or _otel_sdk_trace.time_ns())
            )

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        if self._end_time is None and context is not None and context.is_valid:
            if self._links.__class__ is tuple:
                self._links = []
            self._links.append(Link(context, dict(attributes) if attributes else None))

    def remove_attribute(self, key: str) -> None:
        """Not in OTel's API: ``delete_trace_tag`` on a still-open trace drops the tag's attribute."""
        if self._end_time is None:
            self._attributes.pop(key, None)

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_status(self, status: Any, description: Optional[str] = None) -> None:
        # The SDK's rules: OK is final; UNSET never overrides.
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: Optional[int] = None,
        escaped: bool = False,
    ) -> None:
        import traceback

        event_attributes = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(
                traceback.format_exception(type(exception), exception, exception.__traceback__)
            ),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event_attributes.update(attributes)
        self.add_event("exception", event_attributes, timestamp)

    def end_ok(self, key: str, value: Any) -> None:
        """``set_attribute(key, value)``, status OK unless it is ERROR (MLflow's rule for a span that
        ends without error), then ``end()``: the decorator's common ending in one call."""
        if self._end_time is not None:
            return
        if key is not None:
            self._attributes[key] = value
        if self._status.status_code is StatusCode.UNSET:
            self._status = _OK
        self._end_time = _otel_sdk_trace.time_ns()
        self._on_end(self)

    def end(self, end_time: Optional[int] = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else _otel_sdk_trace.time_ns()
        self._on_end(self)

    def __repr__(self) -> str:
        return f"RecordingSpan(name={self._name!r}, context={self._context})"


class LeanTracer:
    """``start_span`` for our own provider (see the module docstring)."""

    def __init__(
        self,
        sampler: TraceRatioSampler,
        resource: Resource,
        scope: InstrumentationScope,
        on_end: Callable[[ReadableSpan], None],
        on_start: Callable[[Any, Optional[Context]], None],
    ) -> None:
        self._sample_root = sampler.sample_root
        self._on_start = on_start
        self._resource = resource
        self._scope = scope
        self._on_end = on_end

    def start_span(
        self,
        name: str,
        context: Optional[Context] = None,
        attributes: Optional[dict[str, Any]] = None,
        start_time: Optional[int] = None,
        links: Optional[Sequence[Link]] = None,
        parent_span_context: Optional[SpanContext] = None,
    ) -> trace_api.Span:
        """The SDK tracer's signature; ``parent_span_context`` lets our builders, which have already
        looked the parent up, skip a second context lookup."""
        parent = (
            parent_span_context
            if parent_span_context is not None
            else _get_current_span(context).get_span_context()
        )
        attrs = attributes if attributes is not None else {}
        override = attrs.pop(RATIO_OVERRIDE_KEY, None) if attrs else None
        if parent.is_valid:
            trace_id = parent.trace_id
            sampled = parent.trace_flags.sampled
            trace_state = parent.trace_state
            parent_ctx: Optional[SpanContext] = parent
        else:
            # A new trace is where a child forked from C (no at-fork hook ran) first shows: its
            # stages restart and its ids are re-seeded before anything of it is queued (one
            # ``os.getpid`` per trace).
            _fork.check()
            trace_id = _getrandbits(128) or 1
            sampled = self._sample_root(trace_id, override)
            trace_state = None
            parent_ctx = None
        # SpanContext's own fields, built as its ``__new__`` builds them, without its checks: the
        # ids are in range by construction (is_valid True).
        span_context = _new_tuple(
            SpanContext,
            (
                trace_id,
                _getrandbits(64) or 1,
                False,
                _SAMPLED if sampled else _NOT_SAMPLED,
                _NO_TRACE_STATE if trace_state is None else trace_state,
                True,
            ),
        )
        if not sampled:
            return NonRecordingSpan(span_context)
        span = RecordingSpan(
            name,
            span_context,
            parent_ctx,
            attrs,
            start_time if start_time is not None else _otel_sdk_trace.time_ns(),
            self._resource,
            self._scope,
            self._on_end,
        )
        if links:
            for link in links:
                span.add_link(link.context, link.attributes)
        if STATE.start_processors:
            self._on_start(span, context)
        return span


INVALID = NonRecordingSpan(INVALID_SPAN_CONTEXT)
