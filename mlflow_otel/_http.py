"""Keep-alive HTTP sessions for one endpoint, lent to one thread at a time and closed when idle.

The export threads are shared by every destination (``pipeline/batch.py``, ``ExportPool``): a
session per thread and per destination would keep ``threads x destinations`` sockets open. Here a
destination keeps at most as many sessions as it has requests in flight at once (its workers), and
``close_idle`` closes them when the pool finds the destination idle, so sockets do not grow with the
number of destinations a process ever sent to (one per tenant, say). A session opened before a
``fork()`` is never used in the child (its socket belongs to the parent).

``requests`` (installed with the OTLP/HTTP exporter) is imported at the first request.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Sessions:
    """``requests`` sessions of one endpoint: ``lend()`` one for a request, ``close_idle()`` them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[Any] = []
        self._pid = os.getpid()

    @contextmanager
    def lend(self) -> Iterator[Any]:
        """A session for one request (or a retry loop): this thread's alone until it is given back."""
        if self._pid != os.getpid():  # forked: the parent's sockets and lock are not this process's
            self._lock, self._free, self._pid = threading.Lock(), [], os.getpid()
        with self._lock:
            session = self._free.pop() if self._free else None
        if session is None:
            import requests  # installed with opentelemetry-exporter-otlp-proto-http

            session = requests.Session()
        pid = os.getpid()
        try:
            yield session
        finally:
            with self._lock:
                if self._pid == pid:
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
