"""``mlflow_otel.config``: MLflow's configuration calls that concern tracing."""

from __future__ import annotations

from mlflow_otel._log import logger

__all__ = ["enable_async_logging"]


def enable_async_logging(enabled: bool = True) -> None:
    """Accepted for compatibility: mlflow-otel always exports off the application's thread."""
    if not enabled:
        logger.info("mlflow-otel always exports asynchronously; use flush_trace_async_logging() to wait.")
