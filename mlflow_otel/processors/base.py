"""The contract between the pipeline and a span processor: what a processor is given and may do.

A processor is a plain callable ``fn(span) -> None`` (MLflow's span-processor contract) that reads
and edits the :class:`SpanView` it is given; raising :class:`DropSpan` drops the span on purpose.
The built-in processors (``content``, ``redaction``, ``trimming``) are written against this same
contract, so they read like examples of a user's own.

A processor may also have a ``screen(spans) -> bool`` method: given the spans of one trace as they
ended, True means it would change none of them, so the process stage skips it for each of them
while no earlier processor has changed the span (``SpanView.changed``). A screen is an
optimisation only: False (or an exception) runs the processor on every span as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Any, Callable, Optional

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status, StatusCode

from mlflow_otel import semconv as conv
from mlflow_otel._serialize import dumps, loads_or_raw, to_attribute_value
from mlflow_otel.otlp.ids import mlflow_trace_id, span_hex
from mlflow_otel.otlp.protobuf import plain_span_class
from mlflow_otel.spans.types import SpanReads, SpanStatus, SpanStatusCode

Processor = Callable[["SpanView"], None]
_EMPTY: Any = MappingProxyType({})


class DropSpan(Exception):
    """Raise from a processor to drop the span on purpose (it is counted, not logged)."""


class SpanView(SpanReads):
    """A finished span as a processor sees it: MLflow's span API, mutable until export.

    Reads are free; the first write copies the attributes (copy-on-write), so processors that only
    look cost nothing, and a raising processor's writes can be rolled back.
    """

    __slots__ = ("_attrs", "_dirty", "_events", "_fresh", "_name", "_resource", "_span", "_status")

    def __init__(self, span: ReadableSpan) -> None:
        self._span = span
        if plain_span_class(span.__class__):  # its fields, read without a property call each
            self._attrs: Any = MappingProxyType(span._attributes) if span._attributes else _EMPTY
            self._name = span._name
            self._status = span._status
            self._resource = span._resource
            events = span._events
            self._events: Sequence[Event] = events if events.__class__ is tuple else tuple(events)
        else:
            self._attrs = span.attributes or {}
            self._name = span.name
            self._status = span.status
            self._resource = span.resource
            self._events = span.events
        self._fresh = False  # True once _attrs is our own copy, writable in place
        self._dirty = False

    # --- state for rollback ----------------------------------------------------------------------
    def checkpoint(self) -> tuple[Any, ...]:
        self._fresh = False  # the next write copies again, so the checkpoint stays intact
        return (self._attrs, self._name, self._status, self._events, self._dirty, self._resource)

    def restore(self, state: tuple[Any, ...]) -> None:
        self._attrs, self._name, self._status, self._events, self._dirty, self._resource = state
        self._fresh = False

    def writable_attributes(self) -> dict[str, Any]:
        """The attribute dict, copied on first write; processors that edit raw values use it."""
        if not self._fresh:
            attrs = self._attrs
            try:  # a dict, or a read-only view of one: copied in C (dict() of a view walks it)
                copied = attrs.copy()
            except AttributeError:  # a mapping without copy (the SDK's BoundedAttributes)
                copied = None
            self._attrs = copied if copied.__class__ is dict else dict(attrs)
            self._fresh = True
        self._dirty = True
        return self._attrs

    @property
    def changed(self) -> bool:
        """Whether a processor has changed the span so far (a screen's verdict on the span as it
        ended holds only while this is False: ``pipeline/process.py``)."""
        return self._dirty

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
        return mlflow_trace_id(self._span.context.trace_id)

    request_id = trace_id

    @property
    def span_id(self) -> str:
        return span_hex(self._span.context.span_id)

    @property
    def parent_id(self) -> Optional[str]:
        return span_hex(self._span.parent.span_id) if self._span.parent is not None else None

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
    def resource(self) -> Any:
        """The OTel ``Resource`` the span was made with (shared by the process's spans)."""
        return self._resource

    @property
    def instrumentation_scope(self) -> Any:
        """The OTel ``InstrumentationScope`` that made the span (``mlflow_otel`` for ours; an
        instrumentor's module for third-party spans). Read-only."""
        return self._span.instrumentation_scope

    def set_resource(self, resource: Any) -> None:
        self._resource = resource
        self._dirty = True

    @property
    def raw_status_description(self) -> Optional[str]:
        """The status message as OTel holds it (no entity built): for cheap screens."""
        return self._status.description if self._status is not None else None

    @property
    def status(self) -> Any:
        return SpanStatus(SpanStatusCode.from_otel(self._status.status_code), self._status.description or "")

    def set_status(self, status: Any) -> None:
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
        if plain_span_class(s.__class__):
            return ReadableSpan(
                self._name, s._context, s._parent, self._resource, self._attrs, self._events,
                s._links if s._links.__class__ is tuple else tuple(s._links),
                s._kind, None, self._status, s._start_time, s._end_time, s._instrumentation_scope,
            )  # fmt: skip
        return ReadableSpan(
            name=self._name,
            context=s.context,
            parent=s.parent,
            resource=self._resource,
            attributes=self._attrs,
            events=self._events,
            links=s.links,
            kind=s.kind,
            status=self._status,
            start_time=s.start_time,
            end_time=s.end_time,
            instrumentation_scope=s.instrumentation_scope,
        )
