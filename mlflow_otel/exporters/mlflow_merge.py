"""A callee's trace-level tags and metadata, merged into the record of a trace another service holds.

In a distributed trace (``tracing.set_tracing_context_from_http_request_headers``) a callee exports
only its fragment: the spans under its local root, whose parent lives in the caller. The trace's
record (``StartTraceV3``: previews, ``client_request_id``, state, duration) belongs to the service
holding the trace's root (``mlflow_record.py``). What the callee set with ``update_current_trace``
(tags, metadata) would otherwise stay on its fragment's root span: MLflow 3.18's server makes trace
tags only of the trace root's ``mlflow.traceTag.*`` attributes (``SqlAlchemyStore.log_spans``), and
MLflow's own SDK sends a record only for a trace whose root is local (``MlflowV3SpanExporter``
skips a span with a parent), so with MLflow itself a callee's tags and metadata are lost.

Here, once the callee's spans are delivered, its keys are merged into the record, **never
overwriting** a key the record has and **never creating** a record:

1. Read the record (``GET /api/3.0/mlflow/traces/{id}``, MLflow's ``GetTraceInfoV3``).
2. While it does not exist or is not final (``mlflow.trace.infoFinalized``: the root's service has
   not sent its record yet; the callee usually ends first), or the server gives a transient answer,
   wait and read again (the retry policy every sender uses, ``retry.py``: its backoff, within the
   retry timeout) on one thread of this destination, started with the first fragment: never an
   export thread.
3. Final: upsert it as read, plus the callee's keys it lacks (``StartTraceV3`` merges tags and
   metadata; every other field is sent back as read, so nothing of the root's changes). Once a
   record is final its service does not write it again, so the read and the write do not race
   with it.
4. Never final by then (the root's service sends no record, e.g. plain OTLP), or the process
   exits first (``close``: one last read each, within the exit deadline): the tags alone, with
   MLflow's ``SetTraceTag`` (there is no call that adds metadata without rewriting the record);
   the metadata is counted as ``mlflow_merge_metadata_dropped`` with a rate-limited warning.

Counted in ``tracing.stats()``: ``mlflow_fragments_merged``, ``mlflow_merge_failed``.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from mlflow_otel import _fork
from mlflow_otel._log import warn_limited
from mlflow_otel._mlflow_server import RESOURCE_DOES_NOT_EXIST, MlflowServerError, RestClient
from mlflow_otel._telemetry import Counters
from mlflow_otel.exporters.retry import MLFLOW_REST, Retries, RetryPolicy
from mlflow_otel.records.model import TraceInfo
from mlflow_otel.records.rest import trace_info_from_json

#: Key MLflow sets once ``StartTraceV3`` wrote the record (``TraceMetadataKey.TRACE_INFO_FINALIZED``).
FINALIZED = "mlflow.trace.infoFinalized"
#: Fragments waiting for their record at most (per destination); beyond, counted as not merged.
MAX_WAITING = 10_000


@dataclass(order=True)
class _Job:
    due: float
    order: int
    trace_id: str = field(compare=False)
    tags: dict[str, str] = field(compare=False)
    metadata: dict[str, str] = field(compare=False)
    retries: Retries = field(compare=False)


class FragmentMerger:
    """Merges callee fragments' tags and metadata into their traces' records (module docstring)."""

    def __init__(self, client: RestClient, policy: RetryPolicy, record_body: Any, counters: Counters) -> None:
        self._counters = counters
        self._client = client
        self._policy = policy
        self._clock = policy.clock
        self._record_body = record_body  # mlflow_record.record_body (no import cycle)
        self._order = itertools.count()
        self._closed = False
        self._reset()
        _fork.in_child(self._reset)

    def _reset(self) -> None:
        """Fresh state (at construction, and in a forked child: the parent's fragments are the
        parent's to merge, and its lock may have been held at the fork)."""
        self._cond = threading.Condition()
        self._jobs: list[_Job] = []
        self._thread_started = False  # in this process (a forked child starts its own)
        self._attempting = False  # the thread is reading or writing a record now

    def add(self, trace_id: str, tags: dict[str, str], metadata: dict[str, str]) -> None:
        """A delivered fragment's keys (called on an export thread: returns at once)."""
        job = _Job(self._clock.now(), next(self._order), trace_id, tags, metadata, self._policy.start())
        with self._cond:
            if self._closed or len(self._jobs) >= MAX_WAITING:
                self._counters.add("mlflow_merge_failed")
                warn_limited(
                    "mlflow_merge",
                    "A trace fragment's tags and metadata were not merged: %s",
                    "the destination shut down" if self._closed else f"{MAX_WAITING} fragments already wait",
                )
                return
            heapq.heappush(self._jobs, job)
            if not self._thread_started:  # the first fragment, in this process
                self._thread_started = True
                threading.Thread(target=self._run, name="mlflow-otel-merge", daemon=True).start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._jobs or self._jobs[0].due > self._clock.now()):
                    timeout = self._jobs[0].due - self._clock.now() if self._jobs else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                job = heapq.heappop(self._jobs)
                self._attempting = True
            try:
                self._attempt(job, None)
            finally:
                with self._cond:
                    self._attempting = False
                    self._cond.notify_all()

    def close(self, deadline: float) -> None:
        """Shutdown: each fragment still waiting gets one last attempt, within ``deadline``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            while self._attempting and self._clock.now() < deadline:  # its job ends (no retry now)
                self._cond.wait(deadline - self._clock.now())
            jobs, self._jobs = sorted(self._jobs), []
        for i, job in enumerate(jobs):
            if self._clock.now() >= deadline:
                self._counters.add("mlflow_merge_failed", len(jobs) - i)
                warn_limited(
                    "mlflow_merge",
                    "%d trace fragments' tags were not merged: the exit deadline",
                    len(jobs) - i,
                )
                return
            self._attempt(job, deadline)

    def _retry(self, job: _Job) -> bool:
        """Wait and read again, if the job's time allows; True if it was put back."""
        wait = job.retries.next_wait()
        if wait is None:
            return False
        job.due = self._clock.now() + wait
        with self._cond:
            if self._closed:
                return False
            heapq.heappush(self._jobs, job)
            self._cond.notify()
        return True

    def _attempt(self, job: _Job, deadline: Optional[float]) -> None:
        """One read (and the write it calls for). ``deadline``: the last attempt, at shutdown; no
        request outlives it."""
        final = deadline is not None

        def timeout() -> Optional[float]:
            return None if deadline is None else max(0.001, deadline - self._clock.now())

        try:
            info = self._read(job.trace_id, timeout())
            finalized = info is not None and info.trace_metadata.get(FINALIZED) == "true"
            if not finalized and not final and self._retry(job):
                return
            if info is None:
                raise MlflowServerError(f"trace {job.trace_id} not found", RESOURCE_DOES_NOT_EXIST, 404)
            tags = {k: v for k, v in job.tags.items() if k not in info.tags}
            metadata = {k: v for k, v in job.metadata.items() if k not in info.trace_metadata}
            experiment = _experiment(info)
            if finalized and experiment is not None and (tags or metadata):
                info.tags.update(tags)
                info.trace_metadata.update(metadata)
                body = self._record_body(info, experiment)
                self._client.call("POST", "/api/3.0/mlflow/traces", body, timeout_s=timeout())
            elif tags or metadata:
                for key, value in tags.items():
                    path = f"/api/2.0/mlflow/traces/{job.trace_id}/tags"
                    self._client.call("PATCH", path, {"key": key, "value": value}, timeout_s=timeout())
                if metadata:
                    self._counters.add("mlflow_merge_metadata_dropped", len(metadata))
                    warn_limited(
                        "mlflow_merge_metadata",
                        "Trace %s has no final record from the service holding its root: this "
                        "service's tags were added, its metadata %s could not be",
                        job.trace_id,
                        sorted(metadata),
                    )
            self._counters.add("mlflow_fragments_merged")
        except MlflowServerError as exc:
            transient = exc.status is None or exc.status in MLFLOW_REST
            if not final and transient and self._retry(job):
                return
            self._counters.add("mlflow_merge_failed")
            warn_limited("mlflow_merge", "Could not merge a trace fragment's tags and metadata: %s", exc)
        except Exception as exc:  # never into the thread's loop
            self._counters.add("mlflow_merge_failed")
            warn_limited("mlflow_merge", "Could not merge a trace fragment's tags and metadata: %r", exc)

    def _read(self, trace_id: str, timeout_s: Optional[float]) -> Optional[TraceInfo]:
        try:
            data = self._client.call("GET", f"/api/3.0/mlflow/traces/{trace_id}", timeout_s=timeout_s)
        except MlflowServerError as exc:
            if exc.error_code == RESOURCE_DOES_NOT_EXIST or exc.status == 404:
                return None
            raise
        return trace_info_from_json((data.get("trace") or {}).get("trace_info") or {})


def _experiment(info: TraceInfo) -> Optional[str]:
    """The record's experiment, None if it lives elsewhere (then only tags are merged: a record
    upserted without its location would move)."""
    location = info.trace_location if isinstance(info.trace_location, dict) else {}
    experiment_id = (location.get("mlflow_experiment") or {}).get("experiment_id")
    return str(experiment_id) if experiment_id else None
