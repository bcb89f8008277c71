"""MLflow's span value types (``mlflow.entities``' SpanType, SpanStatus, SpanEvent), shared by the
span builders and the processors; ``mlflow_otel.entities`` re-exports them under MLflow's names."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, Optional, Union

from opentelemetry.trace import StatusCode as OtelStatusCode

from mlflow_otel import semconv as conv
from mlflow_otel._serialize import loads_or_raw, safe_text
from mlflow_otel.exceptions import MlflowException
from mlflow_otel.otlp.ids import mlflow_trace_id, span_hex


class SpanType:
    """Predefined span types (MLflow's ``mlflow.entities.SpanType``); any other string is allowed too."""

    LLM = "LLM"
    CHAT_MODEL = "CHAT_MODEL"
    CHAIN = "CHAIN"
    AGENT = "AGENT"
    TOOL = "TOOL"
    RETRIEVER = "RETRIEVER"
    EMBEDDING = "EMBEDDING"
    RERANKER = "RERANKER"
    PARSER = "PARSER"
    MEMORY = "MEMORY"
    WORKFLOW = "WORKFLOW"
    TASK = "TASK"
    GUARDRAIL = "GUARDRAIL"
    EVALUATOR = "EVALUATOR"
    UNKNOWN = "UNKNOWN"


class SpanStatusCode(str, Enum):
    """MLflow's status codes; they map one to one onto OTel's ``StatusCode``."""

    UNSET = "UNSET"
    OK = "OK"
    ERROR = "ERROR"

    def to_otel(self) -> OtelStatusCode:
        return OtelStatusCode[self.value]

    @classmethod
    def from_otel(cls, code: OtelStatusCode) -> SpanStatusCode:
        return cls(code.name)


@dataclass
class SpanStatus:
    """A span's status: a code and, for errors, a description such as ``ValueError: bad input``."""

    status_code: SpanStatusCode
    description: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.status_code, str) and not isinstance(self.status_code, SpanStatusCode):
            self.status_code = SpanStatusCode(self.status_code.upper())

    @classmethod
    def coerce(cls, status: Union[SpanStatus, SpanStatusCode, str]) -> SpanStatus:
        if isinstance(status, SpanStatus):
            return status
        if isinstance(status, SpanStatusCode):
            return cls(status)
        return cls(SpanStatusCode(str(status).upper()))


@dataclass
class SpanEvent:
    """A point in time inside a span (MLflow's ``SpanEvent``); timestamps are nanoseconds since epoch."""

    name: str
    timestamp: int = field(default_factory=time.time_ns)
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_exception(cls, exception: BaseException) -> SpanEvent:
        """The OTel ``exception`` event (semantic conventions: exception.type/.message/.stacktrace)."""
        try:
            stack = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
        except Exception:
            stack = ""
        return cls(
            name="exception",
            attributes={
                "exception.type": type(exception).__name__,
                "exception.message": safe_text(exception),
                "exception.stacktrace": stack,
            },
        )


def error_description(exception: BaseException) -> str:
    """MLflow's status description for an exception: ``Type: message``."""
    return f"{type(exception).__name__}: {safe_text(exception)}"


class SpanReads:
    """MLflow's read-only span payload properties, shared by live spans and processor views."""

    __slots__ = ()

    def get_attribute(self, key: str) -> Any:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    @property
    def inputs(self) -> Any:
        return self.get_attribute(conv.SPAN_INPUTS)

    @property
    def outputs(self) -> Any:
        return self.get_attribute(conv.SPAN_OUTPUTS)

    @property
    def log_level(self) -> Optional[SpanLogLevel]:
        """MLflow 3.18's span log level (the span type's default unless set); None if absent."""
        raw = self.get_attribute(conv.LOG_LEVEL)
        try:
            return SpanLogLevel(int(raw)) if raw is not None else None
        except (TypeError, ValueError):
            return None

    @property
    def description(self) -> Optional[str]:
        return self.get_attribute(conv.SPAN_DESCRIPTION)


class SpanLogLevel(IntEnum):
    """A span's severity (MLflow 3.18's ``mlflow.entities.SpanLogLevel``), used by the MLflow UI's
    verbosity filter. The values are Python ``logging``'s."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @classmethod
    def from_value(cls, value: Union[SpanLogLevel, str]) -> SpanLogLevel:
        """A member, or its name in any case (MLflow accepts nothing else: not ints, not ``WARN``)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                raise MlflowException.invalid_parameter_value(
                    f"Invalid SpanLogLevel name {value!r}. Expected one of {[m.name for m in cls]}."
                ) from None
        raise MlflowException.invalid_parameter_value(
            f"SpanLogLevel must be a SpanLogLevel or str, got {type(value).__name__}."
        )


#: Span types whose default level is INFO (MLflow's ``tracing/utils/default_log_level.py``): the
#: operations a person wants to see at the UI's default threshold. Every other type is DEBUG.
INFO_SPAN_TYPES = frozenset({"LLM", "CHAT_MODEL", "TOOL", "RETRIEVER", "AGENT", "EMBEDDING"})


def default_log_level(span_type: Optional[str]) -> SpanLogLevel:
    return SpanLogLevel.INFO if span_type in INFO_SPAN_TYPES else SpanLogLevel.DEBUG


@dataclass
class Link:
    """A link to a span of another trace (MLflow's ``mlflow.entities.Link``; an OTel span link on
    the wire). ``trace_id`` is ``tr-<32 hex>`` or bare hex, ``span_id`` 16 hex digits."""

    trace_id: str
    span_id: str
    attributes: Optional[dict[str, Any]] = None

    def to_dict(self) -> dict[str, Any]:
        return {"trace_id": self.trace_id, "span_id": self.span_id, "attributes": self.attributes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Link:
        return cls(trace_id=data["trace_id"], span_id=data["span_id"], attributes=data.get("attributes"))

    @classmethod
    def from_otel(cls, link: Any) -> Link:
        """An OpenTelemetry span link as MLflow's ``Link``."""
        return cls(
            mlflow_trace_id(link.context.trace_id),
            span_hex(link.context.span_id),
            dict(link.attributes) if link.attributes else None,
        )

    def otel_ids(self) -> tuple[int, int]:
        """The OTel trace and span ids; ``MlflowException`` when they are not hex of the right width."""
        text = self.trace_id[3:] if self.trace_id.startswith("tr-") else self.trace_id
        try:
            trace_id, span_id = int(text, 16), int(self.span_id, 16)
        except (TypeError, ValueError):
            trace_id = span_id = -1
        if not (0 < trace_id < 1 << 128 and 0 < span_id < 1 << 64):
            raise MlflowException.invalid_parameter_value(
                f"Invalid link: trace_id={self.trace_id}, span_id={self.span_id}. trace_id must be a "
                "valid MLflow trace ID or hex string, and span_id must be a hex string."
            )
        return trace_id, span_id


#: Attributes written JSON-quoted as MLflow writes them (read back decoded).
_QUOTED_KEYS = frozenset({conv.FUNCTION_NAME, conv.TRACE_REQUEST_ID})


def decode_attribute(key: str, value: Any) -> Any:
    """An attribute value as MLflow's span API shows it: JSON attributes decoded, tuples as lists."""
    if key in conv.JSON_KEYS or (key in _QUOTED_KEYS and isinstance(value, str) and value[:1] == '"'):
        return loads_or_raw(value)
    return list(value) if isinstance(value, tuple) else value
