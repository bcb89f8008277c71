"""Trimming: cap each attribute and each span by bytes, keeping JSON valid.

Budgets default so that any single span fits a 4 MiB gRPC request with room (1 MiB per attribute,
3 MiB per span); ``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`` (spec: a character limit on string
values) lowers the per-attribute cap. Our TracerProvider disables the SDK's own cut, which would
slice JSON mid-string; this processor applies the limit instead, inside the JSON.

A span already under budget is not touched at all (the exported span is the same object, so its
bytes are identical). Over budget, JSON values are cut *inside*: long strings are shortened, long
lists and objects lose their tail, deep nesting is cut, each cut marked in place; base64 images and
audio become a one-line summary. What was trimmed, with original and new sizes in bytes, is recorded
in the span attribute ``mlflow_otel.trimmed`` (JSON).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import Event

from mlflow_otel._serialize import summarise_blob
from mlflow_otel.otlp.protobuf import plain_span_class
from mlflow_otel.processors.base import SpanView

_NONE: dict[str, Any] = {}

DEFAULT_MAX_ATTRIBUTE_BYTES = 1024 * 1024
DEFAULT_MAX_SPAN_BYTES = 3 * 1024 * 1024
TRIMMED_KEY = "mlflow_otel.trimmed"


def _nbytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _cut_string(text: str, limit_bytes: int) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit_bytes:
        return text
    kept = raw[: max(0, limit_bytes)].decode("utf-8", "ignore")
    return f"{kept}…[truncated {len(raw) - len(kept.encode('utf-8', 'surrogatepass'))} bytes]"


def _shrink(node: Any, string_cap: int, item_cap: int, depth_cap: int, depth: int = 0) -> Any:
    if isinstance(node, str):
        blob = summarise_blob(node)
        if blob is not None:
            return blob
        return _cut_string(node, string_cap) if len(node) > string_cap // 4 else node
    if isinstance(node, (dict, list)) and depth >= depth_cap:
        return f"…[truncated {type(node).__name__} at depth {depth}]"
    if isinstance(node, dict):
        items = list(node.items())
        out = {k: _shrink(v, string_cap, item_cap, depth_cap, depth + 1) for k, v in items[:item_cap]}
        if len(items) > item_cap:
            out["…"] = f"[{len(items) - item_cap} more keys truncated]"
        return out
    if isinstance(node, list):
        out_list = [_shrink(v, string_cap, item_cap, depth_cap, depth + 1) for v in node[:item_cap]]
        if len(node) > item_cap:
            out_list.append(f"…[{len(node) - item_cap} more items truncated]")
        return out_list
    return node


def trim_json(text: str, budget: int) -> str:
    """``text`` cut to at most ``budget`` bytes; JSON stays valid JSON, anything else is cut."""
    try:
        doc = json.loads(text)
    except ValueError:
        blob = summarise_blob(text)
        return (
            blob if blob is not None and _nbytes(blob) <= budget else _cut_string(text, max(0, budget - 40))
        )
    string_cap, item_cap, depth_cap = max(64, budget // 2), 1000, 32
    for _ in range(40):
        candidate = _dumps(_shrink(doc, string_cap, item_cap, depth_cap))
        if _nbytes(candidate) <= budget:
            return candidate
        string_cap = max(16, string_cap // 2)
        item_cap = max(1, item_cap // 2)
        if string_cap == 16 and item_cap == 1:
            depth_cap -= 1
            if depth_cap < 1:
                break
    marker = _dumps(f"…[truncated: {_nbytes(text)} bytes did not fit {budget}]")
    return marker if _nbytes(marker) <= budget else '""'


def _size(value: Any) -> int:
    if isinstance(value, str):
        return _nbytes(value) if len(value) > 64 else len(value)
    if isinstance(value, (list, tuple)):
        return sum(_size(v) for v in value)
    return 8


class Trimmer:
    """Caps attributes (and event attributes) by bytes, then the whole span."""

    def __init__(self, max_attribute_bytes: int, max_span_bytes: int) -> None:
        self.max_attribute_bytes = max(64, max_attribute_bytes)
        self.max_span_bytes = max(self.max_attribute_bytes, max_span_bytes)

    def _over(self, value: Any) -> bool:
        # Cheap bound first: a str of n chars has at most 4n UTF-8 bytes.
        return (
            isinstance(value, str)
            and len(value) * 4 > self.max_attribute_bytes
            and _nbytes(value) > self.max_attribute_bytes
        )

    def screen(self, spans: Sequence[Any]) -> bool:
        """True when every span of one trace is under both budgets (``processors/base.py``): no
        events, and all their values together, at 4 bytes a character, fit one attribute's budget
        (which is at most the span's)."""
        chars = 0
        for span in spans:
            plain = plain_span_class(span.__class__)  # its fields, without a property call each
            if span._events if plain else span.events:
                return False
            for v in (span._attributes or _NONE if plain else span.attributes).values():
                kind = v.__class__
                if kind is str:
                    chars += len(v)
                elif kind is tuple or kind is list:
                    chars += sum(len(x) if x.__class__ is str else 8 for x in v)
                else:
                    chars += 8
        return chars * 4 <= self.max_attribute_bytes

    def __call__(self, span: SpanView) -> None:
        raw = span.raw_attributes
        events = span.events
        # Fast path: a character is at most 4 UTF-8 bytes, so a span whose strings are short in
        # characters is under budget without encoding anything.
        chars = longest = 0
        for v in raw.values():
            kind = v.__class__
            if kind is str:
                n = len(v)
                chars += n
                if n > longest:
                    longest = n
            elif kind is tuple or kind is list:  # homogeneous lists stay native (strings too)
                chars += sum(len(x) if x.__class__ is str else 8 for x in v)
            else:
                chars += 8
        if not events and chars * 4 <= self.max_span_bytes and longest * 4 <= self.max_attribute_bytes:
            return
        over = [k for k, v in raw.items() if self._over(v)]
        total = sum(_size(v) for v in raw.values())
        if events:
            total += sum(_size(v) for e in events for v in (e.attributes or {}).values())
        if (
            not over
            and total <= self.max_span_bytes
            and not any(self._over(v) for e in events for v in (e.attributes or {}).values())
        ):
            return
        record: dict[str, Any] = {}
        attrs = span.writable_attributes()
        existing = attrs.get(TRIMMED_KEY)
        if isinstance(existing, str):
            try:
                record = json.loads(existing)
            except ValueError:
                record = {}
        for key in over:
            self._trim_key(attrs, key, self.max_attribute_bytes, record)
        if events:
            span.set_events([self._trim_event(e, record) for e in events])
        # Then the span budget: halve the largest values until the span fits.
        for _ in range(64):
            events = span.events
            total = sum(_size(v) for v in attrs.values()) + sum(
                _size(v) for e in events for v in (e.attributes or {}).values()
            )
            if total <= self.max_span_bytes:
                break
            candidates = [(k, _size(v)) for k, v in attrs.items() if k != TRIMMED_KEY]
            if not candidates:
                break
            key, size = max(candidates, key=lambda kv: kv[1])
            event_bytes = total - sum(_size(v) for v in attrs.values())
            if event_bytes > size and events:
                keep = max(0, len(events) // 2)
                record["events"] = {
                    "dropped": record.get("events", {}).get("dropped", 0) + len(events) - keep
                }
                span.set_events(list(events)[:keep])
                continue
            if size <= 256:
                break
            self._trim_key(attrs, key, size // 2, record)
        if record:
            attrs[TRIMMED_KEY] = _dumps(record)

    @staticmethod
    def _trim_key(attrs: dict[str, Any], key: str, budget: int, record: dict[str, Any]) -> None:
        value = attrs[key]
        if isinstance(value, (list, tuple)):  # a native list: its head that fits, members whole
            kept, used = [], 0
            for member in value:
                used += _size(member)
                if used > budget:
                    break
                kept.append(member)
            original = record.get(key, {}).get("original_bytes", _size(value))
            attrs[key] = tuple(kept)
            new_bytes = _size(kept)
            record[key] = {"original_bytes": original, "bytes": new_bytes, "items": [len(kept), len(value)]}
            return
        if not isinstance(value, str):
            return
        original = record.get(key, {}).get("original_bytes", _nbytes(value))
        new = trim_json(value, budget)
        attrs[key] = new
        record[key] = {"original_bytes": original, "bytes": _nbytes(new)}

    def _trim_event(self, event: Event, record: dict[str, Any]) -> Event:
        attrs = event.attributes or {}
        over = [k for k, v in attrs.items() if self._over(v)]
        if not over:
            return event
        new_attrs = dict(attrs)
        for key in over:
            self._trim_key(
                new_attrs, key, self.max_attribute_bytes, record.setdefault("event_attributes", {})
            )
        return Event(event.name, new_attrs, event.timestamp)
