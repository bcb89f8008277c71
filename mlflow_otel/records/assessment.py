"""Assessments: feedback and expectations attached to a finished trace (MLflow's
``mlflow.entities.assessment``, ``assessment_source`` and ``assessment_error``: the same classes,
constructor arguments, defaults and validation).

* ``Feedback``: a judgement of a trace or span (a human's thumbs-up, an LLM judge's score), value a
  float, int, str, bool, or a list / dict of those; or an ``error`` when the judgement failed.
  Default source: ``CODE`` / ``"default"``.
* ``Expectation``: the ground truth for a trace (any JSON value). Default source: ``HUMAN``.
* ``AssessmentSource(source_type, source_id="default")``: ``HUMAN``, ``LLM_JUDGE``, ``CODE``;
  ``AI_JUDGE`` is read as ``LLM_JUDGE`` with MLflow's ``FutureWarning``.

On the wire they are MLflow's ``mlflow.assessments.Assessment`` message in protobuf JSON
(``to_dictionary`` / ``from_dictionary``), what ``POST /api/3.0/mlflow/traces/{id}/assessments``
takes and returns; the local store keeps the same dictionaries.
"""

from __future__ import annotations

import json
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Union

from mlflow_otel._mlflow_server import timestamp_from_json, timestamp_to_json
from mlflow_otel.exceptions import MlflowException

__all__ = [
    "Assessment",
    "AssessmentError",
    "AssessmentSource",
    "AssessmentSourceType",
    "Expectation",
    "ExpectationValue",
    "Feedback",
    "FeedbackValue",
]

#: The assessment metadata key MLflow reads a run id from (``AssessmentMetadataKey.SOURCE_RUN_ID``).
SOURCE_RUN_ID_KEY = "mlflow.assessment.sourceRunId"
DEFAULT_FEEDBACK_NAME = "feedback"
_JSON_FORMAT = "JSON_FORMAT"
#: MLflow keeps the last 10,000 characters of an error's stack trace.
_STACK_TRACE_MAX = 10000
_STACK_TRACE_CUT = "[Stack trace is truncated]\n...\n"


class AssessmentSourceType:
    """Who or what made an assessment (MLflow's constants and validation)."""

    SOURCE_TYPE_UNSPECIFIED = "SOURCE_TYPE_UNSPECIFIED"
    LLM_JUDGE = "LLM_JUDGE"
    AI_JUDGE = "AI_JUDGE"  # deprecated: read as LLM_JUDGE
    HUMAN = "HUMAN"
    CODE = "CODE"
    _SOURCE_TYPES = (SOURCE_TYPE_UNSPECIFIED, LLM_JUDGE, HUMAN, CODE)

    def __init__(self, source_type: str) -> None:
        self._source_type = AssessmentSourceType._parse(source_type)

    @staticmethod
    def _parse(source_type: Any) -> str:
        value = str(source_type).upper()
        if value == AssessmentSourceType.AI_JUDGE:
            warnings.warn("AI_JUDGE is deprecated. Use LLM_JUDGE instead.", FutureWarning, stacklevel=3)
            value = AssessmentSourceType.LLM_JUDGE
        if value not in AssessmentSourceType._SOURCE_TYPES:
            raise MlflowException.invalid_parameter_value(
                f"Invalid assessment source type: {value}. "
                f"Valid source types: {list(AssessmentSourceType._SOURCE_TYPES)}"
            )
        return value

    def __str__(self) -> str:
        return self._source_type

    @staticmethod
    def _standardize(source_type: Any) -> str:
        return str(AssessmentSourceType(source_type))


@dataclass
class AssessmentSource:
    """The source of an assessment: its type and an id (a user, a judge model, a script)."""

    source_type: str
    source_id: Optional[str] = "default"

    def __post_init__(self) -> None:
        self.source_type = AssessmentSourceType._standardize(self.source_type)

    def to_dictionary(self) -> dict[str, Any]:
        return {"source_type": self.source_type, "source_id": self.source_id}

    @classmethod
    def from_dictionary(cls, data: dict[str, Any]) -> AssessmentSource:
        return cls(
            source_type=data.get("source_type") or AssessmentSourceType.SOURCE_TYPE_UNSPECIFIED,
            source_id=data.get("source_id") or None,
        )


@dataclass
class AssessmentError:
    """Why a feedback could not be computed (a judge timed out, a rate limit)."""

    error_code: str
    error_message: Optional[str] = None
    stack_trace: Optional[str] = None

    def to_dictionary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error_code": self.error_code}
        if self.error_message:
            out["error_message"] = self.error_message
        if self.stack_trace:
            trace = self.stack_trace
            if len(trace) > _STACK_TRACE_MAX:
                trace = _STACK_TRACE_CUT + trace[-(_STACK_TRACE_MAX - len(_STACK_TRACE_CUT)) :]
            out["stack_trace"] = trace
        return out

    @classmethod
    def from_dictionary(cls, data: dict[str, Any]) -> AssessmentError:
        return cls(
            error_code=data.get("error_code", ""),
            error_message=data.get("error_message") or None,
            stack_trace=data.get("stack_trace") or None,
        )


@dataclass
class FeedbackValue:
    value: Any
    error: Optional[AssessmentError] = None

    def to_dictionary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value}
        if self.error is not None:
            out["error"] = self.error.to_dictionary()
        return out

    @classmethod
    def from_dictionary(cls, data: dict[str, Any]) -> FeedbackValue:
        error = data.get("error")
        return cls(value=data.get("value"), error=AssessmentError.from_dictionary(error) if error else None)


@dataclass
class ExpectationValue:
    value: Any

    def to_dictionary(self) -> dict[str, Any]:
        # MLflow sends scalars as a protobuf Value and anything else as a JSON string.
        if self.value is not None and not isinstance(self.value, (int, float, bool, str)):
            try:
                text = json.dumps(self.value)
            except (TypeError, ValueError) as exc:
                raise MlflowException.invalid_parameter_value(
                    f"Failed to serialize value {self.value} to JSON string. Expectation value must be "
                    "JSON-serializable."
                ) from exc
            return {"serialized_value": {"serialization_format": _JSON_FORMAT, "value": text}}
        return {"value": self.value}

    @classmethod
    def from_dictionary(cls, data: dict[str, Any]) -> ExpectationValue:
        if "serialized_value" in data:
            serialized = data["serialized_value"] or {}
            fmt = serialized.get("serialization_format", _JSON_FORMAT)
            if fmt != _JSON_FORMAT:
                raise MlflowException.invalid_parameter_value(
                    f"Unknown serialization format: {fmt}. Only JSON_FORMAT is supported."
                )
            return cls(value=json.loads(serialized.get("value", "null")))
        return cls(value=data.get("value"))


@dataclass
class Assessment:
    """What ``Feedback`` and ``Expectation`` share (MLflow's ``Assessment``). Create those two; this
    base is what the read API hands back when it cannot tell (never in practice)."""

    name: str
    source: AssessmentSource
    trace_id: Optional[str] = None
    run_id: Optional[str] = None
    rationale: Optional[str] = None
    metadata: Optional[dict[str, str]] = None
    span_id: Optional[str] = None
    create_time_ms: Optional[int] = None
    last_update_time_ms: Optional[int] = None
    assessment_id: Optional[str] = None
    error: Optional[AssessmentError] = None
    expectation: Optional[ExpectationValue] = None
    feedback: Optional[FeedbackValue] = None
    overrides: Optional[str] = None
    valid: Optional[bool] = None

    def __post_init__(self) -> None:
        if (self.expectation is not None) + (self.feedback is not None) != 1:
            raise MlflowException.invalid_parameter_value(
                "Exactly one of `expectation` or `feedback` should be specified."
            )
        if self.error is not None:
            if self.expectation is not None:
                raise MlflowException.invalid_parameter_value(
                    "Cannot set `error` when `expectation` is specified."
                )
            self.feedback.error = self.error  # type: ignore[union-attr]
        now = int(time.time() * 1000)
        if self.create_time_ms is None:
            self.create_time_ms = now
        if self.last_update_time_ms is None:
            self.last_update_time_ms = now
        if not isinstance(self.source, AssessmentSource):
            raise MlflowException.invalid_parameter_value(
                f"`source` must be an instance of `AssessmentSource`. Got {type(self.source)} instead."
            )
        if self.run_id is None and self.metadata and SOURCE_RUN_ID_KEY in self.metadata:
            self.run_id = self.metadata[SOURCE_RUN_ID_KEY]

    # --- wire form: MLflow's Assessment message in protobuf JSON ----------------------------------
    def to_dictionary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "assessment_name": self.name,
            "trace_id": self.trace_id or "",
            "source": {k: v for k, v in self.source.to_dictionary().items() if v is not None},
            "create_time": timestamp_to_json(self.create_time_ms or 0),
            "last_update_time": timestamp_to_json(self.last_update_time_ms or 0),
        }
        if self.span_id is not None:
            out["span_id"] = self.span_id
        if self.rationale is not None:
            out["rationale"] = self.rationale
        if self.assessment_id is not None:
            out["assessment_id"] = self.assessment_id
        if self.expectation is not None:
            out["expectation"] = self.expectation.to_dictionary()
        elif self.feedback is not None:
            out["feedback"] = self.feedback.to_dictionary()
        if self.metadata:
            out["metadata"] = {str(k): str(v) for k, v in self.metadata.items()}
        if self.overrides:
            out["overrides"] = self.overrides
        if self.valid is not None:
            out["valid"] = self.valid
        return out

    @classmethod
    def from_dictionary(cls, data: dict[str, Any]) -> Assessment:
        if data.get("expectation") is not None:
            return Expectation.from_dictionary(data)
        if data.get("feedback") is not None:
            return Feedback.from_dictionary(data)
        raise MlflowException.invalid_parameter_value(
            f"Unknown assessment type: {data.get('assessment_name')}"
        )

    @staticmethod
    def _common(data: dict[str, Any]) -> dict[str, Any]:
        return {
            "trace_id": data.get("trace_id") or None,
            "name": data.get("assessment_name", ""),
            "source": AssessmentSource.from_dictionary(data.get("source") or {}),
            "create_time_ms": timestamp_from_json(data.get("create_time")),
            "last_update_time_ms": timestamp_from_json(data.get("last_update_time")),
            "metadata": dict(data["metadata"]) if data.get("metadata") else None,
            "span_id": data.get("span_id") or None,
        }


class Feedback(Assessment):
    """Feedback on a trace or span: a value, or the error that kept one from being computed."""

    def __init__(
        self,
        name: str = DEFAULT_FEEDBACK_NAME,
        value: Any = None,
        error: Union[Exception, AssessmentError, str, None] = None,
        source: Optional[AssessmentSource] = None,
        trace_id: Optional[str] = None,
        metadata: Optional[dict[str, str]] = None,
        span_id: Optional[str] = None,
        create_time_ms: Optional[int] = None,
        last_update_time_ms: Optional[int] = None,
        rationale: Optional[str] = None,
        overrides: Optional[str] = None,
        valid: bool = True,
    ) -> None:
        if source is None:
            source = AssessmentSource(source_type=AssessmentSourceType.CODE)
        if isinstance(error, Exception):
            error = AssessmentError(
                error_message=str(error),
                error_code=type(error).__name__,
                stack_trace="".join(traceback.format_exception(type(error), error, error.__traceback__)),
            )
        elif isinstance(error, str):
            error = AssessmentError(error_message=error, error_code="ASSESSMENT_ERROR")
        elif error is not None and not isinstance(error, AssessmentError):
            raise MlflowException.invalid_parameter_value(
                f"'error' must be an Exception, AssessmentError, or string. Got: {type(error)}"
            )
        super().__init__(
            name=name,
            source=source,
            trace_id=trace_id,
            metadata=metadata,
            span_id=span_id,
            create_time_ms=create_time_ms,
            last_update_time_ms=last_update_time_ms,
            feedback=FeedbackValue(value=value, error=error),
            rationale=rationale,
            overrides=overrides,
            valid=valid,
        )
        self.error = error

    @property
    def value(self) -> Any:
        return self.feedback.value  # type: ignore[union-attr]

    @value.setter
    def value(self, value: Any) -> None:
        self.feedback.value = value  # type: ignore[union-attr]

    @property
    def error_code(self) -> Optional[str]:
        error = self.feedback.error  # type: ignore[union-attr]
        return error.error_code if error else None

    @property
    def error_message(self) -> Optional[str]:
        error = self.feedback.error  # type: ignore[union-attr]
        return error.error_message if error else None

    @classmethod
    def from_dictionary(cls, data: dict[str, Any]) -> Feedback:
        value = FeedbackValue.from_dictionary(data.get("feedback") or {})
        feedback = cls(
            value=value.value,
            error=value.error,
            rationale=data.get("rationale") or None,
            overrides=data.get("overrides") or None,
            valid=data.get("valid", True),
            **cls._common(data),
        )
        feedback.assessment_id = data.get("assessment_id") or None
        return feedback


class Expectation(Assessment):
    """The expected output of a trace or span (ground truth): any JSON value."""

    def __init__(
        self,
        name: str,
        value: Any,
        source: Optional[AssessmentSource] = None,
        trace_id: Optional[str] = None,
        metadata: Optional[dict[str, str]] = None,
        span_id: Optional[str] = None,
        create_time_ms: Optional[int] = None,
        last_update_time_ms: Optional[int] = None,
    ) -> None:
        if source is None:
            source = AssessmentSource(source_type=AssessmentSourceType.HUMAN)
        if value is None:
            raise MlflowException.invalid_parameter_value("The `value` field must be specified.")
        super().__init__(
            name=name,
            source=source,
            trace_id=trace_id,
            metadata=metadata,
            span_id=span_id,
            create_time_ms=create_time_ms,
            last_update_time_ms=last_update_time_ms,
            expectation=ExpectationValue(value=value),
        )

    @property
    def value(self) -> Any:
        return self.expectation.value  # type: ignore[union-attr]

    @value.setter
    def value(self, value: Any) -> None:
        self.expectation.value = value  # type: ignore[union-attr]

    @classmethod
    def from_dictionary(cls, data: dict[str, Any]) -> Expectation:
        value = ExpectationValue.from_dictionary(data.get("expectation") or {})
        expectation = cls(value=value.value, **cls._common(data))
        expectation.assessment_id = data.get("assessment_id") or None
        return expectation
