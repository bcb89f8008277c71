"""The tracer provider every OpenTelemetry instrumentor is bound to: ours, never the application's.

An instrumentor takes ``instrument(tracer_provider=...)`` once and keeps the tracers it gets from it
for as long as it is instrumented. Our pipeline, however, is replaced whole when settings change
(``set_destination``, ``set_tracking_uri``, ``tracing.reset``: ``_runtime.replace``). So the provider
handed out here is a stable face that forwards: each ``start_span`` goes to the tracer of the
running pipeline's SDK ``TracerProvider`` (its sampler, resource and span limits; the pipeline head
as its span processor, so third-party spans take the same path as ours, docs/architecture.md).
The application's global provider is never read or set (OTel's ``trace.get_tracer_provider`` is
what an instrumentor would use without this argument); in joined mode the running pipeline's
provider *is* the application's, which is what joined mode means.

Tracing switched off (``tracing.disable()``, ``tracing.context(enabled=False)``) means no span is
made: the tracer answers as OpenTelemetry's no-op tracer does.

The scope names instrumentors ask tracers for are recorded (``_runtime.register_scope``): the
pipeline head adopts spans of these scopes into traces (``spans/adopt.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Optional

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from mlflow_otel import _runtime
from mlflow_otel._state import STATE
from mlflow_otel.spans.fluent import suppressed

_NO_OP = trace_api.NoOpTracer()


class PipelineTracer(trace_api.Tracer):
    """A tracer that starts each span on the running pipeline's provider (see the module doc)."""

    __slots__ = ("_args", "_runtime", "_tracer")

    def __init__(self, *args: Any) -> None:
        self._args = args
        self._runtime: Any = None
        self._tracer: Any = None

    def _current(self) -> Any:
        rt = _runtime.running()
        if rt is not self._runtime:
            self._tracer = rt.provider.get_tracer(*self._args)
            self._runtime = rt
        return self._tracer

    def _off(self) -> bool:
        return not STATE.enabled or suppressed()

    def start_span(
        self,
        name: str,
        context: Optional[Context] = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Optional[Sequence[Link]] = None,
        start_time: Optional[int] = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        tracer = _NO_OP if self._off() else self._current()
        return tracer.start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )

    @contextmanager  # type: ignore[override]
    def start_as_current_span(
        self,
        name: str,
        context: Optional[Context] = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Optional[Sequence[Link]] = None,
        start_time: Optional[int] = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace_api.Span]:
        tracer = _NO_OP if self._off() else self._current()
        with tracer.start_as_current_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
            end_on_exit,
        ) as span:
            yield span


class PipelineTracerProvider(trace_api.TracerProvider):
    """What ``autolog()`` passes as ``tracer_provider=``: tracers that follow the running pipeline."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: Optional[str] = None,
        schema_url: Optional[str] = None,
        attributes: Attributes = None,
    ) -> trace_api.Tracer:
        _runtime.register_scope(instrumenting_module_name)
        return PipelineTracer(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )


#: The one provider instrumentors are bound to.
TRACER_PROVIDER = PipelineTracerProvider()
