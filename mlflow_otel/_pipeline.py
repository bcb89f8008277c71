"""Assembles the export pipeline from settings, in one place (DESIGN.md section 3).

    span end -> TraceAssembler -> route -> one BatchProcessor per destination -> its exporter

Each destination (an OTLP endpoint, an MLflow server experiment, the local file) has its own queue
and workers, so a dead one never stalls another. A trace goes to the default destinations unless it
was routed elsewhere (``trace_destination=``, ``tracing.set_destination``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel import _mlflow_server
from mlflow_otel._assembly import TraceAssembler
from mlflow_otel._log import logger, warn_limited
from mlflow_otel._settings import PROTOCOL_GRPC, PROTOCOL_HTTP, OtlpSettings, Settings
from mlflow_otel._telemetry import COUNTERS
from mlflow_otel.batching import BatchProcessor
from mlflow_otel.destinations import Destination, FileDestination, MlflowExperimentLocation, OtlpDestination
from mlflow_otel.exporters.file import OtlpJsonFileExporter
from mlflow_otel.exporters.otlp import ExporterUnavailable, build_otlp_exporter

#: Default request size caps: gRPC servers reject messages over 4 MiB by default, the Collector's
#: OTLP/HTTP receiver bodies over 20 MiB; keep a margin for framing and headers.
GRPC_MAX_REQUEST_BYTES = 4 * 1024 * 1024 - 64 * 1024
HTTP_MAX_REQUEST_BYTES = 20 * 1024 * 1024 - 64 * 1024


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


class ProcessingExporter(SpanExporter):
    """Runs the processor chain (hooks, content switch, redaction, trimming) on the export worker,
    just before encoding: the request path never pays for it."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from mlflow_otel.processors import process_batch

        processed = process_batch(spans)
        if not processed:
            return SpanExportResult.SUCCESS
        return self.inner.export(processed)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _listen_reachability(exporter: SpanExporter, listener: Callable[[bool], None]) -> None:
    """Connect an OTLP exporter's reachability reports to its queue (other exporters have none)."""
    if hasattr(exporter, "on_reachability"):
        exporter.on_reachability = listener  # type: ignore[attr-defined]


class LazyExporter(SpanExporter):
    """Builds its exporter at the first export, on the export thread (e.g. an experiment lookup over
    the network must not run on the app's first traced request). A failed build is retried at the
    next export; the batch in hand is dropped and counted."""

    def __init__(self, build: Callable[[], SpanExporter], what: str) -> None:
        self._build = build
        self._what = what
        self._inner: Optional[SpanExporter] = None
        self._lock = threading.Lock()
        self._shutdown = False
        #: Handed on to the exporter once it is built.
        self.on_reachability: Optional[Callable[[bool], None]] = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            if self._inner is None and not self._shutdown:
                try:
                    self._inner = self._build()
                    if self.on_reachability is not None:
                        _listen_reachability(self._inner, self.on_reachability)
                except Exception as exc:
                    COUNTERS.add("dropped.destination_unavailable", len(spans))
                    warn_limited(f"lazy:{self._what}", "Cannot export to %s yet: %s", self._what, exc)
                    return SpanExportResult.FAILURE
            inner = self._inner
        if inner is None:
            return SpanExportResult.FAILURE
        return inner.export(spans)

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown = True
            if self._inner is not None:
                self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@dataclass(frozen=True)
class Route:
    """A resolved destination: a stable key, a description for logs, and how to build its exporter."""

    key: str
    description: str
    build: Callable[[], SpanExporter]


def _otlp_route(otlp: OtlpSettings, settings: Settings, label: str = "") -> Route:
    limit = settings.max_request_bytes or (
        GRPC_MAX_REQUEST_BYTES if otlp.protocol == PROTOCOL_GRPC else HTTP_MAX_REQUEST_BYTES
    )
    name = "OTLP/gRPC" if otlp.protocol == PROTOCOL_GRPC else "OTLP/HTTP"
    headers_key = ",".join(f"{k}={v}" for k, v in sorted(otlp.headers.items()))
    return Route(
        key=f"otlp|{otlp.protocol}|{otlp.endpoint}|{headers_key}",
        description=f"{label}{name} {otlp.endpoint}",
        build=lambda: build_otlp_exporter(otlp, limit, settings.retry_timeout_s),
    )


def _file_route(path: str) -> Route:
    exporter_path = OtlpJsonFileExporter(path).path
    return Route(
        key=f"file|{exporter_path}",
        description=f"the local file {exporter_path} (view them with `mlflow-otel show`)",
        build=lambda: OtlpJsonFileExporter(exporter_path),
    )


def _mlflow_route(
    settings: Settings, tracking_uri: str, experiment_id: Optional[str], name: Optional[str]
) -> Route:
    """OTLP/HTTP to an MLflow server; an experiment given by name is resolved on the export thread."""
    endpoint = _mlflow_server.traces_endpoint(tracking_uri)

    def build() -> SpanExporter:
        exp_id = experiment_id
        if exp_id is None:
            exp_id = (
                _mlflow_server.get_or_create_experiment(tracking_uri, name)
                if name
                else _mlflow_server.DEFAULT_EXPERIMENT_ID
            )
        otlp = OtlpSettings(PROTOCOL_HTTP, endpoint, {_mlflow_server.EXPERIMENT_ID_HEADER: exp_id}, 10.0)
        return _otlp_route(otlp, settings).build()

    which = (
        f"experiment {experiment_id}" if experiment_id else f"experiment {name!r}" if name else "experiment 0"
    )
    return Route(
        key=f"mlflow|{tracking_uri}|{experiment_id}|{name}",
        description=f"the MLflow server {tracking_uri} ({which}, OTLP/HTTP {endpoint})",
        build=lambda: LazyExporter(build, f"MLflow server {tracking_uri}"),
    )


def resolve(destination: Destination, settings: Settings) -> Optional[Route]:
    if isinstance(destination, MlflowExperimentLocation):
        uri = destination.tracking_uri or settings.tracking_uri
        if not _mlflow_server.is_http_uri(uri):
            warn_limited(
                "destination",
                "%r needs an http(s) tracking URI (set_tracking_uri or MLFLOW_TRACKING_URI); "
                "using the default destination.",
                destination,
            )
            return None
        return _mlflow_route(settings, uri, str(destination.experiment_id), None)  # type: ignore[arg-type]
    if isinstance(destination, OtlpDestination):
        otlp = OtlpSettings(destination.protocol, destination.endpoint, dict(destination.headers))
        return _otlp_route(otlp, settings)
    if isinstance(destination, FileDestination):
        return _file_route(destination.path)
    warn_limited("destination", "Unknown trace destination %r; using the default destination.", destination)
    return None


def default_routes(settings: Settings, override: Optional[Destination] = None) -> list[Route]:
    """The process-wide destinations: OTLP from ``OTEL_EXPORTER_OTLP_*`` and/or an MLflow server
    from the tracking URI (both at once is dual export); the local file when neither is set."""
    if override is not None:
        route = resolve(override, settings)
        if route is not None:
            return [route]
    routes: list[Route] = []
    if settings.otlp is not None:
        routes.append(_otlp_route(settings.otlp, settings))
    if settings.tracking_uri:
        if _mlflow_server.is_http_uri(settings.tracking_uri):
            routes.append(
                _mlflow_route(
                    settings, settings.tracking_uri, settings.experiment_id, settings.experiment_name
                )
            )
        else:
            warn_limited(
                "tracking_uri",
                "Tracking URI %r is not an http(s) MLflow server; mlflow-otel only sends traces over OTLP, "
                "so it is ignored.",
                settings.tracking_uri,
            )
    return routes or [_file_route(settings.traces_file)]


class Pipeline:
    """The assembled pipeline: the assembler at the head, a batch processor per destination."""

    def __init__(self, settings: Settings, override: Optional[Destination] = None) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._processors: dict[str, BatchProcessor] = {}
        self._by_destinations: dict[Any, list[BatchProcessor]] = {}
        self.defaults = [self._processor(route) for route in default_routes(settings, override)]
        self.head = TraceAssembler(self)

    @property
    def destinations(self) -> list[str]:
        return [p.name for p in self.defaults]

    def _processor(self, route: Route) -> BatchProcessor:
        with self._lock:
            processor = self._processors.get(route.key)
            if processor is None:
                try:
                    exporter = route.build()
                    description = route.description
                except ExporterUnavailable as exc:
                    fallback = _file_route(self.settings.traces_file)
                    logger.warning("%s; traces go to %s instead.", exc, fallback.description)
                    exporter, description = fallback.build(), fallback.description
                processor = BatchProcessor(
                    ProcessingExporter(AnnouncingExporter(exporter, description)),
                    max_queue_size=self.settings.max_queue_size,
                    max_export_batch_size=self.settings.max_export_batch_size,
                    schedule_delay_s=self.settings.schedule_delay_s,
                    max_workers=self.settings.max_workers,
                    name=description,
                )
                _listen_reachability(exporter, processor.set_reachable)
                self._processors[route.key] = processor
            return processor

    def processors_for(self, destinations: Optional[tuple[Destination, ...]]) -> list[BatchProcessor]:
        if destinations is None:
            return self.defaults
        cached = self._by_destinations.get(destinations)
        if cached is None:
            routes = [r for r in (resolve(d, self.settings) for d in destinations) if r is not None]
            cached = [self._processor(r) for r in routes] or self.defaults
            self._by_destinations[destinations] = cached
        return cached

    def route(self, span: ReadableSpan, destinations: Optional[tuple[Destination, ...]]) -> None:
        """Hand a finished span to each of its destinations' queues (never blocks)."""
        for processor in self.processors_for(destinations):
            processor.on_end(span)

    def all_processors(self) -> list[BatchProcessor]:
        with self._lock:
            return list(self._processors.values())

    def flush(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        ok = True
        for processor in self.all_processors():
            remaining = max(0.0, deadline - time.monotonic())
            ok = processor.force_flush(int(remaining * 1000)) and ok
        return ok

    def shutdown(self, timeout_s: float) -> None:
        self.head.active = False
        deadline = time.monotonic() + timeout_s
        self.flush(timeout_s)
        for processor in self.all_processors():
            processor.shutdown(int(max(0.0, deadline - time.monotonic()) * 1000))
