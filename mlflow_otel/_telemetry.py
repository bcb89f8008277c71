"""Self-telemetry: what the SDK did with the spans it was given (docs/architecture.md, "Self-telemetry").

Counters are plain integers bumped under the GIL by the stage that knows (``+=`` on an attribute is
not atomic across threads, so each bump takes a lock; the cost is tens of nanoseconds and only on
events, never per attribute). The process's counters belong to the runtime (``_runtime.Runtime``),
which hands them to every stage and exporter it builds. Names: ``spans_started``, ``spans_ended``,
``spans_exported``, ``spans_delivered``, ``traces_timed_out``, ``dropped.<reason>``, ...
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict

#: Counters bumped once per span on the application's thread: lock-free (``next`` on an
#: ``itertools.count`` is atomic under the GIL), read back from the count's position.
HOT = ("spans_started", "spans_ended")


class Counters:
    """Monotonic counters, readable at any time with :meth:`snapshot`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = defaultdict(int)
        self._hot: dict[str, itertools.count[int]] = {name: itertools.count() for name in HOT}

    def tick(self, name: str) -> None:
        """Add one to a hot counter, without a lock."""
        next(self._hot[name])

    def _hot_value(self, name: str) -> int:
        # repr(itertools.count(n)) is "count(n)": the next value, i.e. how many were taken.
        return int(repr(self._hot[name])[6:-1])

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def get(self, name: str) -> int:
        if name in self._hot:
            return self._hot_value(name)
        with self._lock:
            return self._values.get(name, 0)

    def dropped(self) -> int:
        """Spans lost so far, every reason together (a processor's ``DropSpan`` is a choice, not a
        loss, and is not counted here)."""
        with self._lock:
            return sum(
                v for k, v in self._values.items() if k.startswith("dropped.") and k != "dropped.by_processor"
            )

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            values = dict(self._values)
        for name in HOT:
            value = self._hot_value(name)
            if value:
                values[name] = value
        return values

    def reset(self) -> None:
        with self._lock:
            self._values.clear()
            self._hot = {name: itertools.count() for name in HOT}
