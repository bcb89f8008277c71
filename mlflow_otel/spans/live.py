"""The live span users hold: MLflow's ``LiveSpan`` API over a standard OpenTelemetry SDK span.

The wrapper adds MLflow semantics (inputs/outputs as JSON attributes, span types, MLflow status and
events) without changing what the underlying span is: every attribute lands on the OTel span itself,
so anything reading the OTel span (other processors, other exporters) sees the same data.

No method here raises into user code: a failure costs a counted, rate-limited warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Union

from opentelemetry import trace as otel_trace
from opentelemetry.trace import Status, StatusCode

from mlflow_otel import semconv as conv
from mlflow_otel._log import warn_limited
from mlflow_otel._serialize import dumps, loads_or_raw, to_attribute_value
from mlflow_otel._state import STATE
from mlflow_otel.otlp.ids import mlflow_trace_id, span_hex
from mlflow_otel.spans.types import (
    Link,
    SpanEvent,
    SpanLogLevel,
    SpanReads,
    SpanStatus,
    SpanStatusCode,
    decode_attribute,
    default_log_level,
    error_description,
)

if TYPE_CHECKING:
    from mlflow_otel.spans.registry import OpenTrace

NO_OP_SPAN_TRACE_ID = "MLFLOW_NO_OP_SPAN_TRACE_ID"
_OK = Status(StatusCode.OK)  # shared: a Status is immutable


class LiveSpan(SpanReads):
    """A span that is still being recorded, with MLflow's ``LiveSpan`` methods and properties."""

    __slots__ = ("__weakref__", "_base_name", "_json_keys", "_otel", "_span_type", "_state")

    def __init__(
        self,
        otel_span: otel_trace.Span,
        state: Optional[OpenTrace],
        span_type: str,
        name: str,
        json_keys: Optional[set[str]] = None,
    ) -> None:
        self._otel = otel_span
        self._state = state
        self._span_type = span_type
        self._base_name = name
        #: Keys of attributes the user gave as objects (stored as JSON, read back decoded).
        self._json_keys = json_keys

    # --- for the pipeline's stages ----------------------------------------------------------------
    @property
    def otel_span(self) -> otel_trace.Span:
        """The OpenTelemetry span underneath (what goes in OTel's context)."""
        return self._otel

    #: MLflow's name of the OTel span underneath (``LiveSpan._span``), which code written for MLflow reads.
    _span = otel_span

    @property
    def trace_state(self) -> Optional[OpenTrace]:
        """The registry's record of this span's trace; None for a sampled-out span."""
        return self._state

    @property
    def base_name(self) -> str:
        return self._base_name

    # --- identity ------------------------------------------------------------------------------
    @property
    def trace_id(self) -> str:
        return mlflow_trace_id(self._otel.get_span_context().trace_id)

    request_id = trace_id  # MLflow 2 name

    @property
    def span_id(self) -> str:
        return span_hex(self._otel.get_span_context().span_id)

    @property
    def parent_id(self) -> Optional[str]:
        parent = getattr(self._otel, "parent", None)
        return span_hex(parent.span_id) if parent is not None else None

    @property
    def name(self) -> str:
        return getattr(self._otel, "name", self._base_name)

    @property
    def span_type(self) -> str:
        return self._span_type

    @property
    def start_time_ns(self) -> Optional[int]:
        return getattr(self._otel, "start_time", None)

    @property
    def end_time_ns(self) -> Optional[int]:
        return getattr(self._otel, "end_time", None)

    @property
    def recording(self) -> bool:
        """False for a span the sampler dropped: it still carries context to its children."""
        return self._otel.is_recording()

    # --- data ----------------------------------------------------------------------------------
    @property
    def attributes(self) -> dict[str, Any]:
        raw = getattr(self._otel, "attributes", None) or {}
        return {key: self._decode(key, value) for key, value in raw.items()}

    def get_attribute(self, key: str) -> Any:
        raw = getattr(self._otel, "attributes", None) or {}
        return self._decode(key, raw.get(key))

    def _decode(self, key: str, value: Any) -> Any:
        if self._json_keys is not None and key in self._json_keys:
            return loads_or_raw(value)
        return decode_attribute(key, value)

    @property
    def links(self) -> list[Link]:
        return [Link.from_otel(link) for link in getattr(self._otel, "links", ()) or ()]

    @property
    def status(self) -> SpanStatus:
        status = getattr(self._otel, "status", None)
        if status is None:
            return SpanStatus(SpanStatusCode.UNSET)
        return SpanStatus(SpanStatusCode.from_otel(status.status_code), status.description or "")

    @property
    def events(self) -> list[SpanEvent]:
        return [
            SpanEvent(e.name, e.timestamp, {k: loads_or_raw(v) for k, v in (e.attributes or {}).items()})
            for e in getattr(self._otel, "events", ())
        ]

    # --- mutation ------------------------------------------------------------------------------
    def set_inputs(self, inputs: Any) -> None:
        """Record inputs as JSON now, so a later mutation of the caller's objects does not show."""
        if self._otel.is_recording() and STATE.capture_content:
            self._otel.set_attribute(conv.SPAN_INPUTS, dumps(inputs, STATE.capture_limit))

    def set_outputs(self, outputs: Any) -> None:
        if self._otel.is_recording() and STATE.capture_content:
            self._otel.set_attribute(conv.SPAN_OUTPUTS, dumps(outputs, STATE.capture_limit))

    def set_attribute(self, key: str, value: Any) -> None:
        if not self._otel.is_recording():
            return
        try:
            encoded = to_attribute_value(value)
            if isinstance(encoded, str) and not isinstance(value, str):
                if self._json_keys is None:
                    self._json_keys = set()
                self._json_keys.add(key)
            self._otel.set_attribute(str(key), encoded)
        except Exception as exc:
            warn_limited("set_attribute", "Could not set span attribute %r: %s", key, exc)

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        for key, value in (attributes or {}).items():
            self.set_attribute(key, value)

    def set_span_type(self, span_type: str) -> None:
        previous = self._span_type
        self._span_type = span_type
        if self._otel.is_recording():
            self._otel.set_attribute(conv.SPAN_TYPE, str(span_type))
            # The level follows the type while it is the old type's default (MLflow stamps the
            # default from the final type when the span ends).
            if self.get_attribute(conv.LOG_LEVEL) == int(default_log_level(previous)):
                self._otel.set_attribute(conv.LOG_LEVEL, int(default_log_level(span_type)))

    def set_log_level(self, level: Union[SpanLogLevel, str]) -> None:
        """Set the span's log level; an invalid one raises ``MlflowException`` (as in MLflow)."""
        normalized = SpanLogLevel.from_value(level)
        if self._otel.is_recording():
            self._otel.set_attribute(conv.LOG_LEVEL, int(normalized))

    def set_description(self, description: str) -> None:
        if self._otel.is_recording():
            self._otel.set_attribute(conv.SPAN_DESCRIPTION, str(description))

    def add_link(self, link: Link) -> None:
        """Link this span to a span of another trace (an OTel span link on the wire)."""
        from mlflow_otel.exceptions import MlflowException

        if not isinstance(link, Link):
            raise MlflowException.invalid_parameter_value(
                f"The `link` parameter must be a Link instance, got {type(link).__name__}."
            )
        trace_id, span_id = link.otel_ids()
        if self._otel.is_recording():
            context = otel_trace.SpanContext(trace_id, span_id, is_remote=True)
            self._otel.add_link(context, dict(link.attributes) if link.attributes else None)

    def remove_attribute(self, key: str) -> None:
        """Drop an attribute (``delete_trace_tag``); spans of the SDK's tracer keep it, emptied."""
        if not self._otel.is_recording():
            return
        remove = getattr(self._otel, "remove_attribute", None)
        if remove is not None:
            remove(key)
        else:
            self._otel.set_attribute(key, "")

    def set_status(self, status: Union[SpanStatus, SpanStatusCode, str]) -> None:
        try:
            coerced = SpanStatus.coerce(status)
        except Exception as exc:
            warn_limited("set_status", "Ignoring invalid span status %r: %s", status, exc)
            return
        if self._otel.is_recording():
            description = coerced.description or None if coerced.status_code.value == "ERROR" else None
            self._otel.set_status(Status(coerced.status_code.to_otel(), description))

    def add_event(self, event: SpanEvent) -> None:
        if not self._otel.is_recording():
            return
        try:
            attributes = {k: to_attribute_value(v) for k, v in (event.attributes or {}).items()}
            self._otel.add_event(event.name, attributes, event.timestamp)
            if event.name == "exception":  # MLflow 3.18: an exception bumps the level to ERROR
                level = self.get_attribute(conv.LOG_LEVEL)
                if not isinstance(level, int) or level < SpanLogLevel.ERROR:
                    self._otel.set_attribute(conv.LOG_LEVEL, int(SpanLogLevel.ERROR))
        except Exception as exc:
            warn_limited("add_event", "Could not add span event %r: %s", getattr(event, "name", "?"), exc)

    def record_exception(self, exception: Union[BaseException, str]) -> None:
        """Status ERROR with MLflow's ``Type: message`` description, plus an ``exception`` event.
        Anything but an exception or a string raises ``MlflowException`` (MLflow's check, a
        programming error; also on a sampled-out span, so it shows whatever the sampling)."""
        if not isinstance(exception, (BaseException, str)):
            from mlflow_otel.exceptions import MlflowException

            raise MlflowException.invalid_parameter_value(
                "The `exception` parameter must be an Exception instance or a string."
            )
        if not self._otel.is_recording():
            return
        exc = exception if isinstance(exception, BaseException) else Exception(str(exception))
        self.add_event(SpanEvent.from_exception(exc))
        self.set_status(SpanStatus(SpanStatusCode.ERROR, error_description(exc)))

    def end(
        self,
        outputs: Any = None,
        attributes: Optional[dict[str, Any]] = None,
        status: Union[SpanStatus, SpanStatusCode, str, None] = None,
        end_time_ns: Optional[int] = None,
    ) -> None:
        """End the span (idempotent: a second call is ignored, as the trace timeout may have won)."""
        try:
            if not self._otel.is_recording():  # already ended (e.g. by the trace timeout), or sampled out
                return
            if outputs is not None:
                self.set_outputs(outputs)
            if attributes:
                self.set_attributes(attributes)
            if status is not None:
                self.set_status(status)
            # MLflow marks a span OK when it ends without error (OTel would leave it UNSET).
            if self._otel.status.status_code is not StatusCode.ERROR:
                self._otel.set_status(_OK)
            self._otel.end(end_time=end_time_ns)
        except Exception as exc:
            warn_limited("end_span", "Could not end span %r: %s", self._base_name, exc)

    def __repr__(self) -> str:
        return f"LiveSpan(name={self.name!r}, trace_id={self.trace_id!r}, span_id={self.span_id!r})"


class NoOpSpan:
    """What the API yields while tracing is disabled: every method accepts its arguments and does
    nothing, so user code needs no branches (MLflow's ``NoOpSpan``)."""

    __slots__ = ()

    trace_id = NO_OP_SPAN_TRACE_ID
    request_id = NO_OP_SPAN_TRACE_ID
    span_id = None
    parent_id = None
    name = None
    span_type = None
    start_time_ns = None
    end_time_ns = None
    inputs = None
    outputs = None
    recording = False
    log_level = None
    description = None

    @property
    def links(self) -> list[Any]:
        return []

    @property
    def attributes(self) -> dict[str, Any]:
        return {}

    @property
    def events(self) -> list[Any]:
        return []

    @property
    def status(self) -> SpanStatus:
        return SpanStatus(SpanStatusCode.UNSET)

    def get_attribute(self, key: str) -> Any:
        return None

    def _noop(self, *args: Any, **kwargs: Any) -> None:
        return None

    set_inputs = set_outputs = set_attribute = set_attributes = set_span_type = _noop
    set_status = add_event = record_exception = end = _noop
    set_log_level = set_description = add_link = remove_attribute = _noop


NO_OP_SPAN = NoOpSpan()
