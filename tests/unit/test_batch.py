"""The batch stage (pipeline/batch.py) on the deterministic pool: the bounded queue and its drops,
batch size and the schedule, flush deadlines, and what shutdown drains, salvages or cuts."""

from __future__ import annotations

from mlflow_otel._runtime import RUNTIME
from tests.unit.fakes import FakeClock
from tests.unit.stages import Recorder, Salvager, pool, run, spans, stage, step

COUNTERS = RUNTIME.counters


def test_a_full_queue_drops_and_counts_never_blocks():
    clock, log = FakeClock(), []
    s = stage(pool(clock), clock, Recorder("d", log), queue=8, batch=4)
    for span in spans(11):
        s.on_end_many([span])
    assert s.queued == 8 and COUNTERS.get("dropped.queue_full") == 3


def test_a_refusing_destination_keeps_a_quarter_of_the_queue():
    clock, log = FakeClock(), []
    s = stage(pool(clock), clock, Recorder("d", log), queue=16, batch=16)
    s.set_reachable(False)
    assert s.queue_limit == 4
    for span in spans(6):
        s.on_end_many([span])
    assert s.queued == 4 and COUNTERS.get("dropped.queue_full") == 2
    s.set_reachable(True)
    s.on_end_many(spans(1))
    assert s.queued == 5


def test_full_batches_leave_at_once_and_the_rest_at_the_schedule():
    clock, log = FakeClock(), []
    p = pool(clock, delay_s=5.0)
    s = stage(p, clock, Recorder("d", log), batch=4)
    for span in spans(10):
        s.on_end_many([span])
    run(p)
    assert log == [("d", 4), ("d", 4)] and s.queued == 2
    clock.advance(5.0)
    run(p)
    assert log[-1] == ("d", 2) and s.queued == 0
    assert COUNTERS.get("spans_exported") == 10 and COUNTERS.get("spans_delivered") == 10


def test_flush_gives_up_at_its_deadline_on_the_fake_clock():
    clock, log = FakeClock(), []
    s = stage(pool(clock), clock, Recorder("d", log))
    for span in spans(3):
        s.on_end_many([span])
    start = clock.now()
    assert not s.force_flush(2000)  # no thread ever exports: the deadline, in fake seconds
    assert 2.0 <= clock.now() - start < 2.1 and log == []


def test_flush_returns_once_everything_queued_before_it_is_exported():
    clock, log = FakeClock(), []
    p = pool(clock)
    s = stage(p, clock, Recorder("d", log), batch=4)
    for span in spans(6):
        s.on_end_many([span])
    clock.on_wait = lambda c, timeout: run(p)  # the pool's threads work while the flush waits
    assert s.force_flush(2000)
    assert sum(n for _, n in log) == 6 and clock.now() - 1000.0 <= 0.05


def test_shutdown_drains_the_queue_when_the_destination_keeps_up():
    clock, log = FakeClock(), []
    p = pool(clock)
    exporter = Recorder("d", log)
    s = stage(p, clock, exporter, batch=4)
    for span in spans(30):
        s.on_end_many([span])
    clock.on_wait = lambda c, timeout: run(p)
    s.shutdown(1000)
    assert sum(n for _, n in log) == 30 and s.cut_at_shutdown == 0 and exporter.shut_down
    assert COUNTERS.get("dropped.shutdown") == 0
    s.on_end_many(spans(1))  # after shutdown: counted, not queued
    assert COUNTERS.get("dropped.shutdown") == 1 and s.queued == 0


def test_shutdown_cuts_what_its_deadline_leaves_and_counts_it():
    clock, log = FakeClock(), []
    s = stage(pool(clock), clock, Recorder("d", log), batch=4)
    for span in spans(7):
        s.on_end_many([span])
    s.shutdown(500)
    assert log == [] and s.cut_at_shutdown == 7 and COUNTERS.get("dropped.shutdown") == 7


def test_shutdown_hands_what_it_cuts_to_the_spool():
    clock, log = FakeClock(), []
    exporter = Salvager("d", log)
    s = stage(pool(clock), clock, exporter, batch=4)
    for span in spans(7):
        s.on_end_many([span])
    s.shutdown(500)
    assert len(exporter.salvaged) == 7 and s.cut_at_shutdown == 0
    assert COUNTERS.get("dropped.shutdown") == 0


def test_drain_waits_as_long_as_exports_finish():
    clock, log = FakeClock(), []
    p = pool(clock)
    exporter = Recorder("local", log)
    s = stage(p, clock, exporter, queue=1000, batch=10)
    for span in spans(200):
        s.on_end_many([span])

    def one_slow_export(c: FakeClock, timeout: float) -> None:
        c.advance(0.08)  # each batch takes most of the stall window; 20 of them, far more in all
        step(p)

    clock.on_wait = one_slow_export
    start = clock.now()
    assert s.drain(stall_timeout_millis=100)
    assert sum(n for _, n in log) == 200 and clock.now() - start > 1.0


def test_drain_gives_up_after_the_stall_window_without_progress():
    clock, log = FakeClock(), []
    s = stage(pool(clock), clock, Recorder("local", log), batch=10)  # no thread ever exports
    for span in spans(30):
        s.on_end_many([span])
    start = clock.now()
    assert not s.drain(stall_timeout_millis=200)
    assert 0.2 <= clock.now() - start < 0.3 and log == []
