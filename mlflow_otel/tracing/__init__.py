"""``mlflow_otel.tracing``: switches, the processor chain, routing (MLflow's ``mlflow.tracing``).

The extension points are OpenTelemetry's own: ``configure(span_processors=[...])`` takes MLflow-style
callables and OTel ``SpanProcessor`` objects; ``set_destination`` / ``add_destination`` /
``trace_destination=`` take our destinations and any OTel ``SpanExporter``. Every destination, ours
or the user's, receives spans after the processor chain (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Optional, Union

from mlflow_otel import _runtime
from mlflow_otel._state import BUILTINS, STATE
from mlflow_otel.destinations import Destination
from mlflow_otel.processors import DropSpan
from mlflow_otel.spans.fluent import (
    TraceContext,
    enter_trace_context,
    exit_trace_context,
    set_context_destination,
    trace_level_attributes,
)
from mlflow_otel.spans.fluent import trace as trace
from mlflow_otel.tracing.distributed import (
    get_tracing_context_headers_for_http_request,
    set_tracing_context_from_http_request_headers,
)

__all__ = [
    "BUILTINS",
    "DropSpan",
    "TracingConfigContext",
    "add_destination",
    "configure",
    "context",
    "disable",
    "disable_notebook_display",
    "enable",
    "enable_notebook_display",
    "get_tracing_context_headers_for_http_request",
    "is_enabled",
    "reset",
    "set_destination",
    "set_tracing_context_from_http_request_headers",
    "stats",
    "trace",
]

_MISSING: Any = object()


@contextlib.contextmanager
def context(
    metadata: Optional[dict[str, Any]] = None,
    tags: Optional[dict[str, Any]] = None,
    enabled: Optional[bool] = None,
    session_id: Optional[str] = None,
    user: Optional[str] = None,
) -> Iterator[None]:
    """Stamp every trace started inside the block (MLflow's ``mlflow.tracing.context``): its tags
    and metadata, session and user (metadata ``mlflow.trace.session`` / ``mlflow.trace.user``).
    Nested blocks merge, the inner one winning on a key. ``enabled=False`` creates no spans inside
    the block (this context only: other threads and tasks trace on)."""
    attributes = trace_level_attributes(tags, metadata, session_id, user)
    token = enter_trace_context(TraceContext(attributes, enabled))
    try:
        yield
    finally:
        exit_trace_context(token)


def enable_notebook_display() -> None:
    """Let a ``Trace`` render itself in Jupyter (MLflow's switch; on by default). Outside a
    notebook nothing is displayed either way."""
    STATE.notebook_display = True


def disable_notebook_display() -> None:
    """Stop a ``Trace`` rendering itself in Jupyter (MLflow's switch). Outside a notebook nothing
    is displayed either way."""
    STATE.notebook_display = False


def disable() -> None:
    """Stop creating spans. Decorated functions then cost one attribute read per call."""
    STATE.enabled = False


def enable() -> None:
    """Create spans again (also overrides ``MLFLOW_TRACING_ENABLED=false``)."""
    STATE.enabled = True


def is_enabled() -> bool:
    return STATE.enabled


def _as_tuple(destination: Union[Destination, Sequence[Destination], None]) -> Optional[tuple[Any, ...]]:
    if destination is None:
        return None
    if isinstance(destination, (list, tuple)):
        return tuple(destination) or None
    return (destination,)


def set_destination(
    destination: Union[Destination, Sequence[Destination], None], context_local: bool = False
) -> None:
    """Route new traces to ``destination`` (``None`` restores the defaults).

    A destination is ``MlflowExperimentLocation``, ``OtlpDestination``, ``FileDestination`` (from
    ``mlflow_otel.destinations``), any OpenTelemetry ``SpanExporter``, or a list of them. With
    ``context_local=True`` only traces started in the current context (this thread, this asyncio
    task and what it spawns) are routed; otherwise every new trace of the process. Setting the
    destination already in force costs nothing.
    """
    chosen = _as_tuple(destination)
    if context_local:
        set_context_destination(chosen)
        return
    # Nothing is rebuilt and nothing waits: traces started from now on carry the destination, and
    # its export stage is built by the export worker the first time a span goes there.
    STATE.destinations = chosen


def add_destination(destination: Destination) -> None:
    """Send every trace to ``destination`` as well, beside the default destinations (an OTLP
    endpoint, an MLflow server, the local file, whatever the settings name)."""
    if destination in STATE.extra_destinations:
        return

    def change() -> None:
        STATE.extra_destinations = (*STATE.extra_destinations, destination)

    _runtime.replace(change)


class TracingConfigContext:
    """Returned by ``configure``: the change is in force now; as a context manager, the previous
    configuration comes back on exit (MLflow's ``TracingConfigContext``)."""

    def __init__(self, previous: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
        self._previous = previous

    def __enter__(self) -> TracingConfigContext:
        return self

    def __exit__(self, *exc: Any) -> None:
        STATE.restore_chain(self._previous)


def configure(
    span_processors: Optional[Sequence[Any]] = None,
    *,
    capture_content: Optional[bool] = None,
    redaction: Any = _MISSING,
    redaction_defaults: Optional[bool] = None,
    max_attribute_bytes: Optional[int] = None,
    max_span_bytes: Optional[int] = None,
    tail_sampling: Any = _MISSING,
) -> TracingConfigContext:
    """Configure the processor chain; only the arguments given change (MLflow's semantics).

    ``span_processors``: MLflow-style hooks ``fn(span) -> None`` run in order, before the built-ins
    unless placed after ``BUILTINS``; OpenTelemetry ``SpanProcessor`` objects, whose ``on_start``
    runs on the app thread as each span starts and ``on_end`` off it, after the built-ins (they see
    the span as it will be exported). ``capture_content``: False drops inputs, outputs, messages and
    stream chunks (names, types, status, timings, model and token usage stay). ``redaction``: a
    policy in the OTel Collector redaction processor's schema (a dict, a path to a YAML/JSON file),
    or None to remove the user policy. ``redaction_defaults``: False switches the built-in secret
    patterns off. ``max_attribute_bytes`` / ``max_span_bytes``: trimming budgets.
    ``tail_sampling``: policies in the OTel Collector ``tail_sampling`` processor's schema (a list,
    a mapping, a path to a YAML/JSON file), or None to sample no more at the tail.
    """
    hooks = None
    if span_processors is not None:
        hooks = tuple(span_processors)
        for hook in hooks:
            if hook is not BUILTINS and not callable(hook) and not hasattr(hook, "on_end"):
                raise TypeError(f"span processor {hook!r} is neither callable nor an OTel SpanProcessor")
    options = {
        key: value
        for key, value in {
            "capture_content": capture_content,
            "redaction_defaults": redaction_defaults,
            "max_attribute_bytes": max_attribute_bytes,
            "max_span_bytes": max_span_bytes,
        }.items()
        if value is not None
    }
    if redaction is not _MISSING:
        options["redaction"] = redaction
    if tail_sampling is not _MISSING:
        options["tail_sampling"] = tail_sampling
    return TracingConfigContext(STATE.configure_chain(hooks, options))


def stats() -> dict[str, int]:
    """Self-telemetry counters: spans started, sampled out, exported, delivered, dropped (by
    reason, ``dropped.<reason>``), retries and bytes sent, since the process started."""
    return _runtime.RUNTIME.counters.snapshot()


def reset() -> None:
    """Flush and drop the current pipeline; the next span rebuilds it from the environment."""
    _runtime.reset()
