"""``mlflow.entities.assessment``: feedback and expectations on traces."""

from mlflow_otel.records.assessment import (
    Assessment,
    AssessmentError,
    AssessmentSource,
    AssessmentSourceType,
    Expectation,
    ExpectationValue,
    Feedback,
    FeedbackValue,
)

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
