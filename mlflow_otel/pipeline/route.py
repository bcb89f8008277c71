"""Routing: which destinations a span goes to, and the exporter each destination needs.

A destination is what ``tracing.set_destination`` / ``add_destination`` / ``trace_destination=``
accept: ``MlflowExperimentLocation``, ``OtlpDestination``, ``FileDestination`` (from
``mlflow_otel.destinations``) or **any OpenTelemetry ``SpanExporter``**. Each resolves to a
:class:`Route` (a stable key, a description, how to build its exporter); the :class:`Router` keeps
one batch stage per key and hands processed spans to the right ones.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter

from mlflow_otel import _mlflow_server
from mlflow_otel._log import masked_url, warn_limited
from mlflow_otel._settings import PROTOCOL_GRPC, PROTOCOL_HTTP, OtlpSettings, Settings
from mlflow_otel._state import STATE
from mlflow_otel._telemetry import Counters
from mlflow_otel.destinations import Destination, FileDestination, MlflowExperimentLocation, OtlpDestination
from mlflow_otel.exporters.file import OtlpJsonFileExporter
from mlflow_otel.exporters.local_store import FileAndStoreExporter
from mlflow_otel.exporters.mlflow_record import MlflowRecordExporter, RecordSenders
from mlflow_otel.exporters.otlp import build_otlp_exporter
from mlflow_otel.exporters.spool import open_spool
from mlflow_otel.processors.normalization.outward import Conventions
from mlflow_otel.records.pending import PendingAssessments

#: Default request size caps: gRPC servers reject messages over 4 MiB by default, the Collector's
#: OTLP/HTTP receiver bodies over 20 MiB; keep a margin for framing and headers.
GRPC_MAX_REQUEST_BYTES = 4 * 1024 * 1024 - 64 * 1024
HTTP_MAX_REQUEST_BYTES = 20 * 1024 * 1024 - 64 * 1024
#: Trace records (``StartTraceV3``) of one batch sent at once by an export worker to an MLflow server
#: (MLflow's SDK sends its records from a pool too). A record is one small request the server writes
#: in a few milliseconds: one at a time, the round trips and this process's own threads set the
#: pace (about 40 records/s while the application runs, so a 300-trace job lost most records at
#: exit); four at once keep the server busy instead (bench/README.md, "MLflow destination").
RECORD_CONCURRENCY = 4


@dataclass(frozen=True)
class Shared:
    """What the runtime (``_runtime.Runtime``) hands every destination it builds: the counters
    every stage and exporter counts into (``_telemetry.py``), the assessments logged on traces still
    open, which the stores' records take (``records/pending.py``), and the threads that send MLflow
    trace records for every MLflow destination of the process. A pipeline built without the last
    two (``mlflow-otel push``, a test) has no assessments waiting and gives each MLflow destination
    senders of its own."""

    counters: Counters
    pending: Optional[PendingAssessments] = None
    senders: Optional[RecordSenders] = None


@dataclass(frozen=True)
class Route:
    """A resolved destination: a stable key, a description for logs, and how to build its exporter."""

    key: str
    description: str
    #: Builds the exporter; its first argument hears when the endpoint starts or stops answering.
    build: Callable[[Callable[[bool], None], Shared], SpanExporter]
    #: Where the read API finds this destination's traces (``records/store.py``):
    #: ``("mlflow", tracking_uri, experiment_id, experiment_name)``, ``("file", path)``, or None.
    reads: Optional[tuple[Optional[str], ...]] = None
    #: The exporter counts what became of each span itself (delivered, dropped by reason): ours
    #: over OTLP do; for the others the batch stage counts by the export's result.
    accounts: bool = False
    #: A sink on this machine: drained whole at exit rather than cut at the exit deadline.
    local: bool = False
    #: This destination's own conventions (OTLP destinations: its exporter writes them as it
    #: encodes, ``outward.Conventions``); None: exactly what the processor chain wrote (MLflow
    #: servers, files, a user's exporter).
    semconv: Optional[frozenset[str]] = None
    #: Built at the first export, on the export thread (``export.DestinationExporter``).
    lazy: bool = False
    #: A user's exporter: flushed when the pipeline is replaced, shut down only at exit.
    borrowed: bool = False


def _otlp_route(
    otlp: OtlpSettings, settings: Settings, label: str = "", semconv: Optional[frozenset[str]] = None
) -> Route:
    limit = settings.max_request_bytes or (
        GRPC_MAX_REQUEST_BYTES if otlp.protocol == PROTOCOL_GRPC else HTTP_MAX_REQUEST_BYTES
    )
    name = "OTLP/gRPC" if otlp.protocol == PROTOCOL_GRPC else "OTLP/HTTP"
    headers_key = ",".join(f"{k}={v}" for k, v in sorted(otlp.headers.items()))
    chosen = semconv if semconv is not None else settings.genai.otlp_semconv
    key = f"otlp|{otlp.protocol}|{otlp.endpoint}|{headers_key}"
    if semconv is not None:
        key += "|" + ",".join(sorted(semconv))
    add, keep_mlflow = chosen - settings.genai.semconv, "mlflow" in chosen
    conventions = (
        Conventions(add, keep_mlflow, settings.genai.capture_messages) if add or not keep_mlflow else None
    )
    return Route(
        semconv=chosen,
        key=key,
        description=f"{label}{name} {masked_url(otlp.endpoint)}",
        accounts=True,
        build=lambda listener, shared: build_otlp_exporter(
            otlp,
            limit,
            settings.retry_timeout_s,
            listener,
            open_spool(settings.spool_dir, key, settings.spool_max_bytes, shared.counters),
            counters=shared.counters,
            conventions=conventions,
        ),
    )


def file_route(path: str, settings: Optional[Settings] = None) -> Route:
    """The OTLP/JSON file, and the local trace store beside it (``exporters/local_store.py``)."""
    exporter_path = OtlpJsonFileExporter(path).path
    experiment_id = settings.experiment_id if settings is not None else None
    store_max = settings.trace_store_max_bytes if settings is not None else Settings.trace_store_max_bytes
    return Route(
        key=f"file|{exporter_path}",
        description=f"the local file {exporter_path} (view them with `mlflow-otel show`)",
        build=lambda listener, shared: FileAndStoreExporter(
            exporter_path,
            experiment_id,
            store_max_bytes=store_max,
            pending=shared.pending,
            counters=shared.counters,
        ),
        reads=("file", exporter_path),
        local=True,
    )


def _mlflow_route(
    settings: Settings, tracking_uri: str, experiment_id: Optional[str], name: Optional[str]
) -> Route:
    """OTLP/HTTP to an MLflow server, then each trace's record (``exporters/mlflow_record.py``), with
    MLflow's credentials and TLS settings; an experiment given by name is resolved on the export
    thread."""
    endpoint = _mlflow_server.traces_endpoint(tracking_uri)
    auth = settings.tracking_auth
    key = f"mlflow|{tracking_uri}|{experiment_id}|{name}"

    def build(listener: Callable[[bool], None], shared: Shared) -> SpanExporter:
        exp_id = experiment_id
        if exp_id is None:
            exp_id = (
                _mlflow_server.get_or_create_experiment(tracking_uri, name, auth=auth)
                if name
                else _mlflow_server.DEFAULT_EXPERIMENT_ID
            )
        headers = {_mlflow_server.EXPERIMENT_ID_HEADER: exp_id, **_mlflow_server.auth_headers(auth)}
        otlp = OtlpSettings(PROTOCOL_HTTP, endpoint, headers, 10.0, certificate_file=auth.server_cert_path)
        return MlflowRecordExporter(
            otlp,
            settings.max_request_bytes or HTTP_MAX_REQUEST_BYTES,
            settings.retry_timeout_s,
            listener,
            open_spool(settings.spool_dir, key, settings.spool_max_bytes, shared.counters),
            verify=_mlflow_server.tls_verify(auth),
            resource_keys=settings.resource_keys,
            client=_mlflow_server.RestClient(tracking_uri, auth),
            experiment_id=exp_id,
            concurrency=RECORD_CONCURRENCY,
            pending=shared.pending,
            senders=shared.senders,
            counters=shared.counters,
        )

    which = (
        f"experiment {experiment_id}" if experiment_id else f"experiment {name!r}" if name else "experiment 0"
    )
    return Route(
        key=key,
        description=(
            f"the MLflow server {masked_url(tracking_uri)} ({which}, OTLP/HTTP {masked_url(endpoint)})"
        ),
        accounts=True,
        build=build,
        lazy=True,
        reads=("mlflow", tracking_uri, experiment_id, name),
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
        return _otlp_route(otlp, settings, semconv=destination.semconv)
    if isinstance(destination, FileDestination):
        return file_route(destination.path, settings)
    if isinstance(destination, SpanExporter):
        return _exporter_route(destination)
    warn_limited("destination", "Unknown trace destination %r; using the default destination.", destination)
    return None


def _exporter_route(exporter: SpanExporter) -> Route:
    """Any OpenTelemetry ``SpanExporter`` instance, borrowed (``export.DestinationExporter``)."""
    return Route(
        key=f"exporter|{id(exporter)}",
        description=f"{type(exporter).__module__}.{type(exporter).__qualname__}",
        build=lambda listener, shared: exporter,
        borrowed=True,
    )


def default_routes(
    settings: Settings,
    override: Optional[Sequence[Destination]] = None,
    extra: Sequence[Destination] = (),
) -> list[Route]:
    """The process-wide destinations: ``override`` (``tracing.set_destination``) if it resolves,
    else OTLP from ``OTEL_EXPORTER_OTLP_*`` or an MLflow server from the tracking URI, else the local
    file; plus ``extra`` (``tracing.add_destination``).

    MLflow's rule for an OTLP endpoint beside a tracking server (``mlflow/tracing/provider.py``):
    OTLP replaces the MLflow server, unless ``MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT`` is true, which
    sends to both (also beside ``set_destination``); ``MLFLOW_ENABLE_OTLP_EXPORTER=false`` ignores
    the endpoint (``_settings.load``)."""
    extra_routes = [r for r in (resolve(d, settings) for d in extra) if r is not None]
    if override:
        chosen = [r for r in (resolve(d, settings) for d in override) if r is not None]
        if chosen:
            if settings.otlp is not None and settings.otlp_dual_export:
                chosen.append(_otlp_route(settings.otlp, settings))
            return _unique(chosen + extra_routes)
    routes: list[Route] = []
    if settings.otlp is not None:
        routes.append(_otlp_route(settings.otlp, settings))
    if settings.tracking_uri and (settings.otlp is None or settings.otlp_dual_export):
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
    if not routes and not extra_routes:
        routes.append(file_route(settings.traces_file, settings))
    return _unique(routes + extra_routes)


def _unique(routes: list[Route]) -> list[Route]:
    seen: dict[str, Route] = {}
    for route in routes:
        seen.setdefault(route.key, route)
    return list(seen.values())


def _cache_key(destinations: Any) -> Any:
    """``destinations`` as a cache key, or None when it cannot be one (a user's exporter that
    defines ``__eq__`` without ``__hash__``): then it is resolved each time (its stage is still
    built once, by route key), never a failed batch."""
    try:
        hash(destinations)
    except TypeError:
        return None
    return destinations


class Router:
    """Hands processed spans to their destinations' batch queues (never blocks).

    ``make_stage`` builds the batch stage of a destination the first time a span goes there
    (declared in ``build.py``); stages are shared by key, so one endpoint has one queue however
    many ways it is named.
    """

    def __init__(
        self,
        settings: Settings,
        make_stage: Callable[[Route], Any],
        override: Optional[Sequence[Destination]] = None,
        extra: Sequence[Destination] = (),
    ) -> None:
        self._settings = settings
        self._make_stage = make_stage
        self._lock = threading.Lock()
        self._stages: dict[str, Any] = {}
        self._by_destinations: dict[Any, list[Any]] = {}
        self.defaults = [self._stage(route) for route in default_routes(settings, override, extra)]
        #: ``tracing.add_destination``: they get every trace, wherever else it is routed.
        extra_routes = [r for r in (resolve(d, settings) for d in extra) if r is not None]
        self._extra = [self._stage(route) for route in extra_routes]
        #: Set by the runtime for ``mlflow_otel.testing``: while set, every span goes to these
        #: destinations and nowhere else.
        self.capture: Optional[tuple[Destination, ...]] = None

    def _stage(self, route: Route) -> Any:
        with self._lock:
            stage = self._stages.get(route.key)
            if stage is None:
                stage = self._stages[route.key] = self._make_stage(route)
            return stage

    def stages_for(self, destinations: Optional[tuple[Destination, ...]]) -> list[Any]:
        if destinations is None:
            return self.defaults
        key = _cache_key(destinations)
        cached = self._by_destinations.get(key) if key is not None else None
        if cached is None:
            routes = [r for r in (resolve(d, self._settings) for d in destinations) if r is not None]
            chosen = [self._stage(r) for r in routes]
            cached = [*chosen, *(s for s in self._extra if s not in chosen)] if chosen else self.defaults
            if key is not None:
                self._by_destinations[key] = cached
        return cached

    def route(self, spans: Sequence[ReadableSpan], destinations: Optional[tuple[Destination, ...]]) -> None:
        """Spans of a trace routed at its root (``trace_destination=``, ``set_destination``) go
        there (with the spans of other instrumentations that ended inside it); other spans to the
        process-wide destination in force, else the defaults. ``set_destination`` therefore never
        rebuilds anything: a destination's stage is built the first time a span goes there, on
        this worker."""
        capture = self.capture
        if capture is not None:
            key = _cache_key(("capture", capture))
            stages = self._by_destinations.get(key) if key is not None else None
            if stages is None:
                routes = [r for r in (resolve(d, self._settings) for d in capture) if r is not None]
                stages = [self._stage(r) for r in routes]
                if key is not None:
                    self._by_destinations[key] = stages
        else:
            stages = self.stages_for(destinations if destinations is not None else STATE.destinations)
        for stage in stages:
            stage.on_end_many(spans)

    def export_soon(self) -> None:
        for stage in self.stages():
            stage.export_soon()

    def stages(self) -> list[Any]:
        with self._lock:
            return list(self._stages.values())
