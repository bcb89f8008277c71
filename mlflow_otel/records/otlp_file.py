"""Traces from OTLP/JSON lines: the embedded default sink's file (``exporters/file.py``) or any file
the OTel Collector's ``file`` exporter wrote, as MLflow's ``Trace`` entities.

Each line is one ``ExportTraceServiceRequest`` in OTLP/JSON (https://opentelemetry.io/docs/specs/otlp/
#json-protobuf-encoding): ids as hex, 64-bit integers as decimal strings, enums as integers. Spans
become ``records.model.Span`` with their attributes as they were on the wire (``mlflow.spanInputs``
stays a JSON string, decoded on read, as MLflow's ``Span`` does) and are grouped into traces by
``records.from_spans.trace_from_spans``, so a trace read from the file has the same record
(state, previews, tags, token usage) as one captured in memory.

Malformed lines are skipped: a file may end mid-write, and a reader must not fail on it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Optional

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link as OtelLink
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from mlflow_otel.otlp.ids import bare_hex, decode_wire_id
from mlflow_otel.otlp.json import decode_any_value
from mlflow_otel.records.from_spans import trace_from_spans
from mlflow_otel.records.model import Span, Trace
from mlflow_otel.spans.types import Link, SpanEvent, SpanStatus, SpanStatusCode

#: OTLP's ``Status.StatusCode`` numbers (trace/v1/trace.proto).
_STATUS_CODES = {0: SpanStatusCode.UNSET, 1: SpanStatusCode.OK, 2: SpanStatusCode.ERROR}


def _attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in items or ():
        if isinstance(kv, Mapping) and "key" in kv:
            out[str(kv["key"])] = decode_any_value(kv.get("value") or {})
    return out


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def span_from_json(span: Mapping[str, Any]) -> Span:
    """One OTLP/JSON span as MLflow's ``Span``."""
    status = span.get("status") or {}
    end = _int(span.get("endTimeUnixNano"))
    parent = span.get("parentSpanId")
    return Span(
        trace_id="tr-" + decode_wire_id(span.get("traceId"), 32),
        span_id=decode_wire_id(span.get("spanId"), 16),
        parent_id=decode_wire_id(parent, 16) if parent else None,
        name=str(span.get("name") or ""),
        start_time_ns=_int(span.get("startTimeUnixNano")),
        end_time_ns=end or None,
        status=SpanStatus(
            _STATUS_CODES.get(_int(status.get("code")), SpanStatusCode.UNSET),
            str(status.get("message") or ""),
        ),
        attributes=_attributes(span.get("attributes")),
        events=[
            SpanEvent(str(e.get("name") or ""), _int(e.get("timeUnixNano")), _attributes(e.get("attributes")))
            for e in span.get("events") or ()
            if isinstance(e, Mapping)
        ],
        links=[
            Link(
                "tr-" + decode_wire_id(link.get("traceId"), 32),
                decode_wire_id(link.get("spanId"), 16),
                _attributes(link.get("attributes")) or None,
            )
            for link in span.get("links") or ()
            if isinstance(link, Mapping)
        ],
    )


def _context(trace_id: Any, span_id: Any, remote: bool = False, state: Any = None) -> SpanContext:
    return SpanContext(
        int(decode_wire_id(trace_id, 32), 16),
        int(decode_wire_id(span_id, 16), 16),
        is_remote=remote,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState.from_header([state]) if state else None,
    )


def _status(status: Mapping[str, Any]) -> Status:
    code = {1: StatusCode.OK, 2: StatusCode.ERROR}.get(_int(status.get("code")), StatusCode.UNSET)
    # The API keeps a description for ERROR only (trace/api.md, "Set Status").
    return Status(code, str(status.get("message") or "") or None if code is StatusCode.ERROR else None)


def otel_spans_from_request(
    request: Mapping[str, Any], resources: dict[Any, Any], scopes: dict[Any, Any]
) -> list[ReadableSpan]:
    """The spans of one ``ExportTraceServiceRequest`` in OTLP/JSON as OTel ``ReadableSpan``s, as
    the pipeline exports them: original ids (the parent's remote flag from ``flags`` bit 9),
    times, kind, status, events, links, resource and scope. ``resources`` and ``scopes`` cache
    those objects by content across calls (encoders group spans by resource object). Raises
    ``ValueError`` (and the like) on a request of another shape."""
    out = []
    for rs in request.get("resourceSpans") or ():
        attributes = _attributes((rs.get("resource") or {}).get("attributes"))
        key = json.dumps(attributes, sort_keys=True, default=str)
        resource = resources.get(key)
        if resource is None:
            resource = resources[key] = Resource(attributes, rs.get("schemaUrl") or None)
        for ss in rs.get("scopeSpans") or ():
            scope_json = ss.get("scope") or {}
            scope_key = (str(scope_json.get("name") or ""), str(scope_json.get("version") or ""))
            scope = scopes.get(scope_key)
            if scope is None:
                scope = scopes[scope_key] = InstrumentationScope(scope_key[0], scope_key[1] or None)
            for span in ss.get("spans") or ():
                context = _context(span["traceId"], span["spanId"], state=span.get("traceState"))
                parent_id = span.get("parentSpanId")
                parent = (
                    _context(span["traceId"], parent_id, bool(_int(span.get("flags")) & 0x200))
                    if parent_id
                    else None
                )
                kind = _int(span.get("kind"))
                out.append(
                    ReadableSpan(
                        name=str(span.get("name") or ""),
                        context=context,
                        parent=parent,
                        resource=resource,
                        attributes=_attributes(span.get("attributes")),
                        events=[
                            Event(
                                str(e.get("name") or ""),
                                _attributes(e.get("attributes")),
                                _int(e.get("timeUnixNano")),
                            )
                            for e in span.get("events") or ()
                        ],
                        links=[
                            OtelLink(
                                _context(link["traceId"], link["spanId"]), _attributes(link.get("attributes"))
                            )
                            for link in span.get("links") or ()
                        ],
                        # OTLP's SpanKind numbers are the API's plus one (0 is unspecified).
                        kind=SpanKind(kind - 1) if 1 <= kind <= 5 else SpanKind.INTERNAL,
                        status=_status(span.get("status") or {}),
                        start_time=_int(span.get("startTimeUnixNano")),
                        end_time=_int(span.get("endTimeUnixNano")) or None,
                        instrumentation_scope=scope,
                    )
                )
    return out


def span_objects(request: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The OTLP/JSON span objects of one ``ExportTraceServiceRequest``, as they are."""
    for rs in request.get("resourceSpans") or ():
        for ss in (rs or {}).get("scopeSpans") or ():
            for span in (ss or {}).get("spans") or ():
                if isinstance(span, Mapping):
                    yield span


def spans_from_request(request: Mapping[str, Any]) -> Iterator[Span]:
    """The spans of one ``ExportTraceServiceRequest`` in OTLP/JSON."""
    for span in span_objects(request):
        yield span_from_json(span)


def _needles(wanted: Iterable[str]) -> list[str]:
    """What a line holding one of these trace ids contains: the hex id, or its base64 form."""
    needles = []
    for hex_id in wanted:
        needles.append(hex_id)
        with contextlib.suppress(ValueError):
            needles.append(base64.b64encode(bytes.fromhex(hex_id)).decode("ascii"))
    return needles


def read_spans(lines: Iterable[str], trace_ids: Optional[Sequence[str]] = None) -> list[Span]:
    """Every span in ``lines`` (only those of ``trace_ids`` when given; a line that does not even
    contain one of those ids is not parsed)."""
    wanted = {bare_hex(t) for t in trace_ids} if trace_ids else None
    needles = _needles(wanted) if wanted is not None else ()
    spans: list[Span] = []
    for line in lines:
        if not line.strip():
            continue
        if wanted is not None and not any(n in line for n in needles):
            continue
        try:
            request = json.loads(line)
        except ValueError:
            continue
        if not isinstance(request, Mapping):
            continue
        try:
            for span in spans_from_request(request):
                if wanted is None or span.trace_id[3:] in wanted:
                    spans.append(span)
        except (TypeError, ValueError, AttributeError, KeyError):
            continue  # a structurally broken request: skipped like a malformed line
    return spans


def group_traces(spans: Iterable[Span]) -> list[Trace]:
    """Spans grouped into traces, oldest trace first. A trace exported in several batches (or
    across a rotation) is one trace; a span seen twice (a replayed file) counts once."""
    by_trace: dict[str, dict[str, Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, {})[span.span_id] = span
    traces = []
    for members in by_trace.values():
        try:
            traces.append(trace_from_spans(list(members.values())))
        except ValueError:  # no root at all: spans that are each other's parents (a broken file)
            continue
    traces.sort(key=lambda t: (t.data.spans[0].start_time_ns, t.trace_id))
    return traces


def generations(path: str) -> list[str]:
    """The sink's files oldest first: the rotated ``<path>.1`` (if any), then ``path``."""
    rotated = path + ".1"
    return [p for p in (rotated, path) if os.path.exists(p)]


def read_traces(path: str, trace_ids: Optional[Sequence[str]] = None) -> list[Trace]:
    """The traces in the sink's file and its rotated generation, oldest first. Raises
    ``FileNotFoundError`` when neither exists."""
    files = generations(path)
    if not files:
        raise FileNotFoundError(path)
    spans: list[Span] = []
    for name in files:
        with open(name, encoding="utf-8", errors="replace") as fh:
            spans.extend(read_spans(fh, trace_ids))
    return group_traces(spans)
