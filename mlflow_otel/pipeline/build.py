"""The one place the pipeline is declared: its stages, in the order data flows.

    app thread    span ends -> assembly (TraceAssembler: holds a trace until its local root ends)
    process       one queue of whole traces, one worker: the processor chain once per span (hooks,
                  content switch, redaction, trimming), tail sampling per trace, OTel on_end
                  processors, then route
    batch         one bounded queue per destination; export threads shared by all (workers.py)
    export        the destination's exporter (OTLP HTTP/gRPC, MLflow server, local file, any
                  OpenTelemetry SpanExporter)

docs/architecture.md draws the same picture with the threads and extension points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter

from mlflow_otel._clock import REAL_CLOCK, Clock
from mlflow_otel._log import logger, warn_limited
from mlflow_otel._settings import ProcessorSettings, Settings
from mlflow_otel._state import BUILTINS, STATE, is_otel_processor
from mlflow_otel._telemetry import Counters
from mlflow_otel.exporters.base import busy
from mlflow_otel.exporters.otlp import ExporterUnavailable
from mlflow_otel.pipeline.assembly import TraceAssembler
from mlflow_otel.pipeline.batch import BatchProcessor
from mlflow_otel.pipeline.export import DestinationExporter
from mlflow_otel.pipeline.process import Chain, ProcessStage, Routed
from mlflow_otel.pipeline.route import Route, Router, Shared, file_route
from mlflow_otel.pipeline.tail import TailSampler, load_tail_sampler
from mlflow_otel.pipeline.workers import ExportPool
from mlflow_otel.processors import Processor
from mlflow_otel.processors.content import ContentFilter
from mlflow_otel.processors.normalization import Normalizer
from mlflow_otel.processors.redaction import DefaultRedactor, Redactor, load_policy
from mlflow_otel.processors.trimming import Trimmer
from mlflow_otel.spans.registry import Registry


# --- the process stage's chain -------------------------------------------------------------------
def _nothing() -> None:
    return None


def builtin_processors(
    settings: ProcessorSettings, overrides: dict[str, Any], on_policy_failure: Callable[[], None] = _nothing
) -> tuple[Processor, ...]:
    """The built-in processors, in their stated order: normalization (third-party GenAI conventions
    to MLflow's span model and back, ``processors/normalization/``) -> content switch -> redaction
    -> trimming.

    Built from settings (``MLFLOW_OTEL_*``) with ``tracing.configure(...)`` arguments on top. A
    configured policy that cannot be loaded (missing file, invalid YAML or JSON, an unknown key, an
    invalid regular expression) fails closed: content capture goes off for every span (inputs,
    outputs, messages and stream chunks dropped; names, types, timings and usage kept) and one
    ERROR line says why. What the policy was meant to mask is never exported.
    """
    capture = overrides.get("capture_content", settings.capture_content)
    source = overrides.get("redaction", settings.redaction_config)
    policy_processor: Optional[Processor] = None
    try:
        policy = load_policy(source)
        if policy is not None:
            policy_processor = Redactor(policy)
    except Exception as exc:
        logger.error(
            "Redaction policy %r could not be loaded (%s): content capture is OFF for every span "
            "(inputs, outputs, messages and stream chunks are dropped) until the policy is fixed.",
            source,
            _one_line(exc),
        )
        capture = False
        on_policy_failure()  # the runtime's: the span builders stop encoding payloads too
    processors: list[Processor] = [Normalizer()]
    if not capture:
        processors.append(ContentFilter())
    if overrides.get("redaction_defaults", settings.redaction_defaults):
        processors.append(DefaultRedactor())
    if policy_processor is not None:
        processors.append(policy_processor)
    processors.append(
        Trimmer(
            overrides.get("max_attribute_bytes", settings.max_attribute_bytes),
            overrides.get("max_span_bytes", settings.max_span_bytes),
        )
    )
    return tuple(processors)


def tail_sampler(settings: ProcessorSettings, overrides: dict[str, Any]) -> Optional[TailSampler]:
    """The tail sampler from ``configure(tail_sampling=...)``, else ``MLFLOW_OTEL_TAIL_SAMPLING_CONFIG``;
    one that cannot be loaded is one ERROR line and no tail sampling (every trace is kept)."""
    source = overrides.get("tail_sampling", settings.tail_sampling_config)
    try:
        return load_tail_sampler(source)
    except Exception as exc:
        logger.error(
            "Tail-sampling configuration %r could not be loaded (%s): every trace is kept.", source, exc
        )
        return None


def _one_line(exc: BaseException) -> str:
    """An error as one log line (a YAML parser's message spans several)."""
    return " ".join(str(exc).split())


def build_chain(settings: ProcessorSettings, on_policy_failure: Callable[[], None] = _nothing) -> Chain:
    """The chain in force: the user's hooks around the built-ins, then OTel processors' on_end."""
    hooks = [h for h in STATE.hooks if not is_otel_processor(h)]
    if BUILTINS in hooks:
        i = hooks.index(BUILTINS)
        before, after = hooks[:i], [h for h in hooks[i + 1 :] if h is not BUILTINS]
    else:
        before, after = hooks, []
    try:
        builtins = builtin_processors(settings, STATE.builtin_options, on_policy_failure)
    except Exception as exc:  # pragma: no cover - defensive: fail closed all the same
        logger.error("Built-in span processors unavailable (%r): content capture is OFF.", exc)
        builtins = (ContentFilter(),)
    return Chain(
        (*before, *builtins, *after), STATE.end_processors, tail_sampler(settings, STATE.builtin_options)
    )


class _ChainInForce:
    """Asked by the process stage before every batch; rebuilds only after ``tracing.configure``."""

    def __init__(self, settings: ProcessorSettings, on_policy_failure: Callable[[], None]) -> None:
        self._settings = settings
        self._on_policy_failure = on_policy_failure
        self._version = -1
        self._chain = Chain(())

    def __call__(self) -> Chain:
        version = STATE.chain_version
        if version != self._version:
            self._chain = build_chain(self._settings, self._on_policy_failure)
            self._version = version
        return self._chain


# --- the pipeline --------------------------------------------------------------------------------
class Pipeline:
    """assembly -> process -> route -> batch (per destination) -> export."""

    def __init__(
        self,
        settings: Settings,
        destinations: Optional[Sequence[Any]] = None,
        extra: Sequence[Any] = (),
        clock: Clock = REAL_CLOCK,
        on_policy_failure: Callable[[], None] = _nothing,
        registry: Optional[Registry] = None,
        shared: Optional[Shared] = None,
    ) -> None:
        """``on_policy_failure``: called (on the process worker) when a configured redaction policy
        cannot be loaded; the chain fails closed by itself, the runtime turns capture off on the
        request path too (``_state.State.fail_closed``). ``registry``: the open traces whose spans
        end here (the runtime's; a pipeline that is handed finished spans only has its own).
        ``shared``: what the runtime hands every stage and destination (``route.Shared``); without
        it the pipeline counts into counters of its own (``counters``)."""
        self._shared = shared if shared is not None else Shared(Counters())
        self.counters = self._shared.counters
        self.settings = settings
        #: Read for the flush and exit deadlines, the pool's schedule and the destination stages
        #: (a fake one in the unit tier, ``tests/unit/``).
        self._clock = clock
        #: Export threads shared by every destination (``workers.py``): bounded however many
        #: destinations traces are routed to.
        self.pool = ExportPool(max(4, 2 * settings.max_workers), settings.schedule_delay_s, clock=clock)
        self.router = Router(settings, self._batch_stage, destinations, extra)
        # The process stage's queue holds whole traces (on_end_trace), bounded by count of traces.
        self.process = BatchProcessor(
            ProcessStage(
                _ChainInForce(settings.processors, on_policy_failure),
                self.router,
                settings.max_export_batch_size,
                self.counters,
            ),
            max_queue_size=settings.max_queue_size,
            max_export_batch_size=settings.max_export_batch_size,
            schedule_delay_s=settings.schedule_delay_s,
            max_workers=1,
            name="the processor chain",
            count_exports=False,
            counters=self.counters,
        )
        self.head = TraceAssembler(
            self.submit,
            registry if registry is not None else Registry(self.counters),
            None if settings.async_logging else self._wait_for_export,
        )

    def submit(self, spans: Sequence[ReadableSpan], destinations: Optional[tuple[Any, ...]]) -> None:
        """From assembly (app thread): a finished trace, whole, into the process stage's queue as
        one item (the tail decision needs it whole)."""
        self.process.on_end_trace(spans if destinations is None else Routed(spans, destinations))

    def _wait_for_export(self) -> None:
        """MLflow's blocking mode (``MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=false``): the call that ended
        a trace's root returns once the trace is exported (or the flush deadline passes)."""
        self.flush(self.settings.flush_timeout_s)

    def _batch_stage(self, route: Route) -> BatchProcessor:
        """A destination's batch stage and exporter, built the first time a span goes there."""
        stage: list[BatchProcessor] = []

        def reachability(reachable: bool) -> None:
            if stage:
                stage[0].set_reachable(reachable)

        try:
            exporter = self._destination(route, reachability)
        except ExporterUnavailable as exc:
            fallback = file_route(self.settings.traces_file)
            logger.warning("%s; traces go to %s instead.", exc, fallback.description)
            exporter, route = self._destination(fallback, reachability), fallback
        stage.append(
            BatchProcessor(
                exporter,
                max_queue_size=self.settings.max_queue_size,
                max_export_batch_size=self.settings.max_export_batch_size,
                schedule_delay_s=self.settings.schedule_delay_s,
                max_workers=self.settings.max_workers,
                name=route.description,
                exporter_accounts=route.accounts,
                pool=self.pool,
                local=route.local,
                clock=self._clock,
                counters=self.counters,
            )
        )
        return stage[0]

    def _destination(self, route: Route, listener: Callable[[bool], None]) -> DestinationExporter:
        return DestinationExporter(
            lambda: route.build(listener, self._shared),
            route.description,
            lazy=route.lazy,
            borrowed=route.borrowed,
            counters=self.counters,
        )

    # --- introspection -----------------------------------------------------------------------------
    @property
    def destinations(self) -> list[str]:
        """Descriptions of the default destinations (logs, the stats file, the CLI)."""
        return [stage.name for stage in self.router.defaults]

    @property
    def records_locally(self) -> bool:
        """A default destination is a sink on this machine (the local file and store)."""
        return any(stage.local for stage in self.router.defaults)

    def exporters(self) -> list[SpanExporter]:
        """Each destination's own exporter, without the pipeline's wrappers."""
        built = (stage.exporter.exporter for stage in self.router.stages())
        return [exporter for exporter in built if exporter is not None]

    # --- control -----------------------------------------------------------------------------------
    def flush(self, timeout_s: float, wait_unreachable: bool = False) -> bool:
        """Every span finished before the call is exported (or dropped and counted) by the deadline:
        the process stage first (it feeds the others), then each destination, then the user's OTel
        processors. ``wait_unreachable``: the caller chose this deadline, so a destination that last
        refused connections is waited for too (a restarted collector is back within it)."""
        deadline = self._clock.now() + timeout_s

        def remaining_ms() -> int:
            return _ms_until(deadline, self._clock)

        ok = self.process.force_flush(remaining_ms())
        for stage in self.router.stages():
            # A destination that refuses connections is not waited for: its spans cannot leave by
            # the deadline (retries, the spool and the exit path deal with them).
            waited = stage.reachable or wait_unreachable
            budget = remaining_ms() if waited else min(remaining_ms(), 200)
            ok = stage.force_flush(budget) and ok
        for processor in STATE.end_processors:
            try:
                # Older SDKs' SpanProcessor.force_flush returns None: only False means it failed.
                ok = processor.force_flush(remaining_ms()) is not False and ok
            except Exception as exc:
                warn_limited("processor_flush", "Span processor %r failed to flush: %r", processor, exc)
        return ok

    def _opened_since(self, stages: list[Any]) -> list[Any]:
        """Destination stages the chain opened since ``stages`` was read (``set_destination`` per
        request routes a trace to a destination first seen on the process worker)."""
        return [stage for stage in self.router.stages() if stage not in stages]

    def shutdown(
        self, timeout_s: float, exiting: bool = False, busy_timeout_s: float = 0.0
    ) -> dict[str, int]:
        """Flush within ``timeout_s``, then stop every stage; returns the spans cut per destination.

        ``exiting``: the interpreter is going away. Local work is finished whole, whatever the
        deadline: the processor chain and the local sinks (the file and store) are drained for as
        long as they make progress, since their pace is this machine's and a user expects to find
        every trace of a job in the local file. The deadline bounds only remote destinations:
        exporters stop retrying refused connections (user exporters are shut down too), and a
        destination that answers but is busy (``ExitAware.busy``: 429/503 with ``Retry-After``, a
        slow answer) may use up to ``busy_timeout_s`` in all; one that refuses connections, none of it."""
        self.head.active = False
        clock = self._clock
        start = clock.now()
        deadline = start + timeout_s
        busy_deadline = start + max(timeout_s, busy_timeout_s)
        stages = self.router.stages()
        if exiting:
            # Exporters end their retries a little before the last deadline, so what they give up
            # is spooled or counted before the interpreter goes.
            exporter_deadline = max(deadline, busy_deadline - EXIT_MARGIN_S)
            stall_ms = int(max(timeout_s, EXIT_STALL_S) * 1000)
            _begin_exit(stages, exporter_deadline)
            self.process.drain(stall_ms)
            # Draining the chain may have opened destinations: they hear of the exit too.
            opened = self._opened_since(stages)
            _begin_exit(opened, exporter_deadline)
            stages += opened
            for stage in stages:
                if stage.local:
                    stage.drain(stall_ms)
        self.flush(max(0.0, deadline - clock.now()))
        self.process.shutdown(_ms_until(deadline, clock))
        # The chain's last spans may have opened destinations (a replaced pipeline, not only at
        # exit): they are stopped too, or their retries would outlive the pipeline.
        stages += self._opened_since(stages)
        for stage in stages:
            until = deadline
            if exiting and not stage.force_flush(0) and busy(stage.exporter):
                until = busy_deadline
                stage.force_flush(_ms_until(busy_deadline, clock))
            stage.shutdown(_ms_until(until, clock))
        self.pool.stop()
        if exiting:
            for processor in STATE.end_processors:
                try:
                    processor.shutdown()
                except Exception as exc:
                    warn_limited(
                        "processor_shutdown", "Span processor %r failed to shut down: %r", processor, exc
                    )
        return {stage.name: stage.cut_at_shutdown for stage in stages if stage.cut_at_shutdown}


#: At exit, exporters stop retrying this long before the last deadline (spool writes, counting).
EXIT_MARGIN_S = 0.3
#: At exit, local work (the chain, the local sinks) is given up after this long without progress.
EXIT_STALL_S = 2.0


def _ms_until(deadline: float, clock: Clock) -> int:
    return int(max(0.0, deadline - clock.now()) * 1000)


def _begin_exit(stages: Sequence[BatchProcessor], deadline: float) -> None:
    for stage in stages:
        stage.exporter.begin_exit(deadline)
