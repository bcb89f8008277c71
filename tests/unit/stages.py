"""Destination stages on a deterministic export pool: real ``BatchProcessor`` and ``ExportPool``
code, a fake clock, threads that never start; the test runs the pool's threads' steps itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext

from mlflow_otel._runtime import RUNTIME
from mlflow_otel.pipeline.batch import BatchProcessor
from mlflow_otel.pipeline.workers import ExportPool
from tests.unit.fakes import FakeClock, FakeThread

_RESOURCE = Resource.create({"service.name": "unit"})


def spans(n: int, start: int = 0) -> list[ReadableSpan]:
    return [
        ReadableSpan(
            name=f"s{i}",
            context=SpanContext(trace_id=1 + i, span_id=1 + i, is_remote=False),
            resource=_RESOURCE,
            start_time=1,
            end_time=2,
        )
        for i in range(start, start + n)
    ]


class Recorder(SpanExporter):
    """Records each export into a shared log as (destination, batch size)."""

    def __init__(self, name: str, log: list[tuple[str, int]]) -> None:
        self.name = name
        self.log = log
        self.closed_idle = 0
        self.salvaged: list[ReadableSpan] = []
        self.shut_down = False

    def export(self, batch: Sequence[ReadableSpan]) -> SpanExportResult:
        self.log.append((self.name, len(batch)))
        return SpanExportResult.SUCCESS

    def close_idle(self) -> None:
        self.closed_idle += 1

    def shutdown(self) -> None:
        self.shut_down = True


class Salvager(Recorder):
    """A destination with a spool: what shutdown cannot export is handed over, not dropped."""

    def salvage(self, batch: Sequence[ReadableSpan]) -> int:
        self.salvaged.extend(batch)
        return len(batch)


def pool(clock: FakeClock, max_threads: int = 4, delay_s: float = 5.0) -> ExportPool:
    return ExportPool(max_threads, delay_s, clock=clock, thread=FakeThread)


def stage(
    pool_: ExportPool,
    clock: FakeClock,
    exporter: SpanExporter,
    queue: int = 64,
    batch: int = 4,
    workers: int = 1,
    name: Optional[str] = None,
) -> BatchProcessor:
    return BatchProcessor(
        exporter,
        max_queue_size=queue,
        max_export_batch_size=batch,
        schedule_delay_s=pool_._delay_s,
        max_workers=workers,
        name=name or getattr(exporter, "name", "dest"),
        exporter_accounts=False,
        pool=pool_,
        clock=clock,
        counters=RUNTIME.counters,
    )


def step(pool_: ExportPool) -> bool:
    """What one free pool thread does once (``ExportPool._serve`` minus the waiting): a scheduling
    decision at the fake clock's time, then the export or the idle closes. False: nothing to do."""
    with pool_._cond:
        taken, release = pool_._pick(pool_._clock.now())
    for idle in release:
        idle.close_idle()
    if taken is None:
        return bool(release)
    try:
        taken.export_next()
    finally:
        with pool_._cond:
            pool_._release(taken)
    return True


def run(pool_: ExportPool, limit: int = 1000) -> int:
    """Steps until the pool has nothing to do now; returns how many."""
    for done in range(limit):
        if not step(pool_):
            return done
    raise AssertionError("the pool never ran out of work")
