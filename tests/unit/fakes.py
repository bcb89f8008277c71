"""Test doubles of the unit tier: a clock that moves only when told, threads that never start."""

from __future__ import annotations

from typing import Any, Optional


class FakeClock:
    """``_clock.Clock`` with time under the test's control: ``wait`` returns at once, True if the
    event is already set (an interruption), else after moving time on by ``timeout``; ``on_wait``
    lets a test act in the middle of a wait (set an event, begin exit)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.waits: list[float] = []
        self.on_wait: Optional[Any] = None

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def wait(self, event: Any, timeout: float) -> bool:
        self.waits.append(timeout)
        if self.on_wait is not None:
            self.on_wait(self, timeout)
        if getattr(event, "is_set", None) is not None and event.is_set():
            return True
        self.t += timeout
        return False


class FakeThread:
    """What ``ExportPool(thread=...)`` makes instead of a thread: recorded, never run."""

    def __init__(self, target: Any, name: str, daemon: bool) -> None:
        self.target = target
        self.name = name
        self.started = False

    def start(self) -> None:
        self.started = True
