"""Spans other instrumentations start, as the pipeline head sees them start (app thread).

The SDK's tracer reports every span it starts to the head's ``on_start`` (``pipeline/assembly.py``):
the spans of the instrumentors ``autolog()`` bound to us (``integrations/provider.py``) and, in
joined mode, every other instrumentation's. Two things happen here, both cheap:

* **stamping**: inside ``tracing.context(session_id=, user=, tags=, metadata=)`` every such span
  carries the block's attributes (``session.id``, ``user.id``, ``mlflow.traceMetadata.*``,
  ``mlflow.traceTag.*``), as our own root spans do (``spans/fluent.py``), so a trace a library
  starts gets them in its record (``records/from_spans.py`` reads its root) and every span shows
  session and user in backends that render the OTel keys (MLflow 3.11's ``mlflow.tracing.context``).
* **adoption**: an autolog integration's span joins the registry like one of ours: inside an open
  trace of ours it becomes a member (held with the trace until its local root ends, so the
  processors see a trace's spans children first and the tail decision sees the trace whole), and
  outside one it becomes the local root of a trace of its own, as MLflow's autolog spans are
  (``get_last_active_trace_id``, the trace timeout, exit and the ``mlflow_traces`` fixture then
  treat it as any trace). Spans of other scopes (joined mode: FastAPI, httpx) pass as before.
"""

from __future__ import annotations

from typing import Any, Callable

from mlflow_otel import semconv as conv
from mlflow_otel.spans.live import LiveSpan
from mlflow_otel.spans.tracer import RUNNING
from mlflow_otel.spans.types import SpanType

#: ``spans.fluent.current_trace_context``, looked up at the first span: fluent imports the runtime,
#: which imports the pipeline that imports this module.
_context_lookup: list[Callable[[], Any]] = []


def _trace_context() -> Any:
    if not _context_lookup:
        from mlflow_otel.spans.fluent import current_trace_context

        _context_lookup.append(current_trace_context)
    return _context_lookup[0]()


def started(span: Any) -> None:
    """A span another instrumentation started through the SDK tracer (see the module doc)."""
    scope = span.instrumentation_scope
    name = scope.name if scope is not None else None
    if name == conv.SCOPE_NAME:  # ours, in joined mode: the builders did all of this already
        return
    context = _trace_context()
    if context is not None and context.attributes:
        span.set_attributes(context.attributes)
    if name in RUNNING.scopes:
        _adopt(span)


def _adopt(span: Any) -> None:
    span_context = span.get_span_context()
    trace_id = span_context.trace_id
    registry = RUNNING.registry
    state = registry.open_trace(trace_id)
    if state is None:
        if registry.timed_out(trace_id):
            return  # the timeout exported this trace; a late span goes on its own
        state = registry.join_trace(trace_id)
    if state.closed:
        return
    span.set_attribute(conv.TRACE_REQUEST_ID, state.request_id_json)
    name = span.name
    live = LiveSpan(span, state, SpanType.UNKNOWN, name)
    registry.track(live, span_context.span_id, state)
