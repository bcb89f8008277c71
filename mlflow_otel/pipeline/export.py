"""Exporter wrappers the pipeline puts around every destination's exporter, and the small protocol
the exit path speaks to exporters (``exporters/base.py``).

Any OpenTelemetry ``SpanExporter`` is a destination; these wrappers only add what the pipeline
promises around it: one INFO line saying where traces go (``AnnouncingExporter``), a build that
waits for the export thread (``LazyExporter``, e.g. an experiment lookup over the network), and a
user's own exporter that the pipeline borrows but does not own (``BorrowedExporter``), and one
destination's own conventions written on its copy of each span (``ConventionExporter``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Callable, Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel import semconv as conv
from mlflow_otel._log import logger, warn_limited
from mlflow_otel._telemetry import COUNTERS
from mlflow_otel.exporters.base import ExitAware, busy, close_idle, salvage
from mlflow_otel.otlp.ids import mlflow_trace_id
from mlflow_otel.processors.base import SpanView
from mlflow_otel.processors.normalization.outward import outward_attributes, trace_levels


class AnnouncingExporter(SpanExporter):
    """Logs once, at the first export, where traces go: a user should never wonder."""

    def __init__(self, inner: SpanExporter, destination: str) -> None:
        self.inner = inner
        self.destination = destination
        self._announced = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self._announced:
            self._announced = True
            logger.info("Sending traces to %s", self.destination)
        return self.inner.export(spans)

    def begin_exit(self, deadline: Optional[float] = None) -> None:
        if isinstance(self.inner, ExitAware):
            self.inner.begin_exit(deadline)

    def busy(self) -> bool:
        return busy(self.inner)

    def salvage(self, spans: Sequence[ReadableSpan]) -> int:
        return salvage(self.inner, spans)

    def close_idle(self) -> None:
        close_idle(self.inner)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class ConventionExporter(AnnouncingExporter):
    """Writes one destination's conventions (``OtlpDestination(semconv=...)``,
    ``MLFLOW_OTEL_OTLP_SEMCONV``) on the spans it exports, on the export worker: the processor chain
    has run once for every destination, so this is the one place a destination can differ
    (docs/architecture.md, "Conventions per destination"). ``add`` are the conventions the chain did
    not already write; without ``mlflow`` in the destination's conventions MLflow's content keys
    (``mlflow.spanInputs`` / ``mlflow.spanOutputs``) are left out, so a payload travels once.
    Spans handed to ``salvage`` (the spool) are converted too, so a replay sends the same."""

    def __init__(
        self,
        inner: SpanExporter,
        destination: str,
        add: frozenset[str],
        keep_mlflow: bool,
        capture_messages: bool = False,
    ) -> None:
        super().__init__(inner, destination)
        self.add = add
        self.keep_mlflow = keep_mlflow
        self.capture_messages = capture_messages

    def convert(self, span: ReadableSpan, trace_attrs: Optional[dict[str, Any]] = None) -> ReadableSpan:
        raw = span.attributes or {}
        if conv.SPAN_TYPE not in raw:
            return span
        extra = (
            outward_attributes(raw, span.name, self.add, self.capture_messages, trace_attrs)
            if self.add
            else {}
        )
        drop = not self.keep_mlflow and (conv.SPAN_INPUTS in raw or conv.SPAN_OUTPUTS in raw)
        if not extra and not drop:
            return span
        view = SpanView(span)
        attrs = view.writable_attributes()
        attrs.update(extra)
        if drop:
            attrs.pop(conv.SPAN_INPUTS, None)
            attrs.pop(conv.SPAN_OUTPUTS, None)
        return view.result()

    def _converted(self, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
        out = []
        # Each trace's keys from its root, for its other spans (a trace split across batches: those
        # in a batch without the root go without them).
        levels = trace_levels(spans) if "openinference" in self.add else {}
        for span in spans:
            try:
                trace_attrs = levels.get(mlflow_trace_id(span.context.trace_id)) if levels else None
                out.append(self.convert(span, trace_attrs))
            except Exception as exc:  # a span the mapping cannot read still goes, as it is
                COUNTERS.add("processor_errors")
                warn_limited("conventions", "Writing %s's conventions failed: %r", self.destination, exc)
                out.append(span)
        return out

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return super().export(self._converted(spans))

    def salvage(self, spans: Sequence[ReadableSpan]) -> int:
        return salvage(self.inner, self._converted(spans))


class LazyExporter(SpanExporter):
    """Builds its exporter at the first export, on the export thread (e.g. an experiment lookup over
    the network must not run on the app's first traced request). A failed build is retried at the
    next export; the batch in hand is dropped and counted."""

    def __init__(self, build: Callable[[], SpanExporter], what: str) -> None:
        self._build = build
        self._exiting = False
        self._exit_deadline: Optional[float] = None
        self._what = what
        self._inner: Optional[SpanExporter] = None
        self._lock = threading.Lock()
        self._shutdown = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            if self._inner is None and not self._shutdown:
                try:
                    self._inner = self._build()
                    if self._exiting and isinstance(self._inner, ExitAware):
                        self._inner.begin_exit(self._exit_deadline)
                except Exception as exc:
                    COUNTERS.add("dropped.destination_unavailable", len(spans))
                    warn_limited(f"lazy:{self._what}", "Cannot export to %s yet: %s", self._what, exc)
                    return SpanExportResult.FAILURE
            inner = self._inner
        if inner is None:
            return SpanExportResult.FAILURE
        return inner.export(spans)

    @property
    def inner(self) -> Optional[SpanExporter]:
        """The exporter, once built."""
        return self._inner

    def begin_exit(self, deadline: Optional[float] = None) -> None:
        with self._lock:
            self._exiting = True
            self._exit_deadline = deadline
            inner = self._inner
        if isinstance(inner, ExitAware):
            inner.begin_exit(deadline)

    def busy(self) -> bool:
        return busy(self._inner)

    def salvage(self, spans: Sequence[ReadableSpan]) -> int:
        return salvage(self._inner, spans)

    def close_idle(self) -> None:
        close_idle(self._inner)

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown = True
            if self._inner is not None:
                self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        inner = self._inner
        return True if inner is None else inner.force_flush(timeout_millis)


class BorrowedExporter(SpanExporter):
    """A user's ``SpanExporter`` given as a destination: the pipeline exports to it and flushes it,
    but shuts it down only at interpreter exit (the user may hand the same object to a later
    ``set_destination``, and a shut-down OTel exporter refuses every export)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.final = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export(spans)

    def shutdown(self) -> None:
        try:
            if self.final:
                self.inner.shutdown()
            else:
                self.inner.force_flush()
        except Exception as exc:
            warn_limited("borrowed_shutdown", "%s failed to flush: %r", type(self.inner).__name__, exc)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
