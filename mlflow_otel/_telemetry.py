"""Self-telemetry: what the SDK did with the spans it was given (DESIGN.md section 3).

Counters are plain integers bumped under the GIL by the stage that knows (``+=`` on an attribute is
not atomic across threads, so each bump takes a lock; the cost is tens of nanoseconds and only on
events, never per attribute).
"""

from __future__ import annotations

import threading
from collections import defaultdict


class Counters:
    """Monotonic counters, readable at any time with :meth:`snapshot`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = defaultdict(int)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def get(self, name: str) -> int:
        with self._lock:
            return self._values.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def reset(self) -> None:
        with self._lock:
            self._values.clear()


#: The process-wide counters. Names: ``spans_started``, ``spans_ended``, ``spans_exported``,
#: ``spans_export_failed``, ``traces_timed_out``, ``dropped.<reason>``.
COUNTERS = Counters()
