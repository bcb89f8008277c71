"""OTLP/JSON encoding of finished spans, as the OTLP spec defines it.

Per https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding: field names in lowerCamelCase,
trace and span ids as lower-case hex (not base64), enums as integers, 64-bit integers as decimal
strings. This is the format the OTel Collector's ``file`` exporter writes and its ``otlpjsonfile``
receiver reads, so a file we write can be replayed into any collector.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from mlflow_otel.otlp.ids import span_hex, trace_hex


def any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, (bytes, bytearray)):
        return {"bytesValue": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    return {"stringValue": str(value)}


def key_values(attributes: Any) -> list[dict[str, Any]]:
    return [{"key": key, "value": any_value(value)} for key, value in (attributes or {}).items()]


def decode_any_value(value: dict[str, Any]) -> Any:
    """Inverse of :func:`any_value` (used by the CLI and tests)."""
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [decode_any_value(v) for v in value["arrayValue"].get("values", [])]
    if "bytesValue" in value:
        return base64.b64decode(value["bytesValue"])
    if "kvlistValue" in value:
        return {kv["key"]: decode_any_value(kv["value"]) for kv in value["kvlistValue"].get("values", [])}
    return None


def _span(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    out: dict[str, Any] = {
        "traceId": trace_hex(ctx.trace_id),
        "spanId": span_hex(ctx.span_id),
        "name": span.name,
        # OTLP's SpanKind numbers are the API's plus one (0 is SPAN_KIND_UNSPECIFIED).
        "kind": span.kind.value + 1,
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
        "attributes": key_values(span.attributes),
        "status": {"code": span.status.status_code.value},
        "flags": 0x100 | (0x200 if span.parent is not None and span.parent.is_remote else 0),
    }
    if span.parent is not None:
        out["parentSpanId"] = span_hex(span.parent.span_id)
    if span.status.description:
        out["status"]["message"] = span.status.description
    if ctx.trace_state:
        out["traceState"] = ctx.trace_state.to_header()
    if span.events:
        out["events"] = [
            {"timeUnixNano": str(e.timestamp), "name": e.name, "attributes": key_values(e.attributes)}
            for e in span.events
        ]
    if span.links:
        out["links"] = [
            {
                "traceId": trace_hex(link.context.trace_id),
                "spanId": span_hex(link.context.span_id),
                "attributes": key_values(link.attributes),
            }
            for link in span.links
        ]
    for name in ("attributes", "events", "links"):
        dropped = getattr(span, f"dropped_{name}", 0)
        if dropped:
            out[f"dropped{name.capitalize()}Count"] = dropped
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def span_texts(spans: Sequence[ReadableSpan]) -> list[str]:
    """Each span as its OTLP/JSON text: encoded once, then joined into a request line
    (``request_line``) and, by the local store, into each trace's record."""
    return [_dumps(_span(span)) for span in spans]


def request_line(spans: Sequence[ReadableSpan], texts: Sequence[str]) -> str:
    """One ``ExportTraceServiceRequest`` in OTLP/JSON, on one line, from ``span_texts(spans)``:
    spans grouped by resource and scope, as ``encode_request``, without encoding a span again."""
    by_resource: dict[int, tuple[Any, dict[Any, list[str]]]] = {}
    for span, text in zip(spans, texts):
        resource = span.resource
        entry = by_resource.setdefault(id(resource), (resource, {}))
        scope = span.instrumentation_scope
        key = (scope.name, scope.version or "") if scope is not None else ("", "")
        entry[1].setdefault(key, []).append(text)
    parts = []
    for resource, scopes in by_resource.values():
        attributes = _dumps(key_values(resource.attributes if resource else {}))
        scope_parts = []
        for (name, version), items in scopes.items():
            scope = _dumps({"name": name, **({"version": version} if version else {})})
            scope_parts.append(f'{{"scope":{scope},"spans":[{",".join(items)}]}}')
        parts.append(f'{{"resource":{{"attributes":{attributes}}},"scopeSpans":[{",".join(scope_parts)}]}}')
    return f'{{"resourceSpans":[{",".join(parts)}]}}'


def encode_request(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """One ``ExportTraceServiceRequest`` in OTLP/JSON, spans grouped by resource and scope."""
    by_resource: dict[int, tuple[Any, dict[Any, list[dict[str, Any]]]]] = {}
    for span in spans:
        resource = span.resource
        entry = by_resource.setdefault(id(resource), (resource, {}))
        scope = span.instrumentation_scope
        key = (scope.name, scope.version or "") if scope is not None else ("", "")
        entry[1].setdefault(key, []).append(_span(span))
    resource_spans = []
    for resource, scopes in by_resource.values():
        resource_spans.append(
            {
                "resource": {"attributes": key_values(resource.attributes if resource else {})},
                "scopeSpans": [
                    {"scope": {"name": name, **({"version": version} if version else {})}, "spans": items}
                    for (name, version), items in scopes.items()
                ],
            }
        )
    return {"resourceSpans": resource_spans}
