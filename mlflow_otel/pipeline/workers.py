"""Export threads shared by every destination's batch stage.

A process that routes traces per tenant (``trace_destination=`` one MLflow experiment or OTLP
endpoint each) may use dozens of destinations. A thread pair per destination (the OTel SDK's
``BatchSpanProcessor`` model) grows the process with every tenant it ever served, and never shrinks.
Here one pool per pipeline exports for all of them (and the process stage, which feeds them, runs
on a one-thread pool of its own: the same code, its schedule and flushes included):

* **Bounded**: at most ``max_threads`` threads (``2 x MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS``, at
  least 4), whatever the number of destinations. One thread always stays: it keeps the schedule (a
  partial batch leaves after ``OTEL_BSP_SCHEDULE_DELAY``). The others start when work waits and no
  thread is free, and end after ``IDLE_S`` without work.
* **Fair**: a stage with work waits in one line; a thread takes the first, exports **one** batch,
  and puts it back at the end of the line if it has more. A busy tenant does not starve a quiet one.
* **Per destination**: each stage keeps its own bounded queue, counters and flush; one thread
  exports for one destination at a time, up to ``max_workers`` while its requests wait on it
  (``BatchProcessor.concurrency``: a remote one), and one while it refuses connections
  (its retries then hold one thread, not the pool; a thread is started so that another one stays
  free for the others while the pool is below its bound). The last thread is kept for a
  destination that has none: never a second thread for a busy destination, and never to a
  refusing one while refusing destinations hold all the others.
* **Sockets released**: a destination idle for ``IDLE_S`` has its keep-alive connections closed
  (``pipeline/export.py``'s ``close_idle``); the next export reconnects.
* **Fork**: a child gets a fresh pool (threads do not survive ``fork()``) from the pool's child
  hook (``_fork.in_child``); after a fork from C the hook runs when a stage first calls
  ``_fork.check`` there (``batch.py``).
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable

from mlflow_otel import _fork
from mlflow_otel._clock import REAL_CLOCK, Clock
from mlflow_otel._log import warn_limited

#: Seconds without work after which an extra thread ends and a destination's idle connections close.
IDLE_S = 30.0


class ExportPool:
    """Threads that export for the batch stages registered with it (``BatchProcessor(pool=...)``):
    every destination of a pipeline, or one stage's own (the process stage)."""

    def __init__(
        self,
        max_threads: int,
        schedule_delay_s: float,
        name: str = "mlflow-otel-export",
        clock: Clock = REAL_CLOCK,
        thread: Callable[..., Any] = threading.Thread,
    ) -> None:
        """``clock`` and ``thread`` (what makes a thread) are seams for the unit tier, which drives
        the schedule with a fake clock and threads that never start (``tests/unit/``)."""
        self.max_threads = max(1, max_threads)
        self._clock = clock
        self._thread = thread
        self._delay_s = schedule_delay_s
        self._idle_s = max(IDLE_S, schedule_delay_s)
        self._name = name
        self._stages: list[Any] = []
        self._numbers = 0
        self._stopped = False
        self._start()
        _fork.in_child(self._start)

    def _start(self) -> None:
        """Fresh state and the schedule's thread: at construction and in a forked child (a stopped
        pool stays stopped there: a pipeline replaced before the fork starts nothing)."""
        self._cond = threading.Condition()
        self._line: collections.deque[Any] = collections.deque()
        self._threads: set[threading.Thread] = set()
        self._free = 0  # threads waiting for work
        self._next_tick = self._clock.now() + self._delay_s
        for stage in self._stages:
            stage.in_line = False
            stage.exporting = 0
        if not self._stopped:
            self._spawn()

    def _spawn(self) -> None:
        """One more thread (caller holds the lock, or is the constructor). A thread that cannot be
        started (the process is out of threads) is one warning; the threads there keep working."""
        self._numbers += 1
        thread = self._thread(target=self._work, name=f"{self._name}-{self._numbers}", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:
            warn_limited("export_pool_spawn", "Could not start an export thread: %s", exc)
            return
        self._threads.add(thread)

    # --- used by the stages ------------------------------------------------------------------------
    def register(self, stage: Any) -> None:
        with self._cond:
            if stage not in self._stages:
                self._stages.append(stage)

    @property
    def alive(self) -> bool:
        return not self._stopped and bool(self._threads)

    @property
    def threads(self) -> int:
        return len(self._threads)

    def notify(self, stage: Any) -> None:
        """``stage`` has work (a full batch, a flush, the schedule, shutdown): put it in line.
        Called by the process worker as it hands traces over, by flushes and shutdown, and on the
        app thread when the process stage's queue fills a batch (once per batch of traces: a short
        lock, as the OTel SDK's batch processor takes to wake its thread)."""
        with self._cond:
            self._enqueue(stage)

    def _enqueue(self, stage: Any) -> None:
        if stage.in_line or self._stopped:
            return
        stage.in_line = True
        self._line.append(stage)
        if self._free == 0 and len(self._threads) < self.max_threads:
            self._spawn()
        else:
            self._cond.notify()

    def stop(self) -> None:
        """The pipeline shut down: threads end once they finish what they are exporting."""
        with self._cond:
            self._stopped = True
            self._line.clear()
            self._cond.notify_all()

    # --- threads -----------------------------------------------------------------------------------
    def _take(self) -> Any:
        """The first stage in line that may have one more thread (caller holds the lock).

        The last thread the pool has or may start is kept for a destination that has none: it never
        goes to a destination already exporting, nor to one that refuses connections while such
        destinations hold all the others (their retries last up to the retry timeout)."""
        last = self._free == 0 and len(self._threads) >= self.max_threads
        for _ in range(len(self._line)):
            stage = self._line.popleft()
            stage.in_line = False
            # Not taken now: it goes back in line when one of its exports finishes, or at the
            # next tick of the schedule.
            if stage.exporting >= stage.concurrency or (last and stage.exporting):
                continue
            if last and not stage.reachable and self._refusing() >= self.max_threads - 1:
                continue
            return stage
        return None

    def _refusing(self) -> int:
        """Threads exporting for destinations that refuse connections (caller holds the lock)."""
        return sum(stage.exporting for stage in self._stages if not stage.reachable)

    def _tick(self, now: float) -> list[Any]:
        """The schedule (caller holds the lock): stages holding spans get their partial batch out;
        returns the stages idle long enough to close their connections."""
        self._next_tick = now + self._delay_s
        idle = []
        for stage in self._stages:
            if stage.queued:
                stage.due = True
                self._enqueue(stage)
            elif stage.exporting == 0 and stage.connected and now - stage.last_export >= self._idle_s:
                stage.connected = False
                idle.append(stage)
        return idle

    def _work(self) -> None:
        me = threading.current_thread()
        try:
            self._serve()
        finally:
            with self._cond:
                self._threads.discard(me)

    def _serve(self) -> None:
        clock = self._clock
        free_since = clock.now()
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    now = clock.now()
                    stage, release = self._pick(now)
                    if stage is not None or release:
                        break
                    if now - free_since >= self._idle_s:
                        if self._free > 0:
                            return  # idle, and another thread is free to keep the schedule: end
                        free_since = now  # the one free thread stays (it keeps the schedule)
                    self._free += 1
                    try:
                        clock.wait(
                            self._cond, max(0.001, min(self._next_tick, free_since + self._idle_s) - now)
                        )
                    finally:
                        self._free -= 1
            for idle in release:
                idle.close_idle()
            if stage is None:
                continue
            try:
                stage.export_next()
            except Exception as exc:  # never the end of a pool thread
                warn_limited("export_pool", "Export for %s failed unexpectedly: %r", stage.name, exc)
            finally:
                with self._cond:
                    self._release(stage)
            free_since = clock.now()

    def _pick(self, now: float) -> tuple[Any, list[Any]]:
        """One scheduling decision of a free thread (caller holds the lock): the schedule's tick when
        due (returning the stages idle long enough to close their connections), else the stage
        this thread exports one batch for, claimed (``None`` when none may have a thread)."""
        if now >= self._next_tick:
            release = self._tick(now)
            if release:
                return None, release
        stage = self._take()
        if stage is not None:
            self._claim(stage)
        return stage, []

    def _claim(self, stage: Any) -> None:
        """A thread took ``stage`` (caller holds the lock): count it, and line the stage up again
        or start a thread, so the others are not held up by this export."""
        stage.exporting += 1
        if stage.exporting < stage.concurrency and stage.has_work():
            self._enqueue(stage)  # a second thread may export its next batch meanwhile
        elif self._free == 0 and len(self._threads) < self.max_threads:
            # Keep a thread free for the schedule and the other destinations while this one may be
            # held by a slow or refusing destination.
            self._spawn()

    def _release(self, stage: Any) -> None:
        """A thread finished one export for ``stage`` (caller holds the lock)."""
        stage.exporting -= 1
        if stage.has_work():
            self._enqueue(stage)
