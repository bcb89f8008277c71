"""The runtime: the one owner of the process's running state, and its lifecycle (exit, SIGTERM, fork).

:class:`Runtime` (one per process, ``RUNTIME``) holds what lives as long as the process: the
registry of open traces (``spans/registry.py``), the counters, the instrumentation scopes bound to
us by ``autolog()``, the assessments waiting for their trace's record, the MLflow record senders,
the read API's store, a testing capture, and the running tracer and pipeline (:class:`Running`,
replaced whole when settings change). It hands each floor below what it needs: ``spans/`` gets the
registry, the scopes, the counters and the tracer through the tracer slot
(``spans/tracer.RUNNING``); a pipeline gets the registry, and for every destination it builds the
counters, the assessments and the senders (``pipeline/route.Shared``). Nothing below imports this
module (docs/architecture.md, "Floors").

The running tracer is built lazily at the first span from ``_state.settings()``, so
``import mlflow_otel`` stays cheap and a process that never traces pays nothing. Settings made in
code (``set_tracking_uri``, ``set_experiment``, ``tracing.set_destination``) live in ``_state``;
changing them replaces the running pipeline here (finished spans are flushed to the old
destinations first; open traces are kept and end into the new one).

Exit (docs/architecture.md, "Exit"): open traces are ended as ERROR and exported, the pipeline
flushes within ``MLFLOW_OTEL_EXIT_TIMEOUT_SECONDS`` (a busy destination within
``MLFLOW_OTEL_EXIT_BUSY_TIMEOUT_SECONDS``), and one line reports what could not be delivered. The
same sequence runs on SIGTERM when the application has no handler (``pipeline/exit.py``).
"""

from __future__ import annotations

import os
import random
import secrets
import threading
from typing import Any, Callable, Optional

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from mlflow_otel import _fork
from mlflow_otel._files import update_locked
from mlflow_otel._log import ensure_visible, logger, warn_limited
from mlflow_otel._settings import Settings
from mlflow_otel._state import STATE
from mlflow_otel._telemetry import Counters
from mlflow_otel.exporters.mlflow_record import RecordSenders
from mlflow_otel.pipeline.assembly import TimeoutWatcher, end_open_traces, run_on_start
from mlflow_otel.pipeline.build import Pipeline
from mlflow_otel.pipeline.exit import announce, die_of_sigterm, install_sigterm
from mlflow_otel.pipeline.route import RECORD_CONCURRENCY, Shared
from mlflow_otel.records.pending import PendingAssessments
from mlflow_otel.semconv import SCOPE_NAME
from mlflow_otel.spans.registry import Registry
from mlflow_otel.spans.sampling import sampler_for
from mlflow_otel.spans.tracer import RUNNING, LeanTracer
from mlflow_otel.version import VERSION

#: How often the stats file is rewritten while the process runs.
STATS_INTERVAL_S = 5.0
#: Processes the stats file keeps apart; older ones are summed into one entry.
MAX_STATS_PROCESSES = 256


class Running:
    """The running tracer and pipeline, built from the settings in force at the first span and
    replaced whole when they change (``replace``)."""

    def __init__(self, settings: Settings, owner: Runtime) -> None:
        self.settings = settings
        self._owner = owner
        # The defaults come from settings; ``tracing.set_destination`` routes per trace (route.py).
        self.pipeline = Pipeline(
            settings,
            None,
            STATE.extra_destinations,
            on_policy_failure=STATE.fail_closed,
            registry=owner.registry,
            shared=Shared(owner.counters, owner.pending, owner.record_senders()),
        )
        self.pipeline.router.capture = owner.capture
        sampler = sampler_for(settings.sampling_ratio, settings.otel_sampler, settings.otel_sampler_arg)
        self.provider: Any
        joined = None
        if not settings.use_default_tracer_provider:
            joined = _join_global_provider(self.pipeline)
        if joined is not None:
            self.provider = joined
        else:
            # shutdown_on_exit=False: the SDK's own atexit hook waits for its processors without a
            # deadline; ours (below) bounds the exit flush instead.
            # The SDK's attribute length limit would slice JSON mid-string; the trimming processor
            # applies OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT instead, keeping JSON valid.
            limits = SpanLimits(
                max_attribute_length=SpanLimits.UNSET, max_span_attribute_length=SpanLimits.UNSET
            )
            self.provider = TracerProvider(
                resource=Resource.create(), sampler=sampler, shutdown_on_exit=False, span_limits=limits
            )
            self.provider.add_span_processor(self.pipeline.head)
            if not settings.use_default_tracer_provider:
                otel_trace.set_tracer_provider(self.provider)
        self.tracer: Any
        if joined is not None:
            # The application's provider: its processors and sampler must see our spans.
            self.tracer = self.provider.get_tracer(SCOPE_NAME, VERSION)
        else:
            self.tracer = LeanTracer(
                sampler,
                self.provider.resource,
                InstrumentationScope(SCOPE_NAME, VERSION),
                # Through the running pipeline, not this one: a span started before the pipeline
                # was replaced (set_tracking_uri, add_destination, reset) ends into the new one, so
                # a trace open at that moment is not lost.
                span_ended,
                lambda span, context: run_on_start(STATE.start_processors, span, context, owner.counters),
            )
        self.watcher: Optional[TimeoutWatcher] = None
        if settings.trace_timeout_s is not None:
            self.watcher = TimeoutWatcher(
                owner.registry, settings.trace_timeout_s, settings.trace_timeout_check_interval_s
            )
        self.stats_path = settings.stats_file or (
            settings.traces_file + ".stats.json" if self.pipeline.records_locally else None
        )
        self._stats_stop = threading.Event()
        #: The exit sequence: the thread running it, when it ended, a SIGTERM it must re-raise.
        self.exit_thread: Optional[threading.Thread] = None
        self.exit_done = threading.Event()
        self.sigterm_pending = False
        if self.stats_path:
            threading.Thread(target=self._stats_loop, name="mlflow-otel-stats", daemon=True).start()

    def _stats_loop(self) -> None:
        last: dict[str, int] = {}
        while not self._stats_stop.wait(STATS_INTERVAL_S):
            snapshot = self._owner.counters.snapshot()
            if snapshot != last:
                self.write_stats()
                last = snapshot

    def write_stats(self) -> None:
        """Write this process's counters into the stats file, beside those of every other process
        writing to it (a pre-fork server's workers, a multiprocessing pool): ``counters`` is their
        sum, ``processes`` each one's."""
        if not self.stats_path:
            return
        mine = {"pid": os.getpid(), "counters": self._owner.counters.snapshot()}
        destinations = self.pipeline.destinations

        def merge(data: dict[str, Any]) -> dict[str, Any]:
            processes = data.get("processes")
            processes = dict(processes) if isinstance(processes, dict) else {}
            processes[self._owner.process_key()] = mine
            while len(processes) > MAX_STATS_PROCESSES:  # the oldest folded into one entry
                oldest = next(k for k in processes if k != "earlier")
                folded = processes.setdefault("earlier", {"pid": None, "counters": {}})["counters"]
                for name, value in processes.pop(oldest).get("counters", {}).items():
                    folded[name] = folded.get(name, 0) + value
            total: dict[str, int] = {}
            for entry in processes.values():
                for name, value in (entry.get("counters") or {}).items():
                    total[name] = total.get(name, 0) + value
            return {
                "pid": os.getpid(),
                "destinations": destinations,
                "counters": total,
                "processes": processes,
            }

        try:
            update_locked(self.stats_path, merge)
        except OSError as exc:
            warn_limited("stats", "Could not write %s: %s", self.stats_path, exc)

    def flush(self, timeout_s: float, wait_unreachable: bool = False) -> bool:
        ok = self.pipeline.flush(timeout_s, wait_unreachable)
        self.write_stats()
        return ok

    def shutdown(self, timeout_s: float, exiting: bool = False) -> dict[str, int]:
        """Stop the pipeline (``Pipeline.shutdown``); returns the spans cut per destination."""
        if self.watcher is not None:
            self.watcher.stop()
        self._stats_stop.set()
        cut = self.pipeline.shutdown(
            timeout_s, exiting, self.settings.exit_busy_timeout_s if exiting else 0.0
        )
        self.write_stats()
        return cut


def _join_global_provider(pipeline: Pipeline) -> Optional[Any]:
    """Add our pipeline to the application's SDK TracerProvider, if it has one (setting:
    ``MLFLOW_USE_DEFAULT_TRACER_PROVIDER=false``). Then FastAPI/httpx spans and ours share one
    pipeline; the application's sampler applies. With no SDK provider installed yet, ours is
    installed as the global one instead (caller)."""
    current = otel_trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        current.add_span_processor(pipeline.head)
        logger.debug("Joined the application's global TracerProvider.")
        return current
    return None


class Runtime:
    """The process's running state, in one place (see the module doc)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        #: Self-telemetry (``tracing.stats()``, the stats file, the exit report): every stage and
        #: exporter of every pipeline counts here.
        self.counters = Counters()
        #: Open traces and live spans: they outlive every pipeline.
        self.registry = Registry(self.counters)
        #: Instrumentation scope names of tracers handed to instrumentors (``integrations/provider.py``).
        self.scopes: set[str] = set()
        #: ``mlflow_otel.testing``'s destinations while a capture runs: kept across pipelines.
        self.capture: Optional[tuple[Any, ...]] = None
        #: Assessments logged on traces still open, and the MLflow record senders (made with the
        #: first pipeline): handed to every destination a pipeline builds (``route.Shared``).
        self.pending = PendingAssessments()
        self._senders: Optional[RecordSenders] = None
        #: The read API's store and what it was built for (``_read.current_store``): reads reuse its
        #: connections until the settings or destinations in force change.
        self.read_store: Optional[tuple[tuple[Any, ...], Any]] = None
        #: The running tracer and pipeline (None until the first span).
        self.running: Optional[Running] = None
        self._hooked = False
        self._process_token: Optional[tuple[int, str]] = None

    def process_key(self) -> str:
        """This process in the stats file: its pid and a token (pids are reused)."""
        pid = os.getpid()
        if self._process_token is None or self._process_token[0] != pid:
            self._process_token = (pid, secrets.token_hex(4))
        return f"{pid}-{self._process_token[1]}"

    def record_senders(self) -> RecordSenders:
        """The threads that send MLflow trace records for every MLflow destination of the process."""
        with self.lock:
            if self._senders is None:
                self._senders = RecordSenders(RECORD_CONCURRENCY - 1)
            return self._senders

    def keep_read_store(self, key: tuple[Any, ...], store: Any) -> None:
        """The read API's store for the settings and destinations ``key`` (``_read.current_store``)."""
        self._hook_fork()
        self.read_store = (key, store)

    def _hook_fork(self) -> None:
        """At the first pipeline or read, not at import: a forked child starts afresh
        (``after_fork_in_child``)."""
        if not self._hooked:
            self._hooked = True
            _fork.in_child(self.after_fork_in_child)

    def start(self) -> Running:
        """The running tracer, built now if there is none (the first span)."""
        with self.lock:
            if self.running is None:
                ensure_visible()
                settings = STATE.settings()
                self.running = Running(settings, self)
                # Process hooks, once a pipeline exists: fork, interpreter exit, multiprocessing
                # children's exit path, uWSGI's post-fork hook, SIGTERM.
                self._hook_fork()
                _fork.at_exit(_at_exit)
                _fork.hook_uwsgi()
                if settings.handle_sigterm:  # the app may have reset SIGTERM since import (a worker)
                    _install_sigterm()
            return self.running

    def after_fork_in_child(self) -> None:
        """A forked child starts with no open trace, no assessment waiting, its own counters (its
        parent's are the parent's to report), new random ids (Python re-seeds only after
        ``os.fork``), and opens its own connections to read. (The record senders restart
        themselves: ``RecordSenders``.)"""
        self.registry.clear()
        self.pending.clear()
        self.read_store = None
        self.counters.reset()
        random.seed()


#: The one runtime of the process.
RUNTIME = Runtime()


def running() -> Running:
    """The running tracer and pipeline (built at the first call)."""
    rt = RUNTIME.running
    return rt if rt is not None else RUNTIME.start()


def register_scope(name: str) -> None:
    """An instrumentor was handed a tracer of this scope: its spans are adopted into our traces."""
    RUNTIME.scopes.add(name)


def span_ended(span: Any) -> None:
    """A span of the lean tracer ended: hand it to the running pipeline's head."""
    rt = RUNTIME.running
    if rt is None:
        rt = RUNTIME.start()
    rt.pipeline.head.on_end(span)


def tracer() -> Any:
    rt = RUNTIME.running
    return rt.tracer if rt is not None else RUNTIME.start().tracer


def flush(timeout_s: Optional[float] = None, wait_unreachable: bool = False) -> bool:
    """Export everything finished so far; True if it all went out before the deadline.
    ``wait_unreachable``: wait for destinations that last refused connections too (an explicit
    deadline from the user)."""
    rt = RUNTIME.running
    if rt is None:
        return True
    return rt.flush(rt.settings.flush_timeout_s if timeout_s is None else timeout_s, wait_unreachable)


def replace(change: Optional[Callable[[], None]] = None) -> None:
    """Apply ``change`` (to ``STATE``) and drop the running pipeline; the next span builds one from
    the settings as they are then. Finished spans are flushed to the old destinations first,
    within the exit deadline."""
    with RUNTIME.lock:
        if change is not None:
            change()
        rt, RUNTIME.running = RUNTIME.running, None
    if rt is not None:
        rt.shutdown(rt.settings.exit_timeout_s)


def capture_all(destinations: Optional[tuple[Any, ...]]) -> Optional[tuple[Any, ...]]:
    """``mlflow_otel.testing``: while set, every span goes to ``destinations`` and nowhere else
    (this pipeline's and any later one's router); returns what was set before."""
    with RUNTIME.lock:
        previous, RUNTIME.capture = RUNTIME.capture, destinations
        rt = RUNTIME.running
        if rt is not None:
            rt.pipeline.router.capture = destinations
    return previous


def reset() -> None:
    """Shut the running pipeline down, forget open traces, read the environment again."""
    replace(STATE.reload)
    RUNTIME.registry.clear()


def _exit_sequence() -> None:
    """End open traces, flush within the exit budgets, report what could not be delivered.

    Runs once per running pipeline: a ``spawn`` child reaches it from multiprocessing's exit path
    and ``atexit``, and a SIGTERM may arrive while it runs (a ``Pool`` is terminated as its workers
    flush). A second caller on another thread waits for the first; SIGTERM on the thread running
    it lets it finish, then the process dies of SIGTERM (``pipeline/exit.py``)."""
    rt = RUNTIME.running
    if rt is None:
        return
    with RUNTIME.lock:
        first = rt.exit_thread is None
        if first:
            rt.exit_thread = threading.current_thread()
    if not first:
        if rt.exit_thread is not threading.current_thread():
            rt.exit_done.wait(_exit_budget() + 1.0)
        return
    try:
        before = RUNTIME.counters.snapshot()
        end_open_traces(RUNTIME.registry)
        cut = rt.shutdown(rt.settings.exit_timeout_s, exiting=True)
        announce(before, RUNTIME.counters.snapshot(), rt.settings.spool_dir, cut)
    finally:
        rt.exit_done.set()
        if rt.sigterm_pending:
            die_of_sigterm()


def _exit_running_here() -> bool:
    """SIGTERM arrived on the thread that runs the exit sequence: it finishes, then re-raises."""
    rt = RUNTIME.running
    if rt is None or rt.exit_thread is not threading.current_thread() or rt.exit_done.is_set():
        return False
    rt.sigterm_pending = True
    return True


def _at_exit() -> None:
    """At interpreter exit (``atexit``)."""
    try:
        _exit_sequence()
    except Exception as exc:  # pragma: no cover - never fail the interpreter's exit
        warn_limited("exit", "Flushing traces at exit failed: %s", exc)


def _exit_budget() -> float:
    rt = RUNTIME.running
    settings = rt.settings if rt is not None else STATE.settings()
    return max(settings.exit_timeout_s, settings.exit_busy_timeout_s)


def _install_sigterm() -> None:
    try:
        install_sigterm(_exit_sequence, lambda: flush(), _exit_budget, _exit_running_here)
    except Exception as exc:  # pragma: no cover - a signal handler is never worth an import failure
        warn_limited("sigterm", "Could not install the SIGTERM handler: %r", exc)


# The one hook installed at import: only the main thread can install a signal handler, and a server
# often starts its first trace on a worker thread. With no pipeline yet the handler lets the process
# die of SIGTERM as before (``pipeline/exit.py``).
if STATE.settings().handle_sigterm:
    _install_sigterm()
RUNNING.tracer, RUNNING.flush, RUNNING.terminate = tracer, flush, replace
RUNNING.registry, RUNNING.scopes, RUNNING.counters = RUNTIME.registry, RUNTIME.scopes, RUNTIME.counters
