"""MLflow's span value types (``mlflow.entities``' SpanType, SpanStatus, SpanEvent), shared by the
span builders and the processors; ``mlflow_otel.entities`` re-exports them under MLflow's names."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Union

from opentelemetry.trace import StatusCode as OtelStatusCode

from mlflow_otel import semconv as conv
from mlflow_otel._serialize import safe_text


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
