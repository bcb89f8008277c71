"""``mlflow.entities.assessment_source``."""

from mlflow_otel.records.assessment import AssessmentSource, AssessmentSourceType

__all__ = ["AssessmentSource", "AssessmentSourceType"]
