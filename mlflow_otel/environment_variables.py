"""``mlflow_otel.environment_variables``: MLflow's objects for the environment variables of tracing.

The names, types and defaults are MLflow's (``mlflow.environment_variables``), so code and tests
written for MLflow (``MLFLOW_TRACE_SAMPLING_RATIO.name``, ``.get()``, ``.is_set()``) work
unchanged. The values are read through ``_settings``, the one reader of the environment; the SDK
itself reads its settings there too, at start and on ``tracing.reset()``.
"""

from __future__ import annotations

from typing import Callable, Generic, Optional, TypeVar

from mlflow_otel import _settings

__all__ = [
    "MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS",
    "MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT",
    "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING",
    "MLFLOW_ENABLE_OTLP_EXPORTER",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT",
    "MLFLOW_TRACE_SAMPLING_RATIO",
    "MLFLOW_TRACE_TIMEOUT_SECONDS",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
]

T = TypeVar("T")


class _EnvironmentVariable(Generic[T]):
    """One variable (MLflow's ``_EnvironmentVariable``): ``name``, ``type``, ``default``; ``get()``
    parses the current value (the default when unset or invalid), ``is_set()`` says whether the
    environment has it."""

    def __init__(self, name: str, type_: Callable[[str], T], default: Optional[T]) -> None:
        self.name = name
        self.type = type_
        self.default = default

    def get(self) -> Optional[T]:
        return _settings.variable_value(self.name, self.type, self.default)

    def is_set(self) -> bool:
        return _settings.variable_is_set(self.name)

    def __str__(self) -> str:
        return f"{self.name} (default: {self.default})"

    def __repr__(self) -> str:
        return repr(self.name)


MLFLOW_TRACE_SAMPLING_RATIO = _EnvironmentVariable(_settings.MLFLOW_TRACE_SAMPLING_RATIO, float, 1.0)
MLFLOW_TRACE_TIMEOUT_SECONDS = _EnvironmentVariable(_settings.MLFLOW_TRACE_TIMEOUT_SECONDS, int, None)
MLFLOW_ENABLE_ASYNC_TRACE_LOGGING = _EnvironmentVariable(
    _settings.MLFLOW_ENABLE_ASYNC_TRACE_LOGGING, bool, True
)
MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT = _EnvironmentVariable(
    _settings.MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT, int, 500
)
MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS = _EnvironmentVariable(
    _settings.MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS, int, 10
)
MLFLOW_ENABLE_OTLP_EXPORTER = _EnvironmentVariable(_settings.MLFLOW_ENABLE_OTLP_EXPORTER, bool, True)
MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT = _EnvironmentVariable(
    _settings.MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT, bool, False
)
MLFLOW_TRACKING_URI = _EnvironmentVariable(_settings.MLFLOW_TRACKING_URI, str, None)
MLFLOW_EXPERIMENT_NAME = _EnvironmentVariable(_settings.MLFLOW_EXPERIMENT_NAME, str, None)
MLFLOW_EXPERIMENT_ID = _EnvironmentVariable(_settings.MLFLOW_EXPERIMENT_ID, str, None)
MLFLOW_TRACKING_TOKEN = _EnvironmentVariable(_settings.MLFLOW_TRACKING_TOKEN, str, None)
MLFLOW_TRACKING_USERNAME = _EnvironmentVariable(_settings.MLFLOW_TRACKING_USERNAME, str, None)
MLFLOW_TRACKING_PASSWORD = _EnvironmentVariable(_settings.MLFLOW_TRACKING_PASSWORD, str, None)
MLFLOW_TRACKING_INSECURE_TLS = _EnvironmentVariable(_settings.MLFLOW_TRACKING_INSECURE_TLS, bool, False)
MLFLOW_TRACKING_SERVER_CERT_PATH = _EnvironmentVariable(_settings.MLFLOW_TRACKING_SERVER_CERT_PATH, str, None)
