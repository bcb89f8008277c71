"""``mlflow_otel.tracing``: switches for the whole SDK (MLflow's ``mlflow.tracing``)."""

from __future__ import annotations

from mlflow_otel import _runtime

__all__ = ["disable", "enable", "is_enabled", "reset"]


def disable() -> None:
    """Stop creating spans. Decorated functions then cost one attribute read per call."""
    _runtime.enabled = False


def enable() -> None:
    """Create spans again (also overrides ``MLFLOW_TRACING_ENABLED=false``)."""
    _runtime.enabled = True


def is_enabled() -> bool:
    return _runtime.enabled


def reset() -> None:
    """Flush and drop the current pipeline; the next span rebuilds it from the environment."""
    _runtime.reset()
