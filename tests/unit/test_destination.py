"""One destination's shape (pipeline/export.py): the exporter a route builds plus the pipeline's
options (lazy build, borrowed, conventions), with the exit path's capabilities asked of the built
exporter itself (no wrapper forwards them)."""

from __future__ import annotations

from typing import Optional

from opentelemetry.sdk.trace.export import SpanExportResult

from mlflow_otel._runtime import RUNTIME
from mlflow_otel.exporters.base import busy, close_idle
from mlflow_otel.pipeline.export import Conventions, DestinationExporter
from tests.unit.stages import Recorder, Salvager, spans

COUNTERS = RUNTIME.counters


class ExitAwareRecorder(Salvager):
    def __init__(self) -> None:
        super().__init__("d", [])
        self.exit_deadline: Optional[float] = None
        self.flushed = 0

    def begin_exit(self, deadline: Optional[float] = None) -> None:
        self.exit_deadline = deadline

    def busy(self) -> bool:
        return True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flushed += 1
        return True


def test_a_lazy_destination_builds_at_the_first_export_and_tries_again_after_a_failure():
    built: list[ExitAwareRecorder] = []
    answers: list[Exception] = [RuntimeError("experiment lookup failed")]

    def build() -> ExitAwareRecorder:
        if answers:
            raise answers.pop()
        built.append(ExitAwareRecorder())
        return built[-1]

    destination = DestinationExporter(build, "an MLflow server", lazy=True, counters=COUNTERS)
    assert destination.exporter is None and not busy(destination)
    destination.begin_exit(12.5)  # before the build: the exporter hears of it once built
    assert destination.export(spans(3)) is SpanExportResult.FAILURE
    assert COUNTERS.get("dropped.destination_unavailable") == 3
    assert destination.export(spans(2)) is SpanExportResult.SUCCESS
    (exporter,) = built
    assert exporter.log == [("d", 2)] and exporter.exit_deadline == 12.5
    assert busy(destination)  # asked of the built exporter, directly


def test_an_eager_destination_that_cannot_be_built_says_so_at_once():
    def build() -> Recorder:
        raise ValueError("bad endpoint")

    try:
        DestinationExporter(build, "OTLP", counters=COUNTERS)
    except ValueError:
        return
    raise AssertionError("the pipeline falls back to the local file on this error: it must surface")


def test_a_borrowed_exporter_is_flushed_when_the_pipeline_is_replaced_and_shut_down_only_at_exit():
    user = ExitAwareRecorder()
    replaced = DestinationExporter(lambda: user, "user's", borrowed=True, counters=COUNTERS)
    replaced.shutdown()
    assert user.flushed == 1 and not user.shut_down
    exiting = DestinationExporter(lambda: user, "user's", borrowed=True, counters=COUNTERS)
    exiting.begin_exit(1.0)
    # A user's methods that happen to share our capabilities' names are not ours to call.
    assert user.exit_deadline is None and not busy(exiting) and exiting.salvage(spans(1)) == 0
    close_idle(exiting)
    assert user.closed_idle == 0
    exiting.shutdown()
    assert user.shut_down


def test_conventions_apply_to_exported_and_salvaged_spans_alike():
    exporter = ExitAwareRecorder()
    seen: list[object] = []

    class Marking(Conventions):
        def apply(self, batch, destination, counters):  # type: ignore[no-untyped-def]
            seen.append(destination)
            return list(batch)[:1]

    destination = DestinationExporter(
        lambda: exporter, "Phoenix", conventions=Marking(frozenset(), False), counters=COUNTERS
    )
    destination.export(spans(2))
    assert destination.salvage(spans(2)) == 1
    assert exporter.log == [("d", 1)] and len(exporter.salvaged) == 1 and seen == ["Phoenix", "Phoenix"]
    close_idle(destination)
    assert exporter.closed_idle == 1
