"""``mlflow.entities.assessment_error``."""

from mlflow_otel.records.assessment import AssessmentError

__all__ = ["AssessmentError"]
