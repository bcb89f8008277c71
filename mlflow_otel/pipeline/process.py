"""The process stage: the processor chain, run once per span, before the spans fan out.

It sits between assembly and routing, behind its own bounded queue (a ``BatchProcessor`` with one
worker), so it runs off the application's thread and exactly once per span whatever the number of
destinations. For each finished trace, in order:

    user hooks -> content switch -> redaction -> trimming -> user hooks after BUILTINS (per span)
      -> tail sampling (pipeline/tail.py): the trace is kept or dropped whole
      -> the user's OpenTelemetry SpanProcessor.on_end (sees the span as it will be exported)
      -> route: the spans go to each of their destinations' batch queues

Each processor is isolated: one that raises is counted (``processor_errors``) and logged once, its
changes to the span are rolled back, and the span goes on. ``DropSpan`` drops it, counted as
``dropped.by_processor``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel._log import warn_limited
from mlflow_otel._telemetry import Counters
from mlflow_otel.pipeline.tail import TailSampler
from mlflow_otel.processors.base import DropSpan, Processor, SpanView

if TYPE_CHECKING:
    from mlflow_otel.pipeline.route import Router


class Routed:
    """A trace with destinations of its own (``trace_destination=``, a context-local destination):
    the rare case travels wrapped, the common one as the bare list of spans."""

    __slots__ = ("destinations", "spans")

    def __init__(self, spans: Sequence[ReadableSpan], destinations: tuple[Any, ...]) -> None:
        self.spans = spans
        self.destinations = destinations

    def __len__(self) -> int:
        return len(self.spans)


class Chain:
    """What the stage runs: the hooks and built-ins in order, the tail-sampling decision (if
    configured), then OTel processors' ``on_end``."""

    __slots__ = ("end_processors", "processors", "screens", "tail")

    def __init__(
        self,
        processors: Sequence[Processor],
        end_processors: Sequence[Any] = (),
        tail: Optional[TailSampler] = None,
    ) -> None:
        self.processors = tuple(processors)
        #: Processors with a trace-level screen (``processors/base.py``): asked once per trace.
        self.screens = tuple(p for p in self.processors if callable(getattr(p, "screen", None)))
        self.end_processors = tuple(end_processors)
        self.tail = tail


def _name(processor: Any) -> str:
    return getattr(processor, "__qualname__", None) or type(processor).__name__


def _screened(spans: Sequence[ReadableSpan], screens: Sequence[Any]) -> tuple[Any, ...]:
    """The processors whose screen says they would change none of ``spans`` (one trace)."""
    out = []
    for processor in screens:
        try:
            if processor.screen(spans):
                out.append(processor)
        except Exception:  # a screen is an optimisation: when it fails, the processor runs
            pass
    return tuple(out)


def run_chain(
    span: ReadableSpan,
    processors: Sequence[Processor],
    screened: tuple[Any, ...] = (),
    counters: Optional[Counters] = None,
) -> Optional[ReadableSpan]:
    """Run ``span`` through ``processors``; None if one dropped it. A processor in ``screened`` is
    skipped while the span is still as it ended (its screen looked at that span). Drops and
    processor errors are counted in ``counters`` (the process stage's; a chain run alone, in a
    test, counts nowhere)."""
    if screened and len(screened) == len(processors):
        return span  # every processor screened the trace out: nothing would change
    view = SpanView(span)
    for processor in processors:
        if screened and processor in screened and not view.changed:
            continue
        state = view.checkpoint()
        try:
            processor(view)
        except DropSpan:
            if counters is not None:
                counters.add("dropped.by_processor")
            return None
        except Exception as exc:
            view.restore(state)
            name = _name(processor)
            if counters is not None:
                counters.add("processor_errors")
            warn_limited(
                f"processor:{name}",
                "Span processor %s raised %r; the span is exported without its changes.",
                name,
                exc,
            )
    return view.result()


def _run_on_end(processors: Sequence[Any], span: ReadableSpan, counters: Counters) -> None:
    for processor in processors:
        try:
            processor.on_end(span)
        except Exception as exc:
            name = type(processor).__name__
            counters.add("processor_errors")
            warn_limited(f"on_end:{name}", "Span processor %s raised in on_end: %r", name, exc)


class ProcessStage(SpanExporter):
    """The exporter of the process stage's queue: runs the chain, then routes.

    The queue holds whole traces (``pipeline/batch.py``, ``on_end_trace``): a list of spans for the
    default destinations, a :class:`Routed` trace, or a lone span (one that ended after its local
    root, or another instrumentation's outside any open trace of ours). So the tail-sampling
    decision sees each trace whole.
    ``chain`` is asked for the chain in force before every batch (``tracing.configure`` may change
    it at any time; the answer is cached until it does).
    """

    def __init__(
        self, chain: Callable[[], Chain], router: Router, max_batch: int, counters: Counters
    ) -> None:
        self._chain = chain
        self._counters = counters
        self._router = router
        self._max_batch = max_batch

    def export(self, items: Sequence[Any]) -> SpanExportResult:
        chain = self._chain()
        processed: list[ReadableSpan] = []
        for item in items:
            kind = item.__class__
            if kind is Routed:
                spans = self._process(item.spans, chain)
                if spans:
                    self._flush_default(processed)
                    processed = []
                    self._router.route(spans, item.destinations)
                continue
            processed.extend(self._process(item if kind is list or kind is tuple else (item,), chain))
        self._flush_default(processed)
        if len(items) < self._max_batch:
            # A partial batch: this stage ran on its schedule or for a flush, so the destinations
            # should not wait for a full batch or their own schedule either.
            self._router.export_soon()
        return SpanExportResult.SUCCESS

    def _flush_default(self, spans: list[ReadableSpan]) -> None:
        if spans:
            self._router.route(spans, None)

    def _process(self, spans: Sequence[ReadableSpan], chain: Chain) -> Sequence[ReadableSpan]:
        """One trace: the chain on each span, then the tail decision on what is left of the trace,
        then OTel ``on_end`` (which so sees only spans that will be exported)."""
        processors = chain.processors
        out: Sequence[ReadableSpan] = spans
        if processors:
            screened = _screened(spans, chain.screens) if chain.screens else ()
            if len(screened) != len(processors):  # else every processor screened the trace out
                counters = self._counters
                out = [
                    r for r in (run_chain(s, processors, screened, counters) for s in spans) if r is not None
                ]
        if chain.tail is not None:
            out = chain.tail.filter(out, self._counters)
        if chain.end_processors:
            for span in out:
                _run_on_end(chain.end_processors, span, self._counters)
        return out

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
