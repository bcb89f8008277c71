"""Exit (build.Pipeline.shutdown, pipeline/exit.py): local sinks drained whole, the deadline cutting
remote destinations only, busy ones given the larger budget, and a report whose counts add up.

A real pipeline (processor chain, router, the local file and store) with a fake clock and the
deterministic pool: every wait of the exit sequence lets the pool's threads take one step, and a
remote export costs fake seconds. The same exit under real processes and receivers is in
tests/test_reliability.py and tests/test_drain.py.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from typing import Optional

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from mlflow_otel import _settings
from mlflow_otel._runtime import RUNTIME
from mlflow_otel.destinations import FileDestination
from mlflow_otel.pipeline import build, exit
from mlflow_otel.pipeline.route import Shared
from mlflow_otel.pipeline.workers import ExportPool
from tests.unit.fakes import FakeClock, FakeThread
from tests.unit.stages import Recorder, spans, step

COUNTERS = RUNTIME.counters


class Remote(Recorder):
    """A remote destination (a user's ``SpanExporter``) whose every export takes ``cost_s`` fake
    seconds."""

    def __init__(self, clock: FakeClock, cost_s: float) -> None:
        super().__init__("remote", [])
        self.clock = clock
        self.cost_s = cost_s
        self.exported = 0

    def export(self, batch: Sequence[ReadableSpan]) -> SpanExportResult:
        self.clock.advance(self.cost_s)
        self.exported += len(batch)
        return SpanExportResult.SUCCESS


@pytest.fixture
def pipeline_with(monkeypatch, tmp_path):
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
    monkeypatch.setattr(build, "ExportPool", functools.partial(ExportPool, thread=FakeThread))
    made = []

    def make(remote: Remote, clock: FakeClock) -> build.Pipeline:
        local = FileDestination(str(tmp_path / "traces.jsonl"))
        pipeline = build.Pipeline(
            _settings.load(), destinations=[local, remote], clock=clock, shared=Shared(COUNTERS)
        )
        made.append(pipeline)
        clock.on_wait = lambda c, timeout: step(pipeline.pool)  # the pool's threads take a step
        return pipeline

    yield make
    for pipeline in made:
        pipeline.pool.stop()


def _submit(pipeline: build.Pipeline, traces: int, start: int = 0, to: Optional[tuple] = None) -> None:
    for i in range(start, start + traces):
        pipeline.submit(spans(1, start=i), to)


def _lines(tmp_path) -> int:
    return sum(
        len(json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"])
        for line in open(tmp_path / "traces.jsonl")
    )


def test_the_deadline_cuts_the_remote_destination_and_never_the_local_file(pipeline_with, tmp_path, caplog):
    clock = FakeClock()
    remote = Remote(clock, cost_s=1.0)
    pipeline = pipeline_with(remote, clock)
    before = COUNTERS.snapshot()
    _submit(pipeline, 30)  # to both
    _submit(pipeline, 200, start=30, to=(remote,))  # a backlog for the remote one
    start = clock.now()
    cut = pipeline.shutdown(timeout_s=2.0, exiting=True, busy_timeout_s=6.0)
    after = COUNTERS.snapshot()
    assert _lines(tmp_path) == 30  # the local file: whole, whatever the deadline
    # The remote one exported while the local file drained (the pool serves both) and was cut at
    # the deadline: nothing of its backlog left after that.
    assert 0 < remote.exported < 60 and clock.now() - start < remote.exported / 10 + 1.0
    lost = 230 - remote.exported
    assert cut == {pipeline.router.stages()[1].name: lost}
    assert exit.dropped_since(before, after) == {"shutdown": lost}
    assert after["spans_delivered"] - before.get("spans_delivered", 0) == 30 + remote.exported
    with caplog.at_level(logging.WARNING, logger="mlflow_otel"):
        exit.announce(before, after, None, cut)
    assert (
        f"At exit, {lost} spans were not delivered (shutdown: {lost}); {lost} left queued for" in caplog.text
    )


def test_the_report_names_every_reason_and_its_count(caplog):
    before = {"dropped.queue_full": 5, "spans_spooled": 0}
    after = {
        "dropped.queue_full": 9,
        "dropped.destination_unavailable": 20,
        "spans_spooled": 7,
        "mlflow_records_failed": 2,
    }
    assert exit.dropped_since(before, after) == {"queue_full": 4, "destination_unavailable": 20}
    with caplog.at_level(logging.INFO, logger="mlflow_otel"):
        exit.announce(before, after, "/spool", {"collector": 20})
    assert "At exit, 24 spans were not delivered (destination_unavailable: 20, queue_full: 4)" in caplog.text
    assert "20 left queued for collector" in caplog.text and "7 spans spooled to /spool" in caplog.text
    assert "At exit, 2 MLflow trace records were not sent" in caplog.text
