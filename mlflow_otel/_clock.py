"""The time the export side reads and waits on, behind one small seam so tests can drive it.

Queues, the export pool and retries read ``time.monotonic()`` and wait on events. Passing a clock
(this one by default) lets the unit tier (``tests/unit/``) replace both with a fake clock that
advances only when the test says, so backoff, deadlines and schedules are checked without real
sleeps or wall-clock asserts. The app thread's path never reads it.
"""

from __future__ import annotations

import time
from typing import Optional, Protocol


class Waitable(Protocol):
    def wait(self, timeout: Optional[float] = None) -> bool: ...


class Clock:
    """Real time: ``time.monotonic()`` and an event's own ``wait``."""

    __slots__ = ()

    @staticmethod
    def now() -> float:
        return time.monotonic()

    @staticmethod
    def wait(event: Waitable, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``event``; True if it was set (an interruption)."""
        return event.wait(timeout)


REAL_CLOCK = Clock()
