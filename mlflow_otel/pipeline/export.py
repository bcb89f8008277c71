"""One destination as its batch stage drives it: an exporter plus the options the pipeline adds.

Any OpenTelemetry ``SpanExporter`` is a destination. The pipeline adds, around whichever exporter a
route builds, what the Collector's exporterhelper adds around a ``consume`` call: options, not
layers. :class:`DestinationExporter` holds the built exporter and applies them in one place:

* one INFO line, at the first export, saying where traces go (a user should never wonder);
* a build deferred to the first export, on the export thread (``Route.lazy``: an experiment
  lookup over the network must not run on the app's first traced request);
* a user's exporter borrowed, not owned (``Route.borrowed``): flushed when the pipeline is
  replaced, shut down only when the interpreter exits (the user may hand the same object to a
  later ``set_destination``, and a shut-down OTel exporter refuses every export).

The exit path's capabilities (``exporters/base.py``: ``ExitAware``, ``Salvaging``, ``Releasing``)
are asked of the built exporter directly; nothing forwards them through wrappers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Callable, Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel._log import logger, warn_limited
from mlflow_otel._telemetry import Counters
from mlflow_otel.exporters.base import ExitAware, busy, close_idle, salvage


class DestinationExporter(SpanExporter):
    """A destination's exporter with the pipeline's options (module docstring). ``build`` makes the
    exporter: now, so that a destination that cannot be built is known at once (the pipeline then
    falls back to the local file), or at the first export when ``lazy`` (a failed build is tried
    again at the next export; the batch in hand is dropped and counted)."""

    def __init__(
        self,
        build: Callable[[], SpanExporter],
        description: str,
        *,
        lazy: bool = False,
        borrowed: bool = False,
        counters: Counters,
    ) -> None:
        self.description = description
        self._counters = counters
        self._build = build
        self._borrowed = borrowed
        self._lock = threading.Lock()
        self._announced = False
        self._exiting = False
        self._exit_deadline: Optional[float] = None
        self._shut = False
        self._exporter: Optional[SpanExporter] = None if lazy else build()

    @property
    def exporter(self) -> Optional[SpanExporter]:
        """The destination's own exporter, once built."""
        return self._exporter

    def _built(self, count: int) -> Optional[SpanExporter]:
        with self._lock:
            if self._exporter is None and not self._shut:
                try:
                    self._exporter = self._build()
                except Exception as exc:
                    self._counters.add("dropped.destination_unavailable", count)
                    warn_limited(
                        f"lazy:{self.description}", "Cannot export to %s yet: %s", self.description, exc
                    )
                    return None
                if self._exiting and not self._borrowed and isinstance(self._exporter, ExitAware):
                    self._exporter.begin_exit(self._exit_deadline)
            return self._exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        exporter = self._exporter or self._built(len(spans))
        if exporter is None:
            return SpanExportResult.FAILURE
        if not self._announced:
            self._announced = True
            logger.info("Sending traces to %s", self.description)
        return exporter.export(spans)

    # --- the exit path's capabilities (exporters/base.py) ----------------------------------------
    # Asked of our own exporters only: a borrowed one is driven by the plain SpanExporter contract
    # (a user's class may have methods of these names that mean something else).
    def _ours(self) -> Optional[SpanExporter]:
        return None if self._borrowed else self._exporter

    def begin_exit(self, deadline: Optional[float] = None) -> None:
        """The pipeline ends for good (the interpreter exits; a push ends): a borrowed exporter is
        shut down with it, not only flushed."""
        with self._lock:
            self._exiting, self._exit_deadline = True, deadline
            exporter = self._ours()
        if isinstance(exporter, ExitAware):
            exporter.begin_exit(deadline)

    def busy(self) -> bool:
        return busy(self._ours())

    def salvage(self, spans: Sequence[ReadableSpan]) -> int:
        return salvage(self._ours(), spans)

    def close_idle(self) -> None:
        close_idle(self._ours())

    def shutdown(self) -> None:
        with self._lock:
            self._shut = True
            exporter = self._exporter
        if exporter is None:
            return
        if self._borrowed and not self._exiting:
            try:
                exporter.force_flush()
            except Exception as exc:
                warn_limited("borrowed_shutdown", "%s failed to flush: %r", type(exporter).__name__, exc)
            return
        exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        exporter = self._exporter
        return True if exporter is None else exporter.force_flush(timeout_millis)
