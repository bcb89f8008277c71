"""The export pool (pipeline/workers.py): fairness, bounded threads, per-destination limits, the
schedule and idle connections, stop. Real pool and stages, a fake clock, no thread ever runs."""

from __future__ import annotations

from mlflow_otel.pipeline.workers import IDLE_S
from tests.unit.fakes import FakeClock
from tests.unit.stages import Recorder, pool, run, spans, stage, step


def _fill(stage_, batches: int, size: int = 4) -> None:
    for span in spans(batches * size):
        stage_.on_end_many([span])


def test_destinations_take_turns_one_batch_each():
    clock, log = FakeClock(), []
    p = pool(clock)
    a, b, c = (stage(p, clock, Recorder(n, log)) for n in "abc")
    for s in (a, b, c):
        _fill(s, 3)
    assert run(p) == 9
    assert [name for name, _ in log] == list("abcabcabc")  # a busy tenant never starves a quiet one
    assert all(size == 4 for _, size in log)


def test_a_late_quiet_destination_is_served_next_not_after_the_busy_one():
    clock, log = FakeClock(), []
    p = pool(clock)
    busy, quiet = stage(p, clock, Recorder("busy", log)), stage(p, clock, Recorder("quiet", log))
    _fill(busy, 10)
    step(p)
    _fill(quiet, 1)
    run(p)
    assert [name for name, _ in log][:3] == ["busy", "busy", "quiet"]  # the one in line, then quiet


def test_threads_are_bounded_whatever_the_number_of_destinations():
    clock, log = FakeClock(), []
    p = pool(clock, max_threads=4)
    stages = [stage(p, clock, Recorder(f"d{i}", log)) for i in range(25)]
    for s in stages:
        _fill(s, 2)
    assert p.threads == 4
    run(p)
    assert p.threads == 4 and len(log) == 50


class Waiting(Recorder):
    """A destination each export waits on for ``wait_s`` (the fake clock moves; no CPU is spent)."""

    def __init__(self, name: str, log: list[tuple[str, int]], clock: FakeClock, wait_s: float) -> None:
        super().__init__(name, log)
        self.clock, self.wait_s = clock, wait_s

    def export(self, batch):  # type: ignore[no-untyped-def]
        self.clock.advance(self.wait_s)
        return super().export(batch)


def _taken_at_once(p, s) -> int:  # type: ignore[no-untyped-def]
    """How many threads take stage ``s`` at once (none finishing), then released again."""
    with p._cond:
        picked = []
        while (chosen := p._pick(p._clock.now())[0]) is not None:
            picked.append(chosen)
        for chosen in picked:
            p._release(chosen)
    return picked.count(s)


def test_a_nearby_destination_gets_one_export_at_a_time_a_remote_one_its_workers():
    # Encoding is CPU work under the GIL: a second thread for a destination that answers at once
    # only takes the GIL from the app. A destination every request waits on (a remote collector's
    # round trip) gets its workers; one slow request among quick ones (a GIL wait) does not count.
    clock, log = FakeClock(), []
    p = pool(clock, max_threads=32)  # threads to spare: the last-thread rule stays out of it
    near = stage(p, clock, Waiting("near", log, clock, 0.002), workers=2)
    far = stage(p, clock, Waiting("far", log, clock, 0.05), workers=2)
    for s in (near, far):
        _fill(s, 12)
        assert _taken_at_once(p, s) == 2  # not measured yet: its workers
    for s in (near, far):
        for _ in range(4):
            s.export_next()
    assert _taken_at_once(p, near) == 1 and _taken_at_once(p, far) == 2
    far.exporter.wait_s = 0.001  # the collector moved next door: back to one after a few exports
    far.export_next()
    assert _taken_at_once(p, far) == 1


def test_one_destination_gets_at_most_its_workers_and_one_while_refusing():
    clock, log = FakeClock(), []
    p = pool(clock, max_threads=8)
    s = stage(p, clock, Waiting("d", log, clock, 0.05), workers=2)  # remote: exports wait on it
    _fill(s, 6)
    with p._cond:  # two threads take it at once (neither has finished): a third may not
        assert p._pick(clock.now())[0] is s and p._pick(clock.now())[0] is s
        assert p._pick(clock.now())[0] is None
        assert s.exporting == 2
        p._release(s)
        p._release(s)
    s.set_reachable(False)  # refusing connections: its retries hold one thread, not the pool
    with p._cond:
        assert p._pick(clock.now())[0] is s
        assert p._pick(clock.now())[0] is None


def test_the_last_thread_is_kept_from_refusing_destinations():
    clock, log = FakeClock(), []
    p = pool(clock, max_threads=2)
    down1, down2, up = (stage(p, clock, Recorder(n, log)) for n in ("down1", "down2", "up"))
    for s in (down1, down2):
        s.set_reachable(False)
    for s in (down1, down2, up):
        _fill(s, 1)
    with p._cond:
        assert p._pick(clock.now())[0] is down1  # holds one thread (retrying)
        assert p.threads == 2
        assert p._pick(clock.now())[0] is up  # the last thread: not for down2
        assert p._pick(clock.now())[0] is None


def test_a_partial_batch_leaves_at_the_schedule_delay():
    clock, log = FakeClock(), []
    p = pool(clock, delay_s=5.0)
    s = stage(p, clock, Recorder("d", log), batch=4)
    for span in spans(3):
        s.on_end_many([span])
    assert run(p) == 0 and log == []  # not full, not due
    clock.advance(4.9)
    assert run(p) == 0
    clock.advance(0.1)
    assert run(p) == 1 and log == [("d", 3)]


def test_an_idle_destination_has_its_connections_closed_once():
    clock, log = FakeClock(), []
    p = pool(clock, delay_s=5.0)
    exporter = Recorder("d", log)
    s = stage(p, clock, exporter)
    _fill(s, 1)
    run(p)
    clock.advance(IDLE_S - 1)
    run(p)
    assert exporter.closed_idle == 0
    clock.advance(5.0)  # noticed at the schedule's next tick
    run(p)
    assert exporter.closed_idle == 1
    clock.advance(IDLE_S)
    run(p)
    assert exporter.closed_idle == 1  # nothing exported since: nothing to close


def test_a_stopped_pool_takes_no_more_work():
    clock, log = FakeClock(), []
    p = pool(clock)
    s = stage(p, clock, Recorder("d", log))
    _fill(s, 2)
    p.stop()
    assert not p.alive
    assert run(p) == 0 and log == []
    _fill(s, 1)
    assert run(p) == 0 and s.queued == 12
