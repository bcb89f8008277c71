"""Replay recorded traces into a destination (``mlflow-otel push``): record anywhere, ship later.

The embedded default records every trace as OTLP/JSON lines (``exporters/file.py``), the format
the OTel Collector's ``file`` exporter writes too. A push reads such files back into OTel
``ReadableSpan``s with their original ids, times, status, events, links, resource and scope
(``records/otlp_file.otel_spans_from_request``), and hands them to the exporters a live run uses,
built by the same pipeline (``pipeline/build.Pipeline``): an OTLP endpoint gets its conventions
(``outward.Conventions``: OpenInference for Phoenix), an MLflow server gets the spans and then each
trace's whole record (``exporters/mlflow_record.py``), batched on the shared export pool.

What re-runs and what does not. The built-in processors run again (normalization, the content
switch, redaction, trimming, as this process configures them): each is idempotent on spans it
already processed, and a recording made with a weaker policy (or a Collector file of another
SDK's spans) leaves redacted as configured now. Sampling does not: head sampling happened when
the spans were made and the recording holds what was kept; the tail policies are not asked again
(a trace a policy kept live is not sampled twice). User hooks and OTel ``SpanProcessor``s belong
to the recording application and are not in this process.

The record of a trace. The local store beside the embedded default's file (``records/local.py``)
holds what was added after the trace ended (``set_trace_tag``, ``log_feedback``): those tags,
metadata and the client request id go on the root span as the trace-level attributes the record
is built from (``records/from_spans.record_for``), and the assessments go with the record
(``records/pending.py``, as for a trace still open), with their ids: MLflow's ``StartTraceV3`` is
an upsert by trace id that merges assessments by id, so a second push changes nothing there.

Failures. A push is a batch job: a destination that refuses connections is given up at once (the
exporters' exit rule, ``ExitAware.begin_exit`` without a deadline), not retried for the retry
timeout; one that answers but asks to wait is retried as live. What was refused is counted by
reason and the exporters' own words are kept for the summary.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Optional

from opentelemetry.sdk.trace import ReadableSpan

from mlflow_otel import _mlflow_server
from mlflow_otel import semconv as conv
from mlflow_otel._log import logger, masked_url, reset_limits
from mlflow_otel._settings import PROTOCOL_GRPC, PROTOCOL_HTTP, Settings, otlp_for
from mlflow_otel._state import STATE
from mlflow_otel._telemetry import Counters
from mlflow_otel.exporters.base import ExitAware
from mlflow_otel.otlp.ids import bare_hex, mlflow_trace_id
from mlflow_otel.pipeline.build import Pipeline, builtin_processors
from mlflow_otel.pipeline.process import Chain, ProcessStage
from mlflow_otel.pipeline.route import Shared
from mlflow_otel.records.from_spans import otel_root_of
from mlflow_otel.records.local import LocalStore, rebuild, store_path
from mlflow_otel.records.model import TraceInfo
from mlflow_otel.records.otlp_file import generations, otel_spans_from_request
from mlflow_otel.records.pending import PendingAssessments

#: Record metadata computed from the spans (``from_spans.record_for``): never copied to the root.
_COMPUTED_METADATA = frozenset(
    {"mlflow.trace_schema.version", "mlflow.traceInputs", "mlflow.traceOutputs", "mlflow.trace.tokenUsage"}
)
#: Trace records looked up in the store per query.
_LOOKUP_CHUNK = 500


class PushError(Exception):
    """A push that cannot start: no such file, a destination that cannot be used."""


# --- reading ------------------------------------------------------------------------------------
@dataclass
class Recorded:
    """What the files hold: spans by trace (in the order traces first appear), and what was skipped."""

    files: list[str]
    traces: dict[int, list[ReadableSpan]] = field(default_factory=dict)
    lines: int = 0
    unreadable: int = 0
    #: The trace ids each file holds (its local store answers for those).
    by_file: dict[str, set[int]] = field(default_factory=dict)

    @property
    def spans(self) -> int:
        return sum(len(spans) for spans in self.traces.values())


def read_recorded(paths: Sequence[str]) -> Recorded:
    """Read OTLP/JSON lines files (each with its rotated ``.1`` generation when there is one). A
    line that is not an OTLP/JSON request (torn at a crash, another tool's JSON) is skipped and
    counted; a span seen twice (a replayed file) counts once. Raises ``PushError`` for a file
    that does not exist."""
    recorded = Recorded(files=list(paths))
    resources: dict = {}
    scopes: dict = {}
    seen: set[tuple[int, int]] = set()
    for path in paths:
        files = generations(path)
        if not files:
            raise PushError(f"No traces file at {path}: run a traced program first, or name the file.")
        held = recorded.by_file.setdefault(path, set())
        for name in files:
            with open(name, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    recorded.lines += 1
                    try:
                        spans = otel_spans_from_request(json.loads(line), resources, scopes)
                    except (ValueError, TypeError, AttributeError, KeyError):
                        recorded.unreadable += 1
                        continue
                    for span in spans:
                        ctx = span.get_span_context()
                        if (ctx.trace_id, ctx.span_id) in seen:
                            continue
                        seen.add((ctx.trace_id, ctx.span_id))
                        recorded.traces.setdefault(ctx.trace_id, []).append(span)
                        held.add(ctx.trace_id)
    return recorded


# --- selection ----------------------------------------------------------------------------------
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: Optional[float] = None) -> int:
    """``--since``: a time as Unix nanoseconds, from ``30m`` / ``2h`` / ``1d`` (ago) or an ISO 8601
    date or time (without a zone: this machine's local time, as ``date`` prints it)."""
    match = _RELATIVE.match(text)
    if match:
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
        return int(((time.time() if now is None else now) - seconds) * 1e9)
    try:
        return int(datetime.fromisoformat(text.strip()).timestamp() * 1e9)
    except ValueError:
        raise PushError(
            f"--since {text!r}: expected a duration ago (30m, 2h, 1d) or an ISO 8601 time"
        ) from None


def _stores(recorded: Recorded) -> dict[str, LocalStore]:
    """The local stores beside the files that have one (the embedded default's)."""
    out = {}
    for path in recorded.files:
        db = store_path(path)
        if os.path.exists(db):
            out[path] = LocalStore(db, path)
    return out


def _matching(recorded: Recorded, filter_string: str, stores: dict[str, LocalStore]) -> set[int]:
    """Trace ids matching ``filter_string`` in MLflow's grammar, answered by the stores that already
    exist and, for files without one, by a store built from them for this push (so the grammar is
    exactly ``search_traces``'s, ``records/local.py``)."""
    found: set[int] = set()
    for store in stores.values():
        found.update(_ids(store, filter_string))
    bare = [path for path in recorded.files if path not in stores]
    if bare:
        with tempfile.TemporaryDirectory(prefix="mlflow-otel-push-") as tmp:
            db = os.path.join(tmp, "selection.db")
            for path in bare:
                rebuild(db, path)  # the store's own rebuild from a file: lines it cannot use skipped
            found.update(_ids(LocalStore(db), filter_string))
    return found


def _ids(store: LocalStore, filter_string: str) -> set[int]:
    traces, _ = store.search_traces(None, filter_string, None, None, include_spans=False)
    return {int(bare_hex(t.info.trace_id), 16) for t in traces}


def select(
    recorded: Recorded,
    trace_ids: Sequence[str] = (),
    since_ns: Optional[int] = None,
    filter_string: Optional[str] = None,
) -> list[int]:
    """The trace ids to push, in the order they were recorded: all, or those of ``trace_ids``,
    whose root started at ``since_ns`` or later, matching ``filter_string`` (MLflow's
    ``search_traces`` grammar; an invalid filter raises ``MlflowException``)."""
    chosen = list(recorded.traces)
    if trace_ids:
        wanted = {int(bare_hex(t), 16) for t in trace_ids}
        chosen = [t for t in chosen if t in wanted]
    if since_ns is not None:
        chosen = [t for t in chosen if (otel_root_of(recorded.traces[t]).start_time or 0) >= since_ns]
    if filter_string:
        matching = _matching(recorded, filter_string, _stores(recorded))
        chosen = [t for t in chosen if t in matching]
    return chosen


# --- destinations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Where a push goes: the settings its pipeline is built from (the destination as a live run's
    default destination) and a description."""

    settings: Settings
    description: str
    mlflow: bool = False


def otlp_target(
    settings: Settings,
    endpoint: str,
    protocol: Optional[str] = None,
    semconv: Optional[frozenset[str]] = None,
) -> Target:
    """An OTLP endpoint: ``http(s)://host:port`` (``/v1/traces`` added when there is no path, the
    spec's rule for a base endpoint), ``grpc://host:port`` (plaintext gRPC; ``grpcs://`` TLS), or
    any endpoint with ``protocol``; headers, timeout, compression and TLS from
    ``OTEL_EXPORTER_OTLP_*``."""
    url = endpoint.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("grpc", "grpcs"):
        protocol = protocol or PROTOCOL_GRPC
        url = ("https" if scheme == "grpcs" else "http") + url[len(scheme) :]
    protocol = protocol or PROTOCOL_HTTP
    if protocol == PROTOCOL_HTTP and scheme in ("http", "https") and url.split("://", 1)[1].count("/") == 0:
        url = url.rstrip("/") + "/v1/traces"
    otlp = otlp_for(url, protocol)
    if otlp is None:
        raise PushError(
            f"--to {endpoint!r} is not an OTLP endpoint this push can use (see the warning above)."
        )
    genai = settings.genai
    if semconv is not None:
        genai = dataclasses.replace(genai, otlp_semconv=semconv)
    chosen = dataclasses.replace(
        settings, otlp=otlp, tracking_uri=None, otlp_dual_export=False, spool_dir=None, genai=genai
    )
    name = "OTLP/gRPC" if protocol == PROTOCOL_GRPC else "OTLP/HTTP"
    conventions = ",".join(sorted(genai.otlp_semconv))
    return Target(chosen, f"{name} {masked_url(otlp.endpoint)} (conventions {conventions})")


def mlflow_target(settings: Settings, tracking_uri: str, experiment: str, create: bool = True) -> Target:
    """An MLflow server and experiment ``experiment`` (a name; created if missing unless ``create``
    is False, for a dry run). Raises ``PushError`` if the server cannot be asked."""
    if not _mlflow_server.is_http_uri(tracking_uri):
        raise PushError(f"--to {tracking_uri!r}: an MLflow tracking URI is http(s)://host:port")
    shown = masked_url(tracking_uri)
    experiment_id = None
    if create:
        try:
            experiment_id = _mlflow_server.get_or_create_experiment(
                tracking_uri, experiment, auth=settings.tracking_auth
            )
        except Exception as exc:
            raise PushError(f"The MLflow server {shown} cannot be used: {exc}") from None
    chosen = dataclasses.replace(
        settings,
        otlp=None,
        tracking_uri=tracking_uri,
        experiment_id=experiment_id,
        experiment_name=None if experiment_id else experiment,
        otlp_dual_export=False,
        spool_dir=None,
    )
    which = f"experiment {experiment!r}" + (
        f", id {experiment_id}" if experiment_id else " (created if missing)"
    )
    return Target(chosen, f"the MLflow server {shown} ({which})", mlflow=True)


# --- the push -----------------------------------------------------------------------------------
@dataclass
class PushResult:
    """What a push did, from the SDK's counters (``tracing.stats()``) over the push."""

    destination: str
    traces: int
    spans: int
    delivered: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    #: The destination's and the exporters' own words for what was refused (first few, distinct).
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        unsent_records = sum(v for k, v in self.records.items() if k != "sent")
        return bool(sum(self.dropped.values()) or unsent_records or self.delivered < self.spans)


class _Reasons(logging.Handler):
    """Keeps the SDK's warnings during a push: the summary says why spans were refused."""

    def __init__(self, limit: int = 5) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._limit = limit

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.messages and len(self.messages) < self._limit:
            self.messages.append(message)


class _Hand:
    """The process stage's next stage (``pipeline/process.Router``): the push's destination stages."""

    def __init__(self, stages: Sequence) -> None:
        self.stages = stages

    def route(self, spans: Sequence[ReadableSpan], destinations: object) -> None:
        for stage in self.stages:
            stage.on_end_many(spans)

    def export_soon(self) -> None:
        for stage in self.stages:
            stage.export_soon()


def _records(recorded: Recorded, selected: Sequence[int]) -> dict[int, TraceInfo]:
    """The local stores' records of the selected traces (none for files without a store)."""
    out: dict[int, TraceInfo] = {}
    chosen = set(selected)
    for path, store in _stores(recorded).items():
        ids = [t for t in recorded.by_file.get(path, ()) if t in chosen and t not in out]
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            listed = ",".join(f"'{mlflow_trace_id(t)}'" for t in ids[start : start + _LOOKUP_CHUNK])
            traces, _ = store.search_traces(
                None, f"trace.request_id IN ({listed})", None, None, include_spans=False
            )
            for trace in traces:
                out[int(bare_hex(trace.info.trace_id), 16)] = trace.info
    return out


def with_record(spans: list[ReadableSpan], info: TraceInfo) -> list[ReadableSpan]:
    """``spans`` with the root carrying what the store's record adds to it (tags, metadata and a
    client request id set after the trace ended) as the trace-level attributes a record is built
    from; the same list when there is nothing to add."""
    root = otel_root_of(spans)
    attributes = root.attributes or {}
    extra: dict[str, str] = {}
    for key, value in info.tags.items():
        if key != conv.TRACE_NAME and str(attributes.get(conv.TRACE_TAG_PREFIX + key)) != value:
            extra[conv.TRACE_TAG_PREFIX + key] = value
    for key, value in info.trace_metadata.items():
        if key not in _COMPUTED_METADATA and str(attributes.get(conv.TRACE_METADATA_PREFIX + key)) != value:
            extra[conv.TRACE_METADATA_PREFIX + key] = value
    if info.client_request_id and conv.CLIENT_REQUEST_ID not in attributes:
        extra[conv.CLIENT_REQUEST_ID] = info.client_request_id
    if not extra:
        return spans
    new_root = ReadableSpan(
        name=root.name,
        context=root.get_span_context(),
        parent=root.parent,
        resource=root.resource,
        attributes={**attributes, **extra},
        events=root.events,
        links=root.links,
        kind=root.kind,
        status=root.status,
        start_time=root.start_time,
        end_time=root.end_time,
        instrumentation_scope=root.instrumentation_scope,
    )
    return [new_root if span is root else span for span in spans]


def _settled(counters: Counters, before: dict[str, int]) -> tuple[int, dict[str, int], dict[str, int]]:
    """Spans delivered, dropped by reason, and MLflow records by outcome since ``before``."""
    now = counters.snapshot()

    def delta(key: str) -> int:
        return now.get(key, 0) - before.get(key, 0)

    dropped = {k[len("dropped.") :]: delta(k) for k in now if k.startswith("dropped.") and delta(k)}
    records = {
        k[len("mlflow_records_") :]: delta(k)
        for k in now
        if k.startswith("mlflow_records_") and k != "mlflow_records_retries" and delta(k)
    }
    return delta("spans_delivered"), dropped, records


def push(
    recorded: Recorded,
    selected: Sequence[int],
    target: Target,
    progress: Optional[Callable[[int, int], None]] = None,
    timeout_s: float = 600.0,
) -> PushResult:
    """Push the ``selected`` traces of ``recorded`` to ``target`` through a pipeline of their own:
    the built-in processors, then the destination's batch stage and exporter on the shared export
    pool, fed as fast as its queue takes them (never past its bound: nothing is dropped for a full
    queue). ``progress(settled, total)`` is called as spans settle (delivered or refused); the
    push ends when every span settled or ``timeout_s`` passed."""
    settings = target.settings
    total = sum(len(recorded.traces[t]) for t in selected)
    result = PushResult(target.description, len(selected), total)
    reasons = _Reasons()
    reset_limits()  # a warning of an earlier push must not be rate-limited out of this summary
    logger.addHandler(reasons)
    started = time.monotonic()
    counters = Counters()  # the push's own: what became of its spans, apart from any tracing
    before = counters.snapshot()
    pending = PendingAssessments()  # the records' assessments, taken as the records are written
    pipeline = Pipeline(settings, shared=Shared(counters, pending))
    stages = pipeline.router.defaults
    for stage in stages:
        if isinstance(stage.exporter, ExitAware):
            stage.exporter.begin_exit(None)  # refused connections are not retried (module docstring)
    chain = Chain(builtin_processors(settings.processors, STATE.builtin_options))
    process = ProcessStage(lambda: chain, _Hand(stages), settings.max_export_batch_size, counters)
    records = _records(recorded, selected)
    batch_size = min(settings.max_export_batch_size, max(1, settings.max_queue_size // 2))

    def settled() -> int:
        delivered, dropped, _ = _settled(counters, before)
        done = delivered + sum(dropped.values())
        if progress is not None:
            progress(min(done, total), total)
        return done

    try:
        batch: list[list[ReadableSpan]] = []
        size = 0
        for trace_id in selected:
            spans = recorded.traces[trace_id]
            info = records.get(trace_id)
            if info is not None:
                spans = with_record(spans, info)
                if target.mlflow:
                    for assessment in info.assessments:
                        pending.hold(mlflow_trace_id(trace_id), assessment)
            batch.append(spans)
            size += len(spans)
            if size >= batch_size:
                _hand_over(process, stages, batch, size, settled)
                batch, size = [], 0
        if batch:
            _hand_over(process, stages, batch, size, settled)
        deadline = started + timeout_s
        while settled() < total and time.monotonic() < deadline:
            pipeline.flush(min(0.2, max(0.0, deadline - time.monotonic())), wait_unreachable=True)
        pipeline.flush(max(0.0, min(5.0, deadline - time.monotonic())), wait_unreachable=True)
    finally:
        pipeline.shutdown(2.0)
        logger.removeHandler(reasons)
        settled()
    result.delivered, result.dropped, result.records = _settled(counters, before)
    result.reasons = reasons.messages
    result.seconds = time.monotonic() - started
    return result


def _hand_over(
    process: ProcessStage, stages: Sequence, traces: list[list[ReadableSpan]], size: int, settled: Callable
) -> None:
    """Run the chain on ``traces`` and queue them once every destination's queue has room (an
    empty queue always takes them: a trace larger than the queue is not waited for forever)."""
    while any(s.queued and s.queued + size > s.queue_limit for s in stages):
        settled()
        time.sleep(0.002)
    process.export(traces)


def describe(recorded: Recorded, selected: Iterable[int], limit: int = 20) -> list[str]:
    """One line per selected trace (the first ``limit``): id, root name, spans, client request id."""
    lines = []
    for trace_id in list(selected)[:limit]:
        spans = recorded.traces[trace_id]
        root = otel_root_of(spans)
        crid = (root.attributes or {}).get(conv.CLIENT_REQUEST_ID)
        start = datetime.fromtimestamp((root.start_time or 0) / 1e9).isoformat(timespec="seconds")
        line = f"  {mlflow_trace_id(trace_id)}  {root.name}  {len(spans)} span(s)  {start}"
        lines.append(line + (f"  client_request_id={crid}" if crid is not None else ""))
    return lines
