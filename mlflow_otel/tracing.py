"""``mlflow_otel.tracing``: process-wide switches and routing (MLflow's ``mlflow.tracing``)."""

from __future__ import annotations

from typing import Optional

from mlflow_otel import _runtime
from mlflow_otel._fluent import _context_destination
from mlflow_otel._telemetry import COUNTERS
from mlflow_otel.destinations import Destination
from mlflow_otel.processors import BUILTINS, DropSpan, TracingConfigContext, configure

__all__ = [
    "BUILTINS",
    "DropSpan",
    "TracingConfigContext",
    "configure",
    "disable",
    "enable",
    "is_enabled",
    "reset",
    "set_destination",
    "stats",
]


def disable() -> None:
    """Stop creating spans. Decorated functions then cost one attribute read per call."""
    _runtime.enabled = False


def enable() -> None:
    """Create spans again (also overrides ``MLFLOW_TRACING_ENABLED=false``)."""
    _runtime.enabled = True


def is_enabled() -> bool:
    return _runtime.enabled


def set_destination(destination: Optional[Destination], context_local: bool = False) -> None:
    """Route new traces to ``destination`` (``None`` restores the defaults).

    With ``context_local=True`` only traces started in the current context (this thread, this
    asyncio task and what it spawns) are routed; otherwise every new trace of the process.
    """
    if context_local:
        _context_destination.set(destination)
    else:
        _runtime.set_default_destination(destination)


def stats() -> dict[str, int]:
    """Self-telemetry counters: spans started, sampled out, exported, delivered, dropped (by
    reason, ``dropped.<reason>``), retries and bytes sent, since the process started."""
    return COUNTERS.snapshot()


def reset() -> None:
    """Flush and drop the current pipeline; the next span rebuilds it from the environment."""
    _runtime.reset()
