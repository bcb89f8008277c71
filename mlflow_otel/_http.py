"""Keep-alive HTTP sessions for one endpoint, lent to one thread at a time and closed when idle.

The export threads are shared by every destination (``pipeline/batch.py``, ``ExportPool``): a
session per thread and per destination would keep ``threads x destinations`` sockets open. Here a
destination keeps at most as many sessions as it has requests in flight at once (its workers), and
``close_idle`` closes them when the pool finds the destination idle, so sockets do not grow with the
number of destinations a process ever sent to (one per tenant, say). A session opened before a
``fork()`` is never used in the child (its socket belongs to the parent): the fork module forgets
them there (``_fork.in_child``; after a fork from C, at the next ``lend``, ``_fork.check``).

``requests`` (installed with the OTLP/HTTP exporter) is imported at the first request.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mlflow_otel import _fork


class Sessions:
    """``requests`` sessions of one endpoint: ``lend()`` one for a request, ``close_idle()`` them."""

    def __init__(self) -> None:
        self._forget()
        _fork.in_child(self._forget)

    def _forget(self) -> None:
        """Start empty (in a forked child: the parent's sockets and lock are not this process's)."""
        self._lock = threading.Lock()
        self._free: list[Any] = []
        self._generation = object()

    @contextmanager
    def lend(self) -> Iterator[Any]:
        """A session for one request (or a retry loop): this thread's alone until it is given back."""
        _fork.check()  # a fork from C runs no at-fork hook
        with self._lock:
            session = self._free.pop() if self._free else None
        if session is None:
            import requests  # installed with opentelemetry-exporter-otlp-proto-http

            session = requests.Session()
        generation = self._generation
        try:
            yield session
        finally:
            with self._lock:
                if self._generation is generation:  # not lent before a fork
                    self._free.append(session)

    def close_idle(self) -> int:
        """Close the sessions no request is using (their sockets); returns how many. The next
        request opens a new one."""
        with self._lock:
            idle, self._free = self._free, []
        for session in idle:
            with contextlib.suppress(Exception):  # best effort: a broken socket is gone anyway
                session.close()
        return len(idle)
