"""The retry policy (exporters/retry.py) and the loops of the senders that use it, on a fake clock.

The transports are scripted (``_send`` / ``RestClient.call`` answer from a list): no sockets, no
real time. What a real receiver answers (429 with Retry-After, 503, refused connections) is covered
end to end in tests/test_export.py and tests/test_reliability.py.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone
from email.utils import format_datetime

import grpc
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext

from mlflow_otel._mlflow_server import MlflowServerError
from mlflow_otel._runtime import RUNTIME
from mlflow_otel._settings import OtlpSettings
from mlflow_otel.exporters import retry
from mlflow_otel.exporters.mlflow_merge import FragmentMerger, _Job
from mlflow_otel.exporters.mlflow_record import MlflowRecordExporter, record_body
from mlflow_otel.exporters.otlp import OtlpExporter, _Outcome
from mlflow_otel.exporters.retry import RetryPolicy, backoff, parse_retry_after
from mlflow_otel.records.model import TraceInfo, TraceState
from tests.unit.fakes import FakeClock

COUNTERS = RUNTIME.counters


# --- the policy --------------------------------------------------------------------------------------
def test_backoff_doubles_from_half_a_second_to_the_cap_with_equal_jitter():
    low = [backoff(n, rng=lambda: 0.0) for n in range(8)]
    high = [backoff(n, rng=lambda: 1.0) for n in range(8)]
    assert low == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert high == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert backoff(10_000, rng=lambda: 1.0) == retry.MAX_BACKOFF_S  # no overflow on a long outage


def test_jitter_spreads_over_the_upper_half_of_the_curve_only():
    rng = random.Random(7).random
    for attempt in range(7):
        ceiling = min(retry.MAX_BACKOFF_S, retry.INITIAL_BACKOFF_S * 2**attempt)
        draws = [backoff(attempt, rng) for _ in range(2000)]
        assert ceiling / 2 <= min(draws) < 0.55 * ceiling
        assert 0.95 * ceiling < max(draws) <= ceiling


def test_the_budget_ends_retries_before_a_wait_that_would_pass_it():
    clock = FakeClock()
    retries = RetryPolicy(10.0, clock, rng=lambda: 0.0).start()
    waits = []
    while (wait := retries.next_wait()) is not None:
        waits.append(wait)
        clock.advance(wait)
    assert waits == [0.25, 0.5, 1.0, 2.0, 4.0]  # the next one (5 s) would end at 12.75 s > 10 s
    assert retries.attempts == 6
    assert clock.now() - (retries.deadline - 10.0) == sum(waits) <= 10.0


def test_a_server_hint_replaces_the_backoff_and_is_capped_by_the_budget():
    clock = FakeClock()
    retries = RetryPolicy(30.0, clock, rng=lambda: 0.0).start()
    assert retries.next_wait(hint=7.0) == 7.0  # never sooner than the server asked
    assert retries.next_wait(hint=0.0) == 0.0
    assert retries.next_wait(hint=-3.0) == 0.0
    assert retries.next_wait(hint=31.0) is None  # past the budget: give up now, not sleep to it
    exit_deadline = clock.now() + 1.0
    assert retries.next_wait(hint=2.0, exit_deadline=exit_deadline) is None
    assert retries.next_wait(hint=0.5, exit_deadline=exit_deadline) == 0.5
    assert retries.remaining(exit_deadline) == 1.0


def test_retry_after_in_seconds_or_as_an_http_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert parse_retry_after(format_datetime(when, usegmt=True), wall=lambda: when.timestamp() - 12) == 12.0
    assert parse_retry_after(format_datetime(when, usegmt=True), wall=lambda: when.timestamp() + 60) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None and parse_retry_after(None) is None


def test_the_retryable_tables_are_the_spec_and_mlflow_ones():
    assert {429, 502, 503, 504} == retry.OTLP_HTTP
    assert not retry.OTLP_HTTP & {400, 401, 403, 404, 408, 413, 500, 501}
    assert {408, 429, 500, 502, 503, 504} == retry.MLFLOW_REST
    names = {code.name for code in grpc.StatusCode}
    assert names >= retry.OTLP_GRPC
    retryable = {name for name in names if retry.grpc_retryable(name, retry_info=False)}
    assert retryable == {
        "CANCELLED",
        "DEADLINE_EXCEEDED",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNAVAILABLE",
        "DATA_LOSS",
    }
    assert retry.grpc_retryable("RESOURCE_EXHAUSTED", retry_info=True)
    assert not retry.grpc_retryable("INVALID_ARGUMENT", retry_info=True)


# --- the OTLP loop -----------------------------------------------------------------------------------
def _spans(n: int) -> list[ReadableSpan]:
    resource = Resource.create({"service.name": "unit"})
    return [
        ReadableSpan(
            name=f"s{i}",
            context=SpanContext(trace_id=1 + i, span_id=1 + i, is_remote=False),
            resource=resource,
            start_time=1,
            end_time=2,
        )
        for i in range(n)
    ]


class Scripted(OtlpExporter):
    """An OTLP exporter whose transport answers from a script; each send records its timeout."""

    def __init__(self, answers: list[_Outcome], clock: FakeClock, retry_timeout_s: float = 30.0) -> None:
        super().__init__(
            OtlpSettings("http/protobuf", "http://unit.invalid/v1/traces"),
            1 << 20,
            retry_timeout_s,
            clock=clock,
            counters=COUNTERS,
        )
        self.answers = answers
        self.sent_at: list[float] = []
        self.clock = clock

    def _send(self, payload: bytes, timeout_s: float) -> _Outcome:
        self.sent_at.append(self.clock.now())
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def retry_(delay=None, unreachable=False) -> _Outcome:
    return _Outcome(_Outcome.RETRY, delay=delay, why="HTTP 503", unreachable=unreachable)


def test_otlp_retries_a_retryable_answer_with_the_backoff_then_delivers():
    clock = FakeClock()
    exporter = Scripted([retry_(), retry_(), _Outcome(_Outcome.OK)], clock)
    assert exporter.export(_spans(3)) is SpanExportResult.SUCCESS
    assert COUNTERS.get("retries") == 2 and COUNTERS.get("spans_delivered") == 3
    first, second = clock.waits
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0
    assert exporter.sent_at[-1] - exporter.sent_at[0] == pytest.approx(first + second)


def test_otlp_honours_retry_after():
    clock = FakeClock()
    exporter = Scripted([retry_(delay=3.0), _Outcome(_Outcome.OK)], clock)
    assert exporter.export(_spans(1)) is SpanExportResult.SUCCESS
    assert clock.waits == [3.0]


def test_otlp_a_non_retryable_answer_stops_at_once():
    clock = FakeClock()
    exporter = Scripted([_Outcome(_Outcome.FAIL, why="HTTP 400")], clock)
    assert exporter.export(_spans(4)) is SpanExportResult.FAILURE
    assert len(exporter.sent_at) == 1 and clock.waits == []
    assert COUNTERS.get("dropped.rejected") == 4 and COUNTERS.get("retries") == 0


def test_otlp_gives_up_at_the_retry_timeout_and_counts_it():
    clock = FakeClock()
    exporter = Scripted([retry_()], clock, retry_timeout_s=20.0)
    start = clock.now()
    assert exporter.export(_spans(5)) is SpanExportResult.FAILURE
    assert COUNTERS.get("dropped.retry_timeout") == 5
    assert clock.now() - start <= 20.0
    assert COUNTERS.get("retries") == len(exporter.sent_at) - 1 == len(clock.waits)


def test_otlp_at_exit_a_refused_endpoint_is_given_up_during_its_backoff():
    clock = FakeClock()
    exporter = Scripted([retry_(unreachable=True)], clock)
    clock.on_wait = lambda c, timeout: exporter.begin_exit(c.now() + 5.0)
    assert exporter.export(_spans(2)) is SpanExportResult.FAILURE
    assert COUNTERS.get("dropped.destination_unavailable") == 2
    assert len(exporter.sent_at) == 1
    # the rest of its queue is not even encoded
    assert exporter.export(_spans(3)) is SpanExportResult.FAILURE
    assert COUNTERS.get("dropped.destination_unavailable") == 5 and len(exporter.sent_at) == 1


def test_otlp_at_exit_an_answering_endpoint_retries_until_the_exit_deadline_only():
    clock = FakeClock()
    exporter = Scripted([retry_(delay=1.0)], clock)
    exporter.begin_exit(clock.now() + 2.5)
    start = clock.now()
    assert exporter.export(_spans(2)) is SpanExportResult.FAILURE
    assert clock.waits == [1.0, 1.0] and clock.now() - start == 2.0  # a third wait would pass 2.5 s
    assert COUNTERS.get("dropped.shutdown") == 2


def test_otlp_shutdown_interrupts_the_backoff():
    clock = FakeClock()
    exporter = Scripted([retry_(delay=10.0)], clock)
    clock.on_wait = lambda c, timeout: exporter.shutdown()
    assert exporter.export(_spans(2)) is SpanExportResult.FAILURE
    assert COUNTERS.get("dropped.shutdown") == 2 and len(exporter.sent_at) == 1


# --- the MLflow senders ------------------------------------------------------------------------------
class ScriptedClient:
    """A ``RestClient`` stand-in: each call answers the next item (an exception is raised)."""

    timeout_s = 30.0
    shown_uri = "http://mlflow.invalid"

    def __init__(self, answers: list) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str]] = []

    def call(self, method: str, path: str, body=None, timeout_s=None, params=None) -> dict:
        self.calls.append((method, path))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _records(client: ScriptedClient, clock: FakeClock) -> MlflowRecordExporter:
    """The MLflow destination's exporter; only its record sender runs here (no span is exported)."""
    otlp = OtlpSettings("http/protobuf", "http://unit.invalid/v1/traces")
    return MlflowRecordExporter(
        otlp, 1 << 20, 30.0, client=client, experiment_id="0", clock=clock, counters=COUNTERS
    )  # type: ignore[arg-type]


def _info() -> TraceInfo:
    return TraceInfo("tr-1", 1, TraceState.OK)


@pytest.mark.parametrize("status", [None, 408, 429, 500, 502, 503, 504])
def test_mlflow_record_retries_mlflows_transient_answers(status):
    clock = FakeClock()
    client = ScriptedClient([MlflowServerError("busy", status=status), {}])
    exporter = _records(client, clock)
    assert exporter._send_record(_info())
    assert len(client.calls) == 2 and 0.25 <= clock.waits[0] <= 0.5
    assert COUNTERS.get("mlflow_records_retries") == 1 and COUNTERS.get("mlflow_records_sent") == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_mlflow_record_does_not_retry_a_refusal(status):
    clock = FakeClock()
    client = ScriptedClient([MlflowServerError("no", status=status), {}])
    exporter = _records(client, clock)
    assert not exporter._send_record(_info())
    assert len(client.calls) == 1 and clock.waits == []
    assert COUNTERS.get("mlflow_records_failed") == 1


def test_mlflow_record_at_exit_an_unreachable_server_is_not_retried():
    clock = FakeClock()
    client = ScriptedClient([MlflowServerError("refused", status=None)])
    exporter = _records(client, clock)
    exporter.begin_exit(clock.now() + 5.0)
    assert not exporter._send_record(_info())
    assert len(client.calls) == 1 and COUNTERS.get("mlflow_records_failed") == 1


def test_merge_reads_again_with_the_backoff_until_its_budget_then_sets_the_tags_alone():
    clock = FakeClock()
    not_final = {"trace": {"trace_info": {"trace_id": "tr-1", "trace_metadata": {}}}}
    client = ScriptedClient([not_final, {}])
    merger = FragmentMerger(client, RetryPolicy(4.0, clock, rng=lambda: 0.0), record_body, COUNTERS)
    job = _Job(clock.now(), 0, "tr-1", {"team": "a"}, {}, RetryPolicy(4.0, clock, rng=lambda: 0.0).start())
    waits = []
    while True:  # what the merger's thread does, one job at a time
        merger._attempt(job, None)
        if not merger._jobs:
            break
        job = merger._jobs.pop()
        waits.append(job.due - clock.now())
        clock.t = job.due
    assert waits == [0.25, 0.5, 1.0, 2.0]  # a 4 s wait would pass the 4 s budget
    assert client.calls[-1] == ("PATCH", "/api/2.0/mlflow/traces/tr-1/tags")
    assert COUNTERS.get("mlflow_fragments_merged") == 1


def test_merge_does_not_retry_a_refusal():
    clock = FakeClock()
    client = ScriptedClient([MlflowServerError("denied", "PERMISSION_DENIED", 403)])
    merger = FragmentMerger(client, RetryPolicy(30.0, clock), record_body, COUNTERS)
    merger._attempt(_Job(clock.now(), 0, "tr-1", {"team": "a"}, {}, merger._policy.start()), None)
    assert not merger._jobs and len(client.calls) == 1
    assert COUNTERS.get("mlflow_merge_failed") == 1
