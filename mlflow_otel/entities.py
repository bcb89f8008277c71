"""MLflow's tracing entities, importable as ``mlflow_otel.entities`` in place of ``mlflow.entities``."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Union

from opentelemetry.trace import StatusCode as _OtelStatusCode

from mlflow_otel._serialize import _safe_text

__all__ = [
    "LiveSpan",
    "MlflowExperimentLocation",
    "NoOpSpan",
    "Span",
    "SpanEvent",
    "SpanStatus",
    "SpanStatusCode",
    "SpanType",
]


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

    def to_otel(self) -> _OtelStatusCode:
        return _OtelStatusCode[self.value]

    @classmethod
    def from_otel(cls, code: _OtelStatusCode) -> SpanStatusCode:
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
                "exception.message": _safe_text(exception),
                "exception.stacktrace": stack,
            },
        )


def error_description(exception: BaseException) -> str:
    """MLflow's status description for an exception: ``Type: message``."""
    return f"{type(exception).__name__}: {_safe_text(exception)}"


# Re-exported here because MLflow users import them from ``mlflow.entities``.
from mlflow_otel._span import LiveSpan, NoOpSpan  # noqa: E402
from mlflow_otel.destinations import MlflowExperimentLocation  # noqa: E402

Span = LiveSpan
