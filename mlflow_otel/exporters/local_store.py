"""The embedded default destination: OTLP/JSON lines in a file, and the local trace store beside it.

The file (``exporters/file.py``) is one ``ExportTraceServiceRequest`` per line, the input of the
OTel Collector's ``otlpjsonfile`` receiver, with its size cap and rotation. The same spans are filed
in the SQLite store of ``records/local.py``, which is what ``get_trace`` / ``search_traces`` read
with no server configured. Each span is encoded to OTLP/JSON once, for both (``span_texts``,
``otlp/json.py``):
the file's line is those texts joined, and the store keeps each trace's texts. Both happen on an
export thread; the store costs the application's threads nothing. At exit this destination is
drained whole (``Route.local``): its pace is this machine's.

A store that cannot be written (a read-only directory, a disk full, another process holding the
lock past its timeout) costs a counted error (``local_store_errors``) and a rate-limited warning:
the spans are in the file either way, and the export result is the file's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel._log import warn_limited
from mlflow_otel._telemetry import COUNTERS
from mlflow_otel.exporters.file import DEFAULT_MAX_BYTES, OtlpJsonFileExporter
from mlflow_otel.otlp.json import request_line, span_texts
from mlflow_otel.records.local import DEFAULT_MAX_BYTES as STORE_MAX_BYTES
from mlflow_otel.records.local import LocalTraceWriter, store_path


class FileAndStoreExporter(SpanExporter):
    """Writes each batch to the OTLP/JSON file, then to the local store."""

    def __init__(
        self,
        path: str,
        experiment_id: Optional[str] = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        store_max_bytes: int = STORE_MAX_BYTES,
    ) -> None:
        self.file = OtlpJsonFileExporter(path, max_bytes)
        self.path = self.file.path
        self.store = LocalTraceWriter(store_path(self.path), experiment_id, max_bytes=store_max_bytes)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        texts = span_texts(spans)
        result = self.file.write(request_line(spans, texts))
        try:
            self.store.write(spans, texts)
        except Exception as exc:
            COUNTERS.add("local_store_errors")
            warn_limited(
                "local_store",
                "Could not file %d spans in the local trace store %s: %r",
                len(spans),
                self.store.path,
                exc,
            )
        return result

    def shutdown(self) -> None:
        self.file.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
