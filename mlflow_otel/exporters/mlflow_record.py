"""The MLflow destination: spans over OTLP/HTTP, then each finished trace's record (``StartTraceV3``).

An MLflow server builds a trace's record from the OTLP spans it ingests (``/v1/traces``), but that
path never sets ``client_request_id``, custom request / response previews or custom trace metadata.
MLflow's own SDK sends, per trace, one ``StartTraceV3`` (``POST /api/3.0/mlflow/traces``) beside the
spans, which the server treats as an upsert of the record (``SqlAlchemyStore.start_trace`` in MLflow
3.18: experiment, request time, duration, state and client request id overwritten; previews set;
tags and metadata merged; ``mlflow.trace.infoFinalized`` marks it authoritative). This exporter does
the same, after the OTLP request that carried the trace's root span succeeded:

* the record is the **whole** one (``records/from_spans.py``): request time, duration, state,
  client request id, previews (custom, else computed as MLflow computes them), every metadata key
  (session, user, custom; ``mlflow.traceInputs`` / ``Outputs`` cut to MLflow's 250 characters;
  the run context ``mlflow.user`` / ``mlflow.source.name`` / ``mlflow.source.type``), token usage
  summed over the trace's spans, every tag as ``str(value)`` and ``mlflow.traceName``;
* on the export thread, never the application's; the records of one batch go out ``concurrency``
  at a time (the export thread and persistent helpers, each on a keep-alive connection), and the
  batch's export returns when they are settled, so ``flush_trace_async_logging()`` covers them too.
  The server's write is the cost (``bench/mlflow_destination.py``: about 40 ms a record on MLflow
  3.18 with SQLite and one worker, where four at a time and one at a time measured alike;
  ``pipeline/route.py`` sends four at a time, ``RECORD_CONCURRENCY``, which keeps a server with more
  workers busy);
* retried by the policy every sender uses (``retry.py``; an upsert is idempotent): no answer, or
  MLflow's transient codes 408/429/500/502/503/504, equal-jitter backoff within
  ``MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT``; while the process exits, an unreachable server is not
  retried and no retry passes the exit deadline;
* never for a trace whose spans were not all delivered: a failed batch marks its traces, and a
  root whose earlier spans are still being exported by another worker waits for them (the trace
  then stays as OTLP delivered it: no record without its spans);
* counted in ``tracing.stats()``: ``mlflow_records_sent``, ``mlflow_records_retries``,
  ``mlflow_records_failed`` (gave up: the trace keeps what OTLP gave it, with a rate-limited
  warning), ``mlflow_records_skipped`` (spans not all delivered).

A distributed trace's record is sent by the process that holds its root span only; a callee's
trace-level tags and metadata are merged into it afterwards, never overwriting (``mlflow_merge.py``).
Limits: spans
the opt-in spool (``exporters/spool.py``) replays later get no record (their trace keeps what OTLP
gives it); and "earlier spans still being exported" is known from the moment another worker starts
exporting them, so a batch taken but not yet handed to the exporter when the root's batch succeeds
is not waited for (a window of microseconds against the root's network round trip).
"""

from __future__ import annotations

import collections
import functools
import getpass
import json
import queue
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from mlflow_otel import _fork
from mlflow_otel import semconv as conv
from mlflow_otel._log import warn_limited
from mlflow_otel._mlflow_server import (
    MlflowServerError,
    RestClient,
    duration_to_json,
    timestamp_to_json,
)
from mlflow_otel.exporters.mlflow_merge import FragmentMerger
from mlflow_otel.exporters.otlp import OtlpHttpExporter
from mlflow_otel.exporters.retry import MLFLOW_REST
from mlflow_otel.otlp.ids import mlflow_trace_id
from mlflow_otel.records.from_spans import (
    MAX_METADATA_CHARS,
    preview,
    record_for,
    span_from_otel,
    token_usage_of,
)
from mlflow_otel.records.model import Span, TraceInfo
from mlflow_otel.records.pending import PendingAssessments

#: ``POST`` here upserts a trace's record (MLflow's ``StartTraceV3``).
START_TRACE_V3 = "/api/3.0/mlflow/traces"
_TRACE_KEY_PREFIXES = (conv.TRACE_TAG_PREFIX, conv.TRACE_METADATA_PREFIX)
#: At shutdown, seconds the last merge attempts of callee fragments may take (``mlflow_merge.py``).
MERGE_CLOSE_S = 2.0
#: Traces remembered between batches (partially failed traces, token usage of earlier batches).
MAX_REMEMBERED = 10_000


#: Span payloads MLflow's SDK sends typed when they are JSON scalars (``Span.to_otel_proto``).
_PAYLOAD_KEYS = (conv.SPAN_INPUTS, conv.SPAN_OUTPUTS)
_SCALAR_START = frozenset("-0123456789tfn")


def _typed_payloads(span: ReadableSpan) -> Optional[dict[str, Any]]:
    """``span``'s attributes with inputs / outputs that are JSON numbers, booleans or null as OTLP
    scalars, as MLflow's SDK sends them: an MLflow server stores a string attribute as a string, so
    ``2`` written as the JSON text ``"2"`` would read back as ``"2"`` in MLflow's client and UI.
    None when there is none (objects, arrays, strings: the server reads their JSON)."""
    attributes = span.attributes or {}
    typed: Optional[dict[str, Any]] = None
    for key in _PAYLOAD_KEYS:
        value = attributes.get(key)
        if value.__class__ is not str or not value or value[0] not in _SCALAR_START:
            continue
        try:
            decoded = json.loads(value)
        except ValueError:
            continue
        if decoded is None or isinstance(decoded, (bool, int, float)):
            typed = dict(attributes) if typed is None else typed
            typed[key] = decoded
    return typed


def _copy(span: ReadableSpan, attributes: Any, resource: Any) -> ReadableSpan:
    """``span`` with other attributes or another resource (what the MLflow destination sends)."""
    return ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        resource=resource,
        attributes=attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


#: Resource attributes the OTel SDK sets by default (``Resource.create``: the spec's
#: ``unknown_service:<executable>`` service name, a random ``service.instance.id`` per process).
_SDK_DEFAULT_RESOURCE_KEYS = frozenset({"service.name", "service.instance.id"})


def resource_for_mlflow(resource: Resource, user_keys: frozenset[str]) -> Resource:
    """``resource`` without the SDK's default attributes (unless the user set them).

    MLflow 3.18's server files every OTLP resource attribute but ``telemetry.sdk.*`` as a trace tag
    (``SqlAlchemyStore.log_spans``): the defaults became every trace's first tags
    (``service.name: unknown_service:python``, a per-process UUID), ahead of the user's own in the
    trace list, where MLflow's SDK leaves none. What the user set (``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``, any other key of a resource made in code) stays."""
    attributes = resource.attributes
    drop = [
        key
        for key in _SDK_DEFAULT_RESOURCE_KEYS
        if key in attributes
        and key not in user_keys
        and (key != "service.name" or str(attributes[key]).startswith("unknown_service"))
    ]
    if not drop:
        return resource
    return Resource({k: v for k, v in attributes.items() if k not in drop}, resource.schema_url)


class MlflowOtlpHttpExporter(OtlpHttpExporter):
    """OTLP/HTTP to an MLflow server: JSON-scalar payloads typed as MLflow's SDK sends them
    (:func:`_typed_payloads`), the SDK's default resource attributes left out
    (:func:`resource_for_mlflow`), and MLflow's TLS switch (``MLFLOW_TRACKING_INSECURE_TLS`` turns
    certificate checks off; the plain OTLP exporter only takes a CA bundle)."""

    def __init__(
        self, *args: Any, verify: Any = True, resource_keys: frozenset[str] = frozenset(), **kwargs: Any
    ) -> None:
        super().__init__(*args, verify=verify, **kwargs)
        self._resource_keys = resource_keys
        self._resources: dict[int, tuple[Resource, Resource]] = {}  # id(resource) -> (it, for MLflow)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return super().export([self._for_mlflow(span) for span in spans])

    def _for_mlflow(self, span: ReadableSpan) -> ReadableSpan:
        """``span`` as sent to MLflow: typed payloads, the resource without the SDK's defaults
        (one copy at most)."""
        typed = _typed_payloads(span)
        resource = span.resource
        known = self._resources.get(id(resource))
        if known is None or known[0] is not resource:
            if len(self._resources) > 64:  # a resource per span would be unusual: stay bounded
                self._resources.clear()
            known = self._resources[id(resource)] = (
                resource,
                resource_for_mlflow(resource, self._resource_keys),
            )
        if typed is None and known[1] is resource:
            return span
        return _copy(span, span.attributes if typed is None else typed, known[1])


def _truncate(value: str) -> str:
    return value if len(value) <= MAX_METADATA_CHARS else value[: MAX_METADATA_CHARS - 3] + "..."


#: Payloads up to this size are re-encoded as MLflow writes JSON for previews and metadata.
_REENCODE_MAX_CHARS = 100_000


def _mlflow_json(payload: Any) -> str:
    """A span payload as MLflow's SDK writes it (``json.dumps`` with its default separators, not
    ASCII-escaped); our wire form is compact. Left as is when large or not JSON."""
    text = str(payload)
    if len(text) > _REENCODE_MAX_CHARS:
        return text
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        return text


def _as_mlflow_writes(root: Span, info: TraceInfo) -> None:
    """Previews computed from the root's payloads, and ``mlflow.traceInputs`` / ``Outputs``, in the
    text MLflow's SDK would send (custom previews and metadata are left alone)."""
    raw = root.raw_attributes
    for payload_key, custom_key, field, role, meta_key in (
        (conv.SPAN_INPUTS, conv.REQUEST_PREVIEW, "request_preview", "user", "mlflow.traceInputs"),
        (conv.SPAN_OUTPUTS, conv.RESPONSE_PREVIEW, "response_preview", "assistant", "mlflow.traceOutputs"),
    ):
        payload = raw.get(payload_key)
        if payload is None:
            continue
        text = _mlflow_json(payload)
        if custom_key not in raw:
            setattr(info, field, preview(text, role))
        if conv.TRACE_METADATA_PREFIX + meta_key not in raw:
            info.trace_metadata[meta_key] = text
    for meta_key in ("mlflow.traceInputs", "mlflow.traceOutputs"):
        info.trace_metadata.setdefault(meta_key, "")  # MLflow writes "" for a missing payload


def record_body(info: TraceInfo, experiment_id: str) -> dict[str, Any]:
    """The ``StartTraceV3`` request for ``info`` (MLflow's ``TraceInfoV3`` in protobuf JSON)."""
    metadata = dict(info.trace_metadata)
    for key in ("mlflow.traceInputs", "mlflow.traceOutputs"):
        if key in metadata:
            metadata[key] = _truncate(metadata[key])
    trace_info: dict[str, Any] = {
        "trace_id": info.trace_id,
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": experiment_id},
        },
        "request_time": timestamp_to_json(info.request_time),
        "state": info.state.value,
        "trace_metadata": metadata,
        "tags": {str(k): str(v) for k, v in info.tags.items()},
    }
    if info.execution_duration is not None:
        trace_info["execution_duration"] = duration_to_json(info.execution_duration)
    if info.client_request_id is not None:
        trace_info["client_request_id"] = info.client_request_id
    if info.request_preview is not None:
        trace_info["request_preview"] = info.request_preview
    if info.response_preview is not None:
        trace_info["response_preview"] = info.response_preview
    if info.assessments:  # MLflow's SDK sends those logged on the open trace with its record
        trace_info["assessments"] = [a.to_dictionary() for a in info.assessments]
    return {"trace": {"trace_info": trace_info}}


def environment_metadata() -> dict[str, str]:
    """The run context MLflow's SDK files on every trace (``resolve_env_metadata``: the user, the
    entry point, ``LOCAL``); Git details need GitPython in MLflow too and are not sent here."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment (MLflow's fallback)
        user = "unknown"
    source = sys.argv[0] if sys.argv and sys.argv[0] else "<console>"
    return {"mlflow.user": user, "mlflow.source.name": source, "mlflow.source.type": "LOCAL"}


#: At shutdown, how long records already being sent may take to settle (sent or failed, counted).
IN_FLIGHT_SETTLE_S = 1.0


class _Job:
    """One record to send: run once by a sender, or cancelled before it starts (at shutdown)."""

    __slots__ = ("_lock", "_state", "done", "run")

    def __init__(self, run: Callable[[], None]) -> None:
        self.run = run
        self.done = threading.Event()
        self._state = "waiting"
        self._lock = threading.Lock()

    def claim(self, state: str) -> bool:
        """Move a waiting job to ``running`` or ``cancelled``; False if it was no longer waiting."""
        with self._lock:
            if self._state != "waiting":
                return False
            self._state = state
        if state == "cancelled":
            self.done.set()
        return True


class RecordSenders:
    """Up to ``threads`` daemon threads sending records for every MLflow destination of the process
    (the runtime owns one: ``_runtime.Runtime``), started as work arrives. (A ``ThreadPoolExecutor``
    refuses work once the interpreter begins to exit, which is when a job's last records go.) In a
    forked child they start again with no thread and no job (the parent's are the parent's)."""

    def __init__(self, threads: int) -> None:
        self._max = threads
        self._forget()
        _fork.in_child(self._forget)

    def _forget(self) -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._threads = 0
        self._lock = threading.Lock()

    def submit(self, run: Callable[[], None]) -> _Job:
        job = _Job(run)
        self._jobs.put(job)
        with self._lock:
            if self._threads < self._max:
                self._threads += 1
                threading.Thread(
                    target=self._work, args=(self._jobs,), name="mlflow-otel-record", daemon=True
                ).start()
        return job

    @staticmethod
    def _work(jobs: queue.SimpleQueue[_Job]) -> None:
        while True:
            job = jobs.get()
            if job.claim("running"):
                try:
                    job.run()
                except Exception as exc:  # never end a sender
                    warn_limited("mlflow_record_sender", "Sending a trace record failed: %r", exc)
                finally:
                    job.done.set()


def _bounded_put(table: collections.OrderedDict, key: Any, value: Any) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > MAX_REMEMBERED:
        table.popitem(last=False)


class MlflowRecordExporter(MlflowOtlpHttpExporter):
    """OTLP/HTTP to an MLflow server, then the records of the traces whose roots were delivered (see
    the module docstring): one exporter, whose exit capabilities (``begin_exit``, ``busy``,
    ``close_idle``, ``shutdown``) extend the OTLP exporter's own; its retry policy, clock and exit
    deadline serve the records too."""

    def __init__(
        self,
        *args: Any,
        client: RestClient,
        experiment_id: str,
        concurrency: int = 4,
        pending: Optional[PendingAssessments] = None,
        senders: Optional[RecordSenders] = None,
        **kwargs: Any,
    ) -> None:
        """``pending``: assessments logged on traces still open, sent in their records;
        ``senders``: the threads every MLflow destination of the process shares (else its own)."""
        super().__init__(*args, **kwargs)
        self._assessments = pending
        self._senders = senders
        self.client = client
        self.experiment_id = experiment_id
        self._concurrency = max(1, concurrency)
        self._waiting: set[_Job] = set()  # this destination's records queued on the senders
        self._lock = threading.Lock()
        self._pending: dict[int, int] = {}  # trace id -> its non-root spans being exported now
        self._spoiled: collections.OrderedDict[int, bool] = collections.OrderedDict()
        self._usage: collections.OrderedDict[int, list[Any]] = collections.OrderedDict()
        #: Roots delivered while other spans of their trace are in flight: built once those settle.
        self._deferred: dict[int, tuple[ReadableSpan, list[Any]]] = {}
        self._environment = environment_metadata()
        self._sending = 0  # records being sent now (``busy``)
        #: The records' own stop, set first at shutdown: span exports in flight keep their retries
        #: until the records settle (the OTLP part's ``_stop`` is set after, by its ``shutdown``).
        self._records_stop = threading.Event()
        #: Callee fragments' tags and metadata, merged into the root service's record.
        self._merger = FragmentMerger(client, self._retry, record_body, self._counters)

    # --- SpanExporter ------------------------------------------------------------------------------
    def salvage(self, spans: Sequence[ReadableSpan]) -> int:
        """Spans the exit deadline left queued (``exporters/base.Salvaging``): no record goes without
        its spans, so the records of the traces whose roots are among them are counted as skipped;
        the spans themselves go to the spool when there is one."""
        roots = sum(1 for span in spans if span.parent is None)
        if roots:
            self._counters.add("mlflow_records_skipped", roots)
        return super().salvage(spans)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        roots: dict[int, ReadableSpan] = {}
        others: dict[int, int] = {}
        usage: dict[int, list[Any]] = {}
        fragments: list[ReadableSpan] = []
        for span in spans:
            trace_id = span.get_span_context().trace_id
            if span.parent is None:
                roots[trace_id] = span
                continue
            others[trace_id] = others.get(trace_id, 0) + 1
            attributes = span.attributes or {}
            if any(key.startswith(_TRACE_KEY_PREFIXES) for key in attributes):
                # Trace-level keys below the trace's root: a callee's part of a trace whose root
                # is in another service (our first span sits under the caller's span, or under
                # an HTTP instrumentation's server span): merged into that service's record
                # (mlflow_merge.py), unless the root is in this batch (then it is a local trace).
                fragments.append(span)
            if conv.CHAT_TOKEN_USAGE in attributes:
                usage.setdefault(trace_id, []).append(attributes[conv.CHAT_TOKEN_USAGE])
        with self._lock:
            for trace_id, count in others.items():
                self._pending[trace_id] = self._pending.get(trace_id, 0) + count
        result = SpanExportResult.FAILURE
        try:
            result = super().export(spans)
        finally:
            due = self._settle(roots, others, usage, result is SpanExportResult.SUCCESS)
        if due:
            self._send_all(due)
        if fragments and result is SpanExportResult.SUCCESS:
            self._merge_later(fragments, roots)
        return result

    def _merge_later(self, spans: list[ReadableSpan], roots: dict[int, ReadableSpan]) -> None:
        """The trace-level tags and metadata set below a trace's root, per trace, for the record
        the root's service sends (traces whose root is in this batch have theirs already)."""
        keys: dict[int, tuple[dict[str, str], dict[str, str]]] = {}
        for span in spans:
            trace_id = span.get_span_context().trace_id
            if trace_id in roots:
                continue
            tags, metadata = keys.setdefault(trace_id, ({}, {}))
            for key, value in (span.attributes or {}).items():
                if key.startswith(conv.TRACE_TAG_PREFIX):
                    tags.setdefault(key[len(conv.TRACE_TAG_PREFIX) :], str(value))
                elif key.startswith(conv.TRACE_METADATA_PREFIX):
                    metadata.setdefault(key[len(conv.TRACE_METADATA_PREFIX) :], str(value))
        for trace_id, (tags, metadata) in keys.items():
            self._merger.add(mlflow_trace_id(trace_id), tags, metadata)

    def _settle(
        self, roots: dict[int, ReadableSpan], others: dict[int, int], usage: dict[int, list[Any]], ok: bool
    ) -> list[TraceInfo]:
        """Bookkeeping after a batch: which records are due now, which wait, which are skipped."""
        due: list[TraceInfo] = []
        skipped = 0
        with self._lock:
            for trace_id, count in others.items():
                left = self._pending.get(trace_id, 0) - count
                if left > 0:
                    self._pending[trace_id] = left
                else:
                    self._pending.pop(trace_id, None)
                if not ok:
                    _bounded_put(self._spoiled, trace_id, True)
                    self._usage.pop(trace_id, None)
                    if self._deferred.pop(trace_id, None) is not None:
                        skipped += 1
                    continue
                deferred = self._deferred.get(trace_id)
                if trace_id in usage and trace_id not in roots:
                    if deferred is not None:  # the root went first: its record is built when due
                        deferred[1].extend(usage[trace_id])
                    else:
                        _bounded_put(self._usage, trace_id, self._usage.get(trace_id, []) + usage[trace_id])
                if left <= 0 and deferred is not None:
                    del self._deferred[trace_id]
                    info = self._build(*deferred)
                    if info is not None:
                        due.append(info)
            for trace_id, root in roots.items():
                all_usage = self._usage.pop(trace_id, []) + usage.get(trace_id, [])
                if not ok or self._spoiled.pop(trace_id, False):
                    skipped += 1
                    continue
                if self._pending.get(trace_id):  # spans of the trace still in flight: wait for them
                    self._deferred[trace_id] = (root, all_usage)
                    continue
                info = self._build(root, all_usage)
                if info is not None:
                    due.append(info)
        if skipped:
            self._counters.add("mlflow_records_skipped", skipped)
        return due

    def _build(self, root: ReadableSpan, usage: list[Any]) -> Optional[TraceInfo]:
        """The record of a trace, with the run context; None (counted) if it cannot be built."""
        try:
            info = self._record(root, usage)
            for key, value in self._environment.items():
                info.trace_metadata.setdefault(key, value)
            if self._assessments is not None:  # logged while the trace was open
                info.assessments = self._assessments.take(info.trace_id)
            return info
        except Exception as exc:  # a record is never worth the batch
            warn_limited("mlflow_record_build", "Could not build the MLflow record of a trace: %r", exc)
            self._counters.add("mlflow_records_failed")
            return None

    @staticmethod
    def _record(root: ReadableSpan, usage: list[Any]) -> TraceInfo:
        root_span = span_from_otel(root)
        info = record_for(root_span, token_usage_of(usage))
        _as_mlflow_writes(root_span, info)
        return info

    # --- sending -----------------------------------------------------------------------------------
    def _send_all(self, records: list[TraceInfo]) -> None:
        """Send a batch's records, ``concurrency`` at a time: the export thread sends one and the
        senders every MLflow destination shares (``RecordSenders``: threads do not grow with the
        number of experiments a process sends to) the others; returns when each is settled."""
        queued: list[_Job] = []
        if len(records) > 1 and self._concurrency > 1:
            with self._lock:
                if self._senders is None:
                    self._senders = RecordSenders(self._concurrency - 1)
                senders = self._senders
            queued = [senders.submit(functools.partial(self._run, info)) for info in records[1:]]
            with self._lock:
                self._waiting.update(queued)
            records = records[:1]
        for info in records:
            self._run(info)
        for job in queued:
            job.done.wait()  # sent, failed, or cancelled at shutdown (counted there)
        with self._lock:
            self._waiting.difference_update(queued)

    def _run(self, info: TraceInfo) -> None:
        with self._lock:
            self._sending += 1
        try:
            self._send_record(info)
        finally:
            with self._lock:
                self._sending -= 1

    def _dropped(self, count: int, what: str) -> None:
        """Records whose turn came too late (the process is going): counted and said, never lost
        silently with the process."""
        self._counters.add("mlflow_records_dropped", count)
        warn_limited(
            "mlflow_record_dropped",
            "%d trace records%s were not sent to %s before exit (those traces keep what OTLP "
            "delivered: no client_request_id, custom previews or metadata).",
            count,
            what,
            self.client.shown_uri,
        )

    def _send_record(self, info: TraceInfo) -> bool:
        clock = self._clock
        if self._records_stop.is_set() or (self._exiting and clock.now() >= self._exit_deadline):
            self._dropped(1, f" (trace {info.trace_id})")
            return False
        body = record_body(info, self.experiment_id)
        retries = self._retry.start()
        while True:
            timeout_s = max(0.001, min(self.client.timeout_s, retries.remaining(self._exit_limit())))
            try:
                self.client.call("POST", START_TRACE_V3, body, timeout_s=timeout_s)
                self._counters.add("mlflow_records_sent")
                return True
            except MlflowServerError as exc:
                error = exc
            except Exception as exc:  # never into the export worker
                error = MlflowServerError(f"{type(exc).__name__}: {exc}", status=400)
            retryable = error.status is None or error.status in MLFLOW_REST
            wait = retries.next_wait(None, self._exit_limit()) if retryable else None
            if wait is None or self._records_stop.is_set() or (self._exiting and error.status is None):
                self._counters.add("mlflow_records_failed")
                warn_limited(
                    "mlflow_record",
                    "Could not send the record of trace %s to %s (the trace keeps what OTLP delivered: no "
                    "client_request_id, custom previews or metadata): %s",
                    info.trace_id,
                    self.client.shown_uri,
                    error.message,
                )
                return False
            self._counters.add("mlflow_records_retries")
            if clock.wait(self._records_stop, wait):
                self._counters.add("mlflow_records_failed")
                return False

    # --- lifecycle: the OTLP exporter's, extended to the records --------------------------------
    def busy(self) -> bool:
        """Busy while records are being sent (the server answers: exit gives them the busy budget)."""
        return self._sending > 0 or super().busy()

    def close_idle(self) -> None:
        """The export pool found this destination idle: close the OTLP and REST connections."""
        super().close_idle()
        self.client.close_idle()

    def shutdown(self) -> None:
        self._records_stop.set()  # a record whose turn comes now is counted as dropped, not sent
        # Count what waits now, before the exit report is written: those records' threads may not
        # run again before the process ends.
        with self._lock:
            unsent = sum(job.claim("cancelled") for job in self._waiting)
            deferred = len(self._deferred)  # roots waiting for their children's batches
            self._deferred.clear()
        if unsent + deferred:
            self._dropped(unsent + deferred, "")
        # Records in flight end by the exit deadline (their requests' timeouts are bounded by it):
        # wait for their outcome, so the counts the exit report reads add up.
        settle_by = time.monotonic() + IN_FLIGHT_SETTLE_S
        while self._sending and time.monotonic() < settle_by:
            time.sleep(0.005)
        super().shutdown()
        self._merger.close(min(self._exit_deadline, time.monotonic() + MERGE_CLOSE_S))
