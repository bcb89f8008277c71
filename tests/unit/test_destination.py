"""One destination's shape (pipeline/export.py): the exporter a route builds plus the pipeline's
options (lazy build, borrowed), with the exit path's capabilities asked of the built exporter itself
(no wrapper forwards them); an OTLP destination's own conventions are its exporter's, written as it
encodes."""

from __future__ import annotations

from typing import Optional

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext

from mlflow_otel._runtime import RUNTIME
from mlflow_otel._settings import OtlpSettings
from mlflow_otel.exporters.base import busy, close_idle
from mlflow_otel.exporters.otlp import OtlpExporter, _Outcome
from mlflow_otel.pipeline.export import DestinationExporter
from mlflow_otel.processors.normalization.outward import Conventions
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


class _Sending(OtlpExporter):
    """An OTLP exporter whose transport keeps what it is sent and answers OK."""

    def __init__(self, spool: object, conventions: Conventions) -> None:
        super().__init__(
            OtlpSettings("http/protobuf", "http://unit.invalid/v1/traces"), 1 << 20, 30.0,
            spool=spool, counters=COUNTERS, conventions=conventions,  # type: ignore[arg-type]
        )  # fmt: skip
        self.sent: list[bytes] = []

    def _send(self, payload: bytes, timeout_s: float) -> _Outcome:
        self.sent.append(payload)
        return _Outcome(_Outcome.OK)


class _Spool:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def write(self, body: bytes, spans: int) -> bool:
        self.bodies.append(body)
        return True

    def due(self) -> bool:
        return False


def test_a_destination_s_conventions_go_into_what_it_sends_and_what_it_spools_alike():
    spool = _Spool()
    batch = [
        ReadableSpan("step", SpanContext(5, 7 + i, False), attributes={"mlflow.spanType": "TOOL"})
        for i in range(2)
    ]
    exporter = _Sending(spool, Conventions(frozenset({"openinference"}), keep_mlflow=True))
    destination = DestinationExporter(lambda: exporter, "Phoenix", counters=COUNTERS)
    destination.export(batch)
    assert destination.salvage(batch) == 2
    assert exporter.sent == spool.bodies
    (sent,) = exporter.sent
    request = ExportTraceServiceRequest.FromString(sent)
    span, _ = [
        span for group in request.resource_spans for scoped in group.scope_spans for span in scoped.spans
    ]
    assert {kv.key: kv.value.string_value for kv in span.attributes} == {
        "mlflow.spanType": "TOOL", "openinference.span.kind": "TOOL", "tool.name": "step",
    }  # fmt: skip
    assert dict(batch[0].attributes) == {"mlflow.spanType": "TOOL"}  # the span itself is unchanged


def test_close_idle_is_asked_of_the_built_exporter():
    exporter = ExitAwareRecorder()
    destination = DestinationExporter(lambda: exporter, "Phoenix", counters=COUNTERS)
    close_idle(destination)
    assert exporter.closed_idle == 1
