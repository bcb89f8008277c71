"""``mlflow_otel.exceptions``: MLflow's exception type, for the calls where MLflow raises.

The tracing API never raises into the application (a failure costs a counted, rate-limited
warning); ``MlflowException`` is raised only where MLflow raises for a caller's mistake that must
not pass silently: an invalid span log level given to ``set_log_level``, an invalid sampling ratio
given to ``trace``, a read API (``get_trace``, ``search_traces``) that cannot answer.
"""

from __future__ import annotations

from typing import Any

__all__ = ["INVALID_PARAMETER_VALUE", "MlflowException", "MlflowTracingException"]

#: MLflow's error code for a bad argument (``mlflow.protos.databricks_pb2.INVALID_PARAMETER_VALUE``).
INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"


class MlflowException(Exception):
    """MLflow's base exception: a message and an error code (MLflow's names)."""

    def __init__(self, message: Any, error_code: str = "INTERNAL_ERROR", **kwargs: Any) -> None:
        self.message = str(message)
        self.error_code = error_code
        self.json_kwargs = kwargs
        super().__init__(self.message)

    @classmethod
    def invalid_parameter_value(cls, message: Any, **kwargs: Any) -> MlflowException:
        return cls(message, error_code=INVALID_PARAMETER_VALUE, **kwargs)


class MlflowTracingException(MlflowException):
    """A failure inside tracing (MLflow's name); never raised into the traced application."""
