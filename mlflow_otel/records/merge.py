"""``mlflow.add_trace``: a finished trace (e.g. returned by a remote service) merged into the
current one. It reads a ``Trace`` entity, so it sits on the read side's floor, above ``spans/``."""

from __future__ import annotations

from typing import Any

from mlflow_otel import semconv as conv
from mlflow_otel._state import STATE
from mlflow_otel.exceptions import MlflowException
from mlflow_otel.records.model import Trace, TraceState
from mlflow_otel.spans.fluent import get_current_active_span, start_span_no_context
from mlflow_otel.spans.types import SpanType

__all__ = ["add_trace"]


def add_trace(trace: Any, target: Any = None) -> None:
    """Merge a finished trace (a ``Trace`` or its dict, e.g. returned by a remote service) into the
    current trace, under ``target`` or the current span; with neither, under a new root named
    ``Remote Trace <name>`` (MLflow's ``add_trace``). The spans get new ids in this trace and keep
    their names, types, times, inputs, outputs, attributes, events and status.

    An invalid ``trace`` raises ``MlflowException`` (MLflow's behaviour: a caller's mistake)."""
    if not STATE.enabled:
        return
    if isinstance(trace, dict):
        try:
            trace = Trace.from_dict(trace)
        except Exception as exc:
            raise MlflowException.invalid_parameter_value(
                f"Failed to load a trace object from the given dictionary: {exc}"
            ) from exc
    elif not isinstance(trace, Trace):
        raise MlflowException.invalid_parameter_value(
            f"Invalid trace object: {type(trace)}. Please provide a valid MLflow Trace object."
        )
    if trace.info.state not in (TraceState.OK, TraceState.ERROR):
        raise MlflowException.invalid_parameter_value(
            f"The trace must be ended before adding it to another trace. Current status: {trace.info.state}."
        )
    spans = sorted(trace.data.spans, key=lambda s: s.start_time_ns)
    if not spans:
        return
    parent = target if target is not None else get_current_active_span()
    wrapper = None
    if parent is None:
        first = spans[0]
        wrapper = parent = start_span_no_context(
            f"Remote Trace <{first.name}>",
            inputs=first.inputs,
            start_time_ns=first.start_time_ns - 1,
        )
    ids = {span.span_id for span in spans}
    created: dict[str, Any] = {}
    for span in spans:
        attrs = {
            k: v
            for k, v in span.raw_attributes.items()
            if k not in (conv.TRACE_REQUEST_ID, conv.SPAN_INPUTS, conv.SPAN_OUTPUTS, conv.SPAN_TYPE)
        }
        copy = start_span_no_context(
            span.name,
            span_type=span.span_type or SpanType.UNKNOWN,
            parent_span=created.get(span.parent_id) if span.parent_id in ids else parent,
            inputs=span.inputs,
            attributes=attrs,
            start_time_ns=span.start_time_ns,
        )
        for event in span.events:
            copy.add_event(event)
        created[span.span_id] = copy
    for span in reversed(spans):  # children end before their parents
        created[span.span_id].end(outputs=span.outputs, status=span.status, end_time_ns=span.end_time_ns)
    if wrapper is not None:
        last = spans[0]
        wrapper.end(outputs=last.outputs, status=trace.info.state.value, end_time_ns=last.end_time_ns)
