"""Process-wide tracing state: the on/off switch, our TracerProvider, and exit handling.

The provider is built lazily at the first span, from settings read once, so ``import mlflow_otel``
stays cheap and a process that never traces pays nothing. The switch is a plain module attribute,
read on every decorated call: with tracing disabled, a call costs one attribute read.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Optional

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Tracer, TracerProvider

from mlflow_otel import _assembly
from mlflow_otel._conventions import SCOPE_NAME
from mlflow_otel._log import ensure_visible, warn_limited
from mlflow_otel._pipeline import Pipeline, build_pipeline
from mlflow_otel._settings import Settings, load_settings, tracing_enabled_from_env
from mlflow_otel.version import VERSION

#: Read on the hot path; flipped by ``tracing.enable()`` / ``tracing.disable()``.
enabled: bool = tracing_enabled_from_env()


class _Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pipeline: Pipeline = build_pipeline(settings)
        # shutdown_on_exit=False: the SDK's own atexit hook joins the export thread without a
        # deadline; ours (below) bounds the exit flush instead.
        self.provider = TracerProvider(resource=Resource.create(), shutdown_on_exit=False)
        self.provider.add_span_processor(self.pipeline.head)
        self.tracer: Tracer = self.provider.get_tracer(SCOPE_NAME, VERSION)
        self.watcher: Optional[_assembly.TimeoutWatcher] = None
        if settings.trace_timeout_s is not None:
            self.watcher = _assembly.TimeoutWatcher(
                settings.trace_timeout_s, settings.trace_timeout_check_interval_s
            )

    def flush(self, timeout_s: float) -> bool:
        return self.pipeline.batch.force_flush(int(timeout_s * 1000))

    def shutdown(self, timeout_s: float) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.pipeline.batch.shutdown(int(timeout_s * 1000))


_lock = threading.Lock()
_runtime: Optional[_Runtime] = None


def runtime() -> _Runtime:
    rt = _runtime
    if rt is not None:
        return rt
    return _init()


def _init() -> _Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            ensure_visible()
            _runtime = _Runtime(load_settings())
        return _runtime


def tracer() -> Tracer:
    rt = _runtime
    return rt.tracer if rt is not None else _init().tracer


def flush(timeout_s: Optional[float] = None) -> bool:
    """Export everything finished so far; True if it all went out before the deadline."""
    rt = _runtime
    if rt is None:
        return True
    return rt.flush(rt.settings.exit_timeout_s * 5 if timeout_s is None else timeout_s)


def reset() -> None:
    """Shut the current pipeline down and forget it; the next span builds a new one from the
    environment as it is then. For tests and for re-configuration."""
    global _runtime, enabled
    with _lock:
        rt, _runtime = _runtime, None
    if rt is not None:
        rt.shutdown(rt.settings.exit_timeout_s)
    _assembly.clear()
    enabled = tracing_enabled_from_env()


def _at_exit() -> None:
    """Flush at interpreter exit, bounded by ``MLFLOW_OTEL_EXIT_TIMEOUT_SECONDS``."""
    rt = _runtime
    if rt is None:
        return
    try:
        rt.shutdown(rt.settings.exit_timeout_s)
    except Exception as exc:  # pragma: no cover - never fail the interpreter's exit
        warn_limited("exit", "Flushing traces at exit failed: %s", exc)


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_assembly.clear)
