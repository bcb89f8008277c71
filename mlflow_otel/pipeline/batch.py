"""The batch stage: a bounded queue between the app thread and one destination's exporter.

Follows the OTel spec's Batch Span Processor (``OTEL_BSP_*``, sdk-environment-variables.md), with
the guarantees docs/architecture.md ("Batch") states:

* ``on_end_trace`` (the app thread, into the process stage) and ``on_end_many`` (the process
  worker, into a destination) never block and never raise: a full queue costs a counted drop and a
  rate-limited warning (the app thread never waits for a slow or dead collector).
* A batch is exported when it fills or when the schedule delay passes, by up to ``max_workers``
  parallel threads (``MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS``) of an export pool (``workers.py``):
  the pool every destination shares, so threads and sockets do not grow with the number of
  destinations, or a pool of the stage's own (the process stage: one thread, as the OTel SDK's
  batch processor has). One way of running, whichever pool.
* ``force_flush`` waits until every span queued before the call has been exported or dropped, or the
  deadline passes: whichever comes first, even while an export is stuck in retries.
* ``shutdown`` flushes within its deadline, then stops the exporter (interrupting retry backoff).
* After a fork the child starts fresh workers and an empty queue (the parent's spans are the
  parent's to export), so gunicorn / multiprocessing children export their own spans, and none twice.
  A fork from C (uWSGI, ``ctypes.CDLL(None).fork()``) runs no Python at-fork hook: the stage notices
  the changed process id on its next use (``_fork.check``) and every stage restarts then. On the app
  thread the id is compared only at every 16th queue length and when a batch is due (``os.getpid``
  is a system call: about 250 ns here), so the request path pays for it once per 16 traces at most.
  Under uWSGI its post-fork hook restarts every stage at once.
* At shutdown, spans the deadline left in the queue go to the exporter's ``salvage`` (the on-disk
  spool) when it has one, else they are counted as ``dropped.shutdown``.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Sequence
from typing import Any, Optional

from opentelemetry import context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel import _fork
from mlflow_otel._clock import REAL_CLOCK, Clock
from mlflow_otel._log import warn_limited
from mlflow_otel._telemetry import Counters
from mlflow_otel.exporters.base import Salvaging, close_idle
from mlflow_otel.pipeline.workers import ExportPool

#: An export that waits on its destination longer than this beyond its own CPU is bound by the
#: destination, not by our encoding: more than a request's encoding (about 4 ms for 512 spans) plus
#: the GIL waits the application's thread may add to it (a switch interval, 5 ms, each).
WAIT_BOUND_S = 0.02
#: How many exports ``waits`` looks back on (all of them must have waited).
RECENT_EXPORTS = 4


def span_count(item: Any) -> int:
    """Spans in a queued item: a span, or a whole trace (``on_end_trace``)."""
    return len(item) if hasattr(item, "__len__") else 1


class _PoolBell:
    """What a pooled stage has for ``_wake``: setting it puts the stage in the pool's line."""

    __slots__ = ("_pool", "_stage")

    def __init__(self, pool: ExportPool, stage: BatchProcessor) -> None:
        self._pool = pool
        self._stage = stage

    def set(self) -> None:
        self._pool.notify(self._stage)


class BatchProcessor:
    """Queues finished traces (the process stage) or their spans (a destination) and exports them
    in batches: not an OTel ``SpanProcessor`` (the head, ``assembly.py``, is the one the tracer
    calls), so it offers only what the pipeline uses."""

    def __init__(
        self,
        exporter: SpanExporter,
        max_queue_size: int = 2048,
        max_export_batch_size: int = 512,
        schedule_delay_s: float = 5.0,
        max_workers: int = 1,
        name: str = "default",
        count_exports: bool = True,
        exporter_accounts: bool = False,
        pool: Optional[ExportPool] = None,
        local: bool = False,
        clock: Clock = REAL_CLOCK,
        *,
        counters: Counters,
    ) -> None:
        self.exporter = exporter
        #: Where drops (``dropped.<reason>``) and exports are counted: the runtime's.
        self._counters = counters
        #: Read for deadlines and the last export, never on the app thread (the unit tier's fake).
        self._clock = clock
        #: A sink on this machine (the local file and store): at exit it is drained whole, not cut
        #: at the exit deadline (``drain``), since its speed depends on nothing remote.
        self.local = local
        #: Spans ``shutdown`` could neither export nor salvage (the exit report names the stage).
        self.cut_at_shutdown = 0
        #: The shared export threads (destination stages, ``workers.py``); None: a pool of this
        #: stage's own, of ``max_workers`` threads, stopped with the stage (the process stage).
        self._own_pool = pool is None
        self._pool = pool or ExportPool(
            max(1, max_workers), schedule_delay_s, f"mlflow-otel-export-{name}", clock
        )
        self.in_line = False  # waiting in the pool's line
        self.exporting = 0  # pool threads exporting for this stage now
        self.last_export = clock.now()
        self.connected = False  # exported since its idle connections were last closed
        self.name = name
        #: False for a stage whose "exporter" hands spans on to another stage (the process stage):
        #: only the last stage counts spans as exported.
        self._count_exports = count_exports
        #: True when the exporter counts what became of each span itself (ours: delivered, dropped
        #: by reason, spooled); otherwise this stage counts by the export's result.
        self._exporter_accounts = exporter_accounts
        self.due = False
        #: Each of the last exports waited (its wall time less its CPU) more than ``WAIT_BOUND_S``:
        #: on the destination (a remote collector's round trip, a server's database write), not
        #: only for the GIL, which some exports meet and others do not (a burst of the app's).
        #: Then a second export in flight adds throughput (``concurrency``). Until an export says
        #: otherwise, it does (a remote destination's first batches are not held back).
        self.waits = True
        self._recent_waits: collections.deque[float] = collections.deque(maxlen=RECENT_EXPORTS)
        self._max_queue_size = max_queue_size
        # While the destination refuses connections the queue keeps a quarter of its room: enough to
        # ride out a collector restart, without holding a burst's worth of spans for a collector
        # that may never come back (a dead collector costs counted drops and bounded memory). Read
        # on the hot path as one attribute.
        self._unreachable_limit = max(1, max_queue_size // 4)
        self._limit = max_queue_size
        self._max_batch = min(max_export_batch_size, max_queue_size)
        self._max_workers = max(1, max_workers)
        self._shutdown = False
        self._start()
        _fork.in_child(self._start)

    def _start(self) -> None:
        """Fresh state and workers: at construction, and in a forked child (``_fork.py``), where the
        queue starts empty: what the parent had queued is the parent's to send (a child forked from
        C that exported it too delivered every such span twice)."""
        # The queue holds the spans themselves: a span's place in line is its number. Spans leave only
        # from the left, under the take lock, so the n-th span taken is the n-th span queued; counting
        # what was taken numbers every span without storing a number per span (memory: a queue full
        # of small spans is most of what a dead collector costs).
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._taken = 0  # spans that left the queue (exported, being exported, or dropped)
        self._take_lock = threading.Lock()
        self._progress = threading.Condition()
        self._inflight: dict[int, int] = {}  # batch id -> number of the first span in it
        self._batch_ids = itertools.count()
        self._finished = 0  # batches whose export ended (``drain`` watches it for progress)
        self._wake = _PoolBell(self._pool, self)
        self._flush_waiters = 0
        self._pool.register(self)

    @staticmethod
    def _forked() -> bool:
        """True if this is a child forked from C since the stages last started (no at-fork hook
        ran): every stage has now restarted with an empty queue (``_fork.check``)."""
        return _fork.check()

    # --- app thread ----------------------------------------------------------------------------------
    def on_end_trace(self, trace: Any) -> None:
        """Queue a whole trace as one item (the process stage: its tail decision needs the trace
        whole); ``trace`` is a list of spans, a ``Routed`` trace or a lone span. The queue's bound
        then counts traces. Called on the app thread: no lock, no system call in the common case."""
        if self._shutdown:
            self._counters.add("dropped.shutdown", span_count(trace))
            return
        queue = self._queue
        queued = len(queue)
        if queued & 15 == 0 or queued >= self._max_batch:
            self._forked()
            queue = self._queue
            queued = len(queue)
        if queued >= self._limit:
            self._counters.add("dropped.queue_full", span_count(trace))
            warn_limited(
                "queue_full",
                "Trace queue for %s is full (%d traces); dropping whole traces.",
                self.name,
                self._limit,
            )
            return
        queue.append(trace)
        if queued + 1 >= self._max_batch:
            self._wake.set()

    def on_end_many(self, spans: Sequence[Any]) -> None:
        """Queue a whole trace, or none of it: a trace never arrives without its root. (Called by
        the process worker, not the app thread: it checks for a fork every time.)"""
        if self._shutdown:
            self._counters.add("dropped.shutdown", len(spans))
            return
        self._forked()
        if len(self._queue) + len(spans) > self._limit:
            self._counters.add("dropped.queue_full", len(spans))
            warn_limited(
                "queue_full",
                "Trace export queue for %s is full (%d spans%s); dropping whole traces. Raise "
                "MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE or check the destination.",
                self.name,
                self._limit,
                "" if self._limit == self._max_queue_size else ", the destination is unreachable",
            )
            return
        self._queue.extend(spans)
        if len(self._queue) >= self._max_batch:
            self._wake.set()

    def export_soon(self) -> None:
        """Export what is queued now, full batch or not (the previous stage ran on its schedule)."""
        self.due = True
        self._wake.set()

    @property
    def reachable(self) -> bool:
        """False while the destination refuses connections (as its exporter last reported)."""
        return self._limit == self._max_queue_size

    @property
    def queue_limit(self) -> int:
        """Spans the queue admits now: the full size, or a quarter while the destination is down."""
        return self._limit

    def set_reachable(self, reachable: bool) -> None:
        """Called by the exporter when its endpoint starts or stops accepting connections."""
        self._limit = self._max_queue_size if reachable else self._unreachable_limit

    # --- workers -----------------------------------------------------------------------------------
    @property
    def concurrency(self) -> int:
        """Threads that may export for this destination at once: ``max_workers`` while its requests
        wait on it (``waits``), else one: a nearby destination is bound by our encoding, CPU work
        under the GIL, which a second thread would only take from the application's share (the
        OTel SDK's batch processor exports one request at a time too). One while it refuses
        connections (its retries must not hold the shared pool)."""
        return self._max_workers if self.waits and self.reachable else 1

    def has_work(self) -> bool:
        """A batch to export now: a full one, or any while a flush waits, at shutdown, or when due."""
        queued = len(self._queue)
        return queued >= self._max_batch or (
            queued > 0 and (self.due or self._flush_waiters > 0 or self._shutdown)
        )

    def export_next(self) -> None:
        """Export one batch (a pool thread; ``workers.py``). After a fork from C the stage may not
        have noticed yet: it restarts first, so a pool thread never takes from the parent's queue
        state."""
        if self._forked() or not self.has_work():
            return
        batch_id, batch = self._take()
        if not self._queue:
            self.due = False
        if not batch:
            return
        self.connected = True
        try:
            self._export(batch)
        finally:
            self.last_export = self._clock.now()
            with self._progress:
                del self._inflight[batch_id]
                self._finished += 1
                self._progress.notify_all()

    def close_idle(self) -> None:
        """The pool found this destination idle: close its exporter's kept-alive connections."""
        close_idle(self.exporter)

    def _take(self) -> tuple[int, list[ReadableSpan]]:
        with self._take_lock:
            batch: list[ReadableSpan] = []
            try:
                while len(batch) < self._max_batch:
                    batch.append(self._queue.popleft())
            except IndexError:
                pass
            if not batch:
                return -1, batch
            batch_id = next(self._batch_ids)
            with self._progress:
                self._inflight[batch_id] = self._taken + 1
            self._taken += len(batch)
            return batch_id, batch

    def _take_all(self) -> list[Any]:
        """Empty the queue; what it held counts as taken, so flushes waiting on it end."""
        with self._take_lock:
            items = list(self._queue)
            self._queue.clear()
            self._taken += len(items)
        with self._progress:
            self._progress.notify_all()
        return items

    def _export(self, batch: list[ReadableSpan]) -> None:
        # Export makes HTTP or gRPC calls: instrumented clients (requests, urllib3, grpc) must not
        # trace them, or every export would make spans to export (the SDK's batch processor does
        # the same).
        token = context.attach(context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        started, cpu = self._clock.now(), time.thread_time()
        try:
            result = self.exporter.export(batch)
        except Exception as exc:
            spans = sum(map(span_count, batch))  # the process stage's items are whole traces
            self._counters.add("dropped.export_error", spans)
            warn_limited("export_error", "Exporter raised while exporting %d spans: %s", spans, exc)
            return  # counted: its fate is known
        finally:
            context.detach(token)
            recent = self._recent_waits
            recent.append((self._clock.now() - started) - (time.thread_time() - cpu))
            self.waits = min(recent) > WAIT_BOUND_S
        if not self._count_exports:
            return
        # Every span is counted once, where its fate is known (started = delivered + dropped by
        # reason + spooled + queued): our exporters count it themselves, partial success included;
        # for any other exporter its result decides.
        self._counters.add("spans_exported", len(batch))
        if not self._exporter_accounts:
            if result is SpanExportResult.SUCCESS:
                self._counters.add("spans_delivered", len(batch))
            else:
                self._counters.add("dropped.export_failed", len(batch))

    # --- control -----------------------------------------------------------------------------------
    def _done_through(self, target: int) -> bool:
        """True when spans 1..target have all left the queue and none of them is being exported."""
        return self._taken >= target and all(first > target for first in self._inflight.values())

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until every span queued before this call has been exported or dropped, or the deadline."""
        self._forked()
        with self._take_lock:  # every span queued so far: those taken, and those still in line
            target = self._taken + len(self._queue)
        clock = self._clock
        deadline = clock.now() + max(timeout_millis, 0) / 1000.0
        with self._progress:
            self._flush_waiters += 1
            try:
                while not self._done_through(target):
                    if not self._alive():
                        return False
                    remaining = deadline - clock.now()
                    if remaining <= 0:
                        return False
                    self._wake.set()
                    clock.wait(self._progress, min(remaining, 0.05))
            finally:
                self._flush_waiters -= 1
        return self._flush_exporter(_ms_left(deadline, clock))

    def _flush_exporter(self, timeout_millis: int) -> bool:
        """The exporter's own flush (work it does after ``export`` returned: the local store's
        indexing, a user's exporter's buffer); only False means it failed, as for processors."""
        try:
            return self.exporter.force_flush(timeout_millis) is not False
        except Exception as exc:
            warn_limited("exporter_flush", "Exporter %r failed to flush: %r", self.exporter, exc)
            return False

    def drain(self, stall_timeout_millis: int) -> bool:
        """Wait until every span queued before this call has been exported or dropped, for as long
        as exports keep finishing: gives up only after ``stall_timeout_millis`` without any progress
        (a disk that hangs, a destination that stopped answering). At exit a local sink is drained
        this way: its pace is the machine's, and cutting it at a fixed deadline lost queued spans
        that a second more would have written (docs/architecture.md, "Exit")."""
        while True:
            progress = (self._taken, self._finished)
            if self.force_flush(stall_timeout_millis):
                return True
            if (self._taken, self._finished) == progress or not self._alive():
                return False

    def _alive(self) -> bool:
        return self._pool.alive

    def shutdown(self, timeout_millis: int = 30000) -> None:
        if self._shutdown:
            return
        clock = self._clock
        deadline = clock.now() + timeout_millis / 1000.0
        self.force_flush(timeout_millis)
        self._shutdown = True
        left = self._take_all()
        if left:  # what the deadline left behind: to the spool if there is one, else dropped
            total = sum(span_count(item) for item in left)
            saved = 0
            if isinstance(self.exporter, Salvaging):  # destination stages: the queue holds spans
                try:
                    saved = self.exporter.salvage(left)
                except Exception as exc:
                    warn_limited("salvage", "Could not keep %d queued spans: %r", total, exc)
            if total > saved:
                self.cut_at_shutdown += total - saved
                self._counters.add("dropped.shutdown", total - saved)
        self._wake.set()
        try:
            self.exporter.shutdown()  # interrupts retry backoff in the workers
        except Exception as exc:
            warn_limited("exporter_shutdown", "Exporter shutdown failed: %s", exc)
        with self._progress:  # this stage's exports in flight
            while self._inflight and clock.now() < deadline:
                clock.wait(self._progress, min(0.05, max(0.0, deadline - clock.now())))
        if self._own_pool:
            self._pool.stop()

    @property
    def queued(self) -> int:
        return len(self._queue)


def _ms_left(deadline: float, clock: Clock) -> int:
    return int(max(0.0, deadline - clock.now()) * 1000)
