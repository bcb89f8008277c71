"""The embedded default sink: OTLP JSON lines in a local file.

With no endpoint configured, traces still go somewhere a user can look at (``mlflow-otel show``), in
the format of the OTel Collector's ``file`` exporter (one ``ExportTraceServiceRequest`` per line), so
the same file can later be shipped with the Collector's ``otlpjsonfile`` receiver. The file is
rotated once it passes ``max_bytes`` (one previous generation is kept as ``<file>.1``).

A batch is one ``write`` of one line to a descriptor opened for appending, so writers in several
processes never interleave within a line. A line torn by a full disk or a killed process is not
continued: the next batch starts on a fresh line, so only the torn line is lost to readers. The
file is private (0600, ``_files.py``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel._files import open_append
from mlflow_otel._log import warn_limited
from mlflow_otel.otlp.json import request_line, span_texts

DEFAULT_MAX_BYTES = 100 * 1024 * 1024


class OtlpJsonFileExporter(SpanExporter):
    """Appends each batch as one OTLP/JSON line to ``path``."""

    def __init__(self, path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = os.path.abspath(path)
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._shutdown = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS if not self._shutdown else SpanExportResult.FAILURE
        return self.write(request_line(spans, span_texts(spans)))

    def write(self, line: str) -> SpanExportResult:
        """Append one request line (``otlp/json.py``: ``request_line``); never raises."""
        return SpanExportResult.SUCCESS if self.append(line) is not None else SpanExportResult.FAILURE

    def append(self, line: str) -> Optional[tuple[int, int, int]]:
        """Append one request line; where it went, ``(inode, start, end)`` of the file, or None if it
        could not be written (warned, rate-limited). Never raises."""
        if self._shutdown:
            return None
        try:
            data = line.encode("utf-8") + b"\n"
            with self._lock:
                fd = open_append(self.path)
                try:
                    size = os.fstat(fd).st_size
                    if size and size + len(data) > self._max_bytes:
                        os.replace(self.path, self.path + ".1")
                        os.close(fd)
                        fd = open_append(self.path)
                        size = 0
                    if size and os.pread(fd, 1, size - 1) != b"\n":
                        data = b"\n" + data  # the last line was torn: never continue it
                    written = os.write(fd, data)
                    # With O_APPEND the write lands at the end of the file as it is then (another
                    # process may have appended since ``fstat``); the descriptor's offset is its end.
                    end = os.lseek(fd, 0, os.SEEK_CUR)
                    inode = os.fstat(fd).st_ino
                finally:
                    os.close(fd)
            if written != len(data):
                raise OSError(f"wrote {written} of {len(data)} bytes (is the disk full?)")
            return inode, end - written, end
        except Exception as exc:
            warn_limited("file_export", "Could not write traces to %s: %s", self.path, exc)
            return None

    def shutdown(self) -> None:
        self._shutdown = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
