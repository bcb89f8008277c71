"""Process-wide tracing state: the on/off switch, the TracerProvider, code-level settings, exit.

The provider and pipeline are built lazily at the first span, from settings read once, so
``import mlflow_otel`` stays cheap and a process that never traces pays nothing. The switch is a
plain module attribute, read on every decorated call: with tracing disabled a call costs one
attribute read. Settings made in code (``set_tracking_uri``, ``set_experiment``,
``tracing.set_destination``) beat the environment and rebuild the pipeline.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import threading
import time
from typing import Any, Callable, Optional

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from mlflow_otel import _assembly
from mlflow_otel._conventions import SCOPE_NAME
from mlflow_otel._log import ensure_visible, logger, warn_limited
from mlflow_otel._pipeline import Pipeline
from mlflow_otel._settings import Settings, load_settings, tracing_enabled_from_env
from mlflow_otel._telemetry import COUNTERS
from mlflow_otel._tracer import LeanTracer
from mlflow_otel.destinations import Destination
from mlflow_otel.sampling import sampler_for
from mlflow_otel.version import VERSION

#: Read on the hot path; flipped by ``tracing.enable()`` / ``tracing.disable()``.
enabled: bool = tracing_enabled_from_env()

#: Settings made in code: field name of ``Settings`` -> value. They beat the environment.
_overrides: dict[str, Any] = {}
#: ``tracing.set_destination(dest)`` (process-wide): replaces the default destinations.
_destination: Optional[Destination] = None

#: How often the stats file is rewritten while the process runs.
STATS_INTERVAL_S = 5.0


class _Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pipeline = Pipeline(settings, _destination)
        sampler = sampler_for(settings.sampling_ratio, settings.otel_sampler, settings.otel_sampler_arg)
        self.provider: Any
        joined = None
        if not settings.use_default_tracer_provider:
            joined = _join_global_provider(self.pipeline)
        if joined is not None:
            self.provider = joined
        else:
            # shutdown_on_exit=False: the SDK's own atexit hook waits for its processors without a
            # deadline; ours (below) bounds the exit flush instead.
            # The SDK's attribute length limit would slice JSON mid-string; the trimming processor
            # applies OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT instead, keeping JSON valid.
            limits = SpanLimits(
                max_attribute_length=SpanLimits.UNSET, max_span_attribute_length=SpanLimits.UNSET
            )
            self.provider = TracerProvider(
                resource=Resource.create(), sampler=sampler, shutdown_on_exit=False, span_limits=limits
            )
            self.provider.add_span_processor(self.pipeline.head)
            if not settings.use_default_tracer_provider:
                otel_trace.set_tracer_provider(self.provider)
        self.tracer: Any
        if joined is not None:
            # The application's provider: its processors and sampler must see our spans.
            self.tracer = self.provider.get_tracer(SCOPE_NAME, VERSION)
        else:
            self.tracer = LeanTracer(
                sampler,
                self.provider.resource,
                InstrumentationScope(SCOPE_NAME, VERSION),
                self.pipeline.head.on_end,
            )
        self.watcher: Optional[_assembly.TimeoutWatcher] = None
        if settings.trace_timeout_s is not None:
            self.watcher = _assembly.TimeoutWatcher(
                settings.trace_timeout_s, settings.trace_timeout_check_interval_s
            )
        self.stats_path = settings.stats_file or (
            settings.traces_file + ".stats.json"
            if any(d.startswith("the local file") for d in self.pipeline.destinations)
            else None
        )
        self._stats_stop = threading.Event()
        if self.stats_path:
            threading.Thread(target=self._stats_loop, name="mlflow-otel-stats", daemon=True).start()

    def _stats_loop(self) -> None:
        last: dict[str, int] = {}
        while not self._stats_stop.wait(STATS_INTERVAL_S):
            snapshot = COUNTERS.snapshot()
            if snapshot != last:
                self.write_stats()
                last = snapshot

    def write_stats(self) -> None:
        if not self.stats_path:
            return
        try:
            data = {
                "pid": os.getpid(),
                "destinations": self.pipeline.destinations,
                "counters": COUNTERS.snapshot(),
            }
            tmp = f"{self.stats_path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
            os.replace(tmp, self.stats_path)
        except OSError as exc:
            warn_limited("stats", "Could not write %s: %s", self.stats_path, exc)

    def flush(self, timeout_s: float) -> bool:
        ok = self.pipeline.flush(timeout_s)
        self.write_stats()
        return ok

    def shutdown(self, timeout_s: float) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self._stats_stop.set()
        self.pipeline.shutdown(timeout_s)
        self.write_stats()


def _join_global_provider(pipeline: Pipeline) -> Optional[Any]:
    """Add our pipeline to the application's SDK TracerProvider, if it has one (setting:
    ``MLFLOW_USE_DEFAULT_TRACER_PROVIDER=false``). Then FastAPI/httpx spans and ours share one
    pipeline; the application's sampler applies. With no SDK provider installed yet, ours is
    installed as the global one instead (caller)."""
    current = otel_trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        current.add_span_processor(pipeline.head)
        logger.debug("Joined the application's global TracerProvider.")
        return current
    return None


_lock = threading.RLock()
_runtime: Optional[_Runtime] = None


def current_settings() -> Settings:
    settings = load_settings()
    return dataclasses.replace(settings, **_overrides) if _overrides else settings


def runtime() -> _Runtime:
    rt = _runtime
    return rt if rt is not None else _init()


def _init() -> _Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            ensure_visible()
            _runtime = _Runtime(current_settings())
        return _runtime


def tracer() -> Any:
    rt = _runtime
    return rt.tracer if rt is not None else _init().tracer


def flush(timeout_s: Optional[float] = None) -> bool:
    """Export everything finished so far; True if it all went out before the deadline."""
    rt = _runtime
    if rt is None:
        return True
    return rt.flush(rt.settings.exit_timeout_s * 5 if timeout_s is None else timeout_s)


def _replace(change: Optional[Callable[[], None]] = None) -> None:
    """Apply ``change`` and drop the current pipeline; the next span builds one from the environment
    and the code-level settings as they are then. Finished spans are flushed to the old
    destinations first, within the exit deadline."""
    global _runtime
    with _lock:
        if change is not None:
            change()
        rt, _runtime = _runtime, None
    if rt is not None:
        rt.shutdown(rt.settings.exit_timeout_s)


def reset() -> None:
    """Shut the current pipeline down and forget open traces (tests, re-configuration)."""
    global enabled
    _replace()
    _assembly.clear()
    enabled = tracing_enabled_from_env()


def override(**values: Any) -> None:
    """Apply code-level settings (``set_tracking_uri``, ``set_experiment``)."""
    _replace(lambda: _overrides.update(values))


def set_default_destination(destination: Optional[Destination]) -> None:
    """``tracing.set_destination(dest)`` for the whole process."""

    def change() -> None:
        global _destination
        _destination = destination

    _replace(change)


def clear_overrides() -> None:
    global _destination
    with _lock:
        _overrides.clear()
        _destination = None


def _at_exit() -> None:
    """Flush at interpreter exit, bounded by ``MLFLOW_OTEL_EXIT_TIMEOUT_SECONDS``."""
    rt = _runtime
    if rt is None:
        return
    try:
        from mlflow_otel.exporters import otlp

        otlp.set_exit_deadline(time.monotonic() + rt.settings.exit_timeout_s)
        rt.shutdown(rt.settings.exit_timeout_s)
    except Exception as exc:  # pragma: no cover - never fail the interpreter's exit
        warn_limited("exit", "Flushing traces at exit failed: %s", exc)


def _after_fork_in_child() -> None:
    _assembly.clear()
    COUNTERS.reset()


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
