"""The embedded default sink: OTLP JSON lines in a local file.

With no endpoint configured, traces still go somewhere a user can look at (``mlflow-otel show``), in
the format of the OTel Collector's ``file`` exporter (one ``ExportTraceServiceRequest`` per line), so
the same file can later be shipped with the Collector's ``otlpjsonfile`` receiver. The file is
rotated once it passes ``max_bytes`` (one previous generation is kept as ``<file>.1``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel._log import warn_limited
from mlflow_otel.exporters.otlp_json import encode_request

DEFAULT_MAX_BYTES = 100 * 1024 * 1024


class OtlpJsonFileExporter(SpanExporter):
    """Appends each batch as one OTLP/JSON line to ``path``."""

    def __init__(self, path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = os.path.abspath(path)
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._shutdown = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            line = json.dumps(encode_request(spans), ensure_ascii=False, separators=(",", ":")) + "\n"
            data = line.encode("utf-8")
            with self._lock:
                directory = os.path.dirname(self.path)
                if directory:
                    os.makedirs(directory, exist_ok=True)
                try:
                    size = os.path.getsize(self.path)
                except OSError:
                    size = 0
                if size and size + len(data) > self._max_bytes:
                    os.replace(self.path, self.path + ".1")
                with open(self.path, "ab") as fh:
                    fh.write(data)
            return SpanExportResult.SUCCESS
        except Exception as exc:
            warn_limited("file_export", "Could not write traces to %s: %s", self.path, exc)
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self._shutdown = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
