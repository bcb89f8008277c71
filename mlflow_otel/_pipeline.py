"""Assembles the export pipeline from settings, in one place (DESIGN.md section 3).

    span end -> TraceAssembler -> BatchProcessor -> exporter (OTLP HTTP/gRPC, or the local file)

Later stages (processor chain, sampling, several destinations) are added here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel._assembly import TraceAssembler
from mlflow_otel._log import logger
from mlflow_otel._settings import PROTOCOL_GRPC, Settings
from mlflow_otel.batching import BatchProcessor
from mlflow_otel.exporters.file import OtlpJsonFileExporter
from mlflow_otel.exporters.otlp import ExporterUnavailable, build_otlp_exporter


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

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _file_destination(path: str) -> tuple[SpanExporter, str]:
    exporter = OtlpJsonFileExporter(path)
    return exporter, f"the local file {exporter.path} (view them with `mlflow-otel show`)"


def build_exporter(settings: Settings) -> tuple[SpanExporter, str]:
    """The configured exporter and a human description of where it sends traces."""
    if settings.otlp is None:
        return _file_destination(settings.traces_file)
    otlp = settings.otlp
    try:
        exporter = build_otlp_exporter(otlp)
    except ExporterUnavailable as exc:
        fallback, where = _file_destination(settings.traces_file)
        logger.warning("%s; traces go to %s instead.", exc, where)
        return fallback, where
    logger.debug("OTLP traces endpoint resolved to %s (%s)", otlp.endpoint, otlp.protocol)
    name = "OTLP/gRPC" if otlp.protocol == PROTOCOL_GRPC else "OTLP/HTTP"
    return exporter, f"{name} {otlp.endpoint}"


@dataclass
class Pipeline:
    head: TraceAssembler
    batch: BatchProcessor
    destination: str


def build_pipeline(settings: Settings) -> Pipeline:
    exporter, destination = build_exporter(settings)
    batch = BatchProcessor(
        AnnouncingExporter(exporter, destination),
        max_queue_size=settings.max_queue_size,
        max_export_batch_size=settings.max_export_batch_size,
        schedule_delay_s=settings.schedule_delay_s,
    )
    return Pipeline(head=TraceAssembler(batch), batch=batch, destination=destination)
