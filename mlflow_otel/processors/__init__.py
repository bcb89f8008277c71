"""Span processors: the stage between a finished span and its destinations.

A processor is a plain callable ``fn(span) -> None`` given a :class:`SpanView` (MLflow's contract),
or an OpenTelemetry ``SpanProcessor``; register them with
``mlflow_otel.tracing.configure(span_processors=[...])``. The built-ins live beside this file, one
directory each with its README: ``content`` (the capture switch), ``redaction`` (the OTel
Collector's schema) and ``trimming``. docs/architecture.md shows where the chain runs.
"""

from mlflow_otel._state import BUILTINS
from mlflow_otel.processors.base import DropSpan, Processor, SpanView

__all__ = ["BUILTINS", "DropSpan", "Processor", "SpanView"]
