"""What an exporter may offer the pipeline beyond OTel's ``SpanExporter`` (export, shutdown,
force_flush): optional capabilities, each a runtime-checkable protocol, as the Collector's
exporterhelper offers options (queue, retry, timeout) around one ``consume`` call. The pipeline
(``pipeline/batch.py``, ``pipeline/build.py``) asks ``isinstance(exporter, ExitAware)`` and so on;
an exporter of the OTel ecosystem offers none and is driven by the plain SDK contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Protocol, runtime_checkable

from opentelemetry.sdk.trace import ReadableSpan

from mlflow_otel._log import warn_limited

__all__ = ["ExitAware", "Releasing", "Salvaging", "busy", "close_idle", "salvage"]


@runtime_checkable
class ExitAware(Protocol):
    """An exporter that behaves differently while the process exits (ours: a refused connection is
    not retried then, so exit is not held by a dead collector; retries end by ``deadline``, a
    ``time.monotonic()`` value, and no request outlives it)."""

    def begin_exit(self, deadline: Optional[float] = None) -> None: ...

    def busy(self) -> bool:
        """True while the destination answers but has not taken everything yet (an export in
        flight to an endpoint that answers, or a backoff after 429/503): at exit such a
        destination gets the larger budget, ``MLFLOW_OTEL_EXIT_BUSY_TIMEOUT_SECONDS``."""
        ...


@runtime_checkable
class Salvaging(Protocol):
    """An exporter that can keep spans it could not send (ours: the opt-in on-disk spool,
    ``exporters/spool.py``); returns how many it kept. Called with what a shutdown deadline left
    in the batch queue."""

    def salvage(self, spans: Sequence[ReadableSpan]) -> int: ...


@runtime_checkable
class Releasing(Protocol):
    """An exporter that keeps connections open between exports (ours: keep-alive HTTP sessions, a
    gRPC channel) and can close them: the export pool calls ``close_idle`` when the destination has
    been idle a while (``pipeline/batch.py``), so sockets do not grow with the number of
    destinations a process ever used. The next export opens a new connection."""

    def close_idle(self) -> None: ...


def close_idle(exporter: object) -> None:
    """Close ``exporter``'s idle connections if it keeps any; never raises (called by a worker)."""
    if isinstance(exporter, Releasing):
        try:
            exporter.close_idle()
        except Exception as exc:
            warn_limited("close_idle", "Closing idle connections of %r failed: %r", exporter, exc)


def busy(exporter: object) -> bool:
    """``exporter.busy()`` if it can tell (``ExitAware``), else False."""
    return isinstance(exporter, ExitAware) and exporter.busy()


def salvage(exporter: object, spans: Sequence[ReadableSpan]) -> int:
    """What ``exporter`` kept of ``spans`` (``Salvaging``), else 0."""
    return exporter.salvage(spans) if isinstance(exporter, Salvaging) else 0
