"""OTLP protobuf encoding written straight to bytes.

The OTel project's encoder (``opentelemetry-exporter-otlp-proto-common``) builds a tree of protobuf
message objects and then serialises it: in CPython that is about a third of the CPU a span costs
end to end. This encoder writes the same wire format directly (field numbers from
``opentelemetry/proto/trace/v1/trace.proto`` and ``common/v1/common.proto``), caching the parts that
repeat (resource and scope blocks, attribute keys). The output parses to a message equal to the
OTel encoder's for the same spans; ``tests/test_encoding.py`` checks that on arbitrary spans.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

_pack_d = struct.Struct("<d").pack
_pack_q = struct.Struct("<Q").pack
_pack_i = struct.Struct("<I").pack

#: SpanFlags: the context's is_remote flag is known (0x100); the parent is remote (0x200).
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_MASK64 = (1 << 64) - 1


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    if value < 0x4000:  # two bytes: most span and attribute lengths
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _ld(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    n = len(payload)
    return tag + (bytes((n,)) if n < 0x80 else _varint(n)) + payload


def _utf8(text: str) -> bytes:
    # Protobuf strings must be valid UTF-8; a lone surrogate (possible in a Python str) is replaced
    # rather than failing the whole batch.
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def any_value(value: Any) -> bytes:
    """An ``AnyValue`` message body."""
    cls = value.__class__
    if cls is str:
        return _ld(b"\x0a", _utf8(value))
    if cls is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if cls is int:
        return b"\x18" + _varint(value & _MASK64)
    if cls is float:
        return b"\x21" + _pack_d(value)
    if cls is list or cls is tuple:
        return _ld(b"\x2a", b"".join(_ld(b"\x0a", any_value(v)) for v in value))
    if cls is bytes or cls is bytearray:
        return _ld(b"\x3a", bytes(value))
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _ld(b"\x0a", _utf8(str(value)))
    if isinstance(value, int):
        return b"\x18" + _varint(int(value) & _MASK64)
    if isinstance(value, float):
        return b"\x21" + _pack_d(float(value))
    if isinstance(value, (list, tuple)):
        return _ld(b"\x2a", b"".join(_ld(b"\x0a", any_value(v)) for v in value))
    return _ld(b"\x0a", _utf8(str(value)))


_key_cache: dict[str, bytes] = {}


def _key(key: str) -> bytes:
    encoded = _key_cache.get(key)
    if encoded is None:
        encoded = _ld(b"\x0a", _utf8(key))
        if len(_key_cache) < 4096:
            _key_cache[key] = encoded
    return encoded


_SMALL = [bytes((i,)) for i in range(128)]
#: Encoded KeyValue fields of short string and int values, by tag, key, then value (nested: no
#: tuple to build and hash per attribute). Values of a key repeat across spans (span types, function
#: names, "ok", log levels) or within a trace only (its request id, an input passed down): a key
#: keeps its last ``_PAIR_PER_KEY`` values (first in, first out), and all are dropped when the
#: cache holds ``_PAIR_LIMIT`` keys.
_pair_cache: dict[bytes, dict[str, dict[Any, bytes]]] = {}
_pair_keys = [0]
_PAIR_TEXT = 48
_PAIR_PER_KEY = 64
_PAIR_LIMIT = 256


def _pair_slot(pairs: dict[str, dict[Any, bytes]], key: str) -> dict[Any, bytes]:
    """A new key's values (the cache emptied first when it holds ``_PAIR_LIMIT`` keys)."""
    if _pair_keys[0] >= _PAIR_LIMIT:
        for other in list(_pair_cache.values()):  # (a snapshot: other threads encode too)
            other.clear()
        _pair_keys[0] = 0
    _pair_keys[0] += 1
    known = pairs[key] = {}
    return known


def key_values(tag: bytes, attributes: Any) -> bytes:
    """Repeated ``KeyValue`` fields with the given tag (the hot loop: string values inlined, each
    field joined once from its parts)."""
    if not attributes:
        return b""
    out = []
    append = out.append
    small = _SMALL
    cache = _key_cache
    pairs = _pair_cache.get(tag)
    if pairs is None:
        pairs = _pair_cache[tag] = {}
    for k, v in attributes.items():
        cls = v.__class__
        reused = cls is int or (cls is str and len(v) <= _PAIR_TEXT)
        known = None
        if reused:
            # Only exact ints and strs are looked up, so True (== 1) never finds the field of 1.
            known = pairs.get(k)
            if known is not None:
                field = known.get(v)
                if field is not None:
                    append(field)
                    continue
        kb = cache.get(k)
        if kb is None:
            kb = _key(k)
        if cls is str:
            try:
                vb = v.encode("utf-8")
            except UnicodeEncodeError:
                vb = v.encode("utf-8", "replace")
            n = len(vb)
            nb = small[n] if n < 128 else _varint(n)
            m = n + 1 + len(nb)  # the AnyValue: string_value's tag, length, bytes
            mb = small[m] if m < 128 else _varint(m)
            kv = len(kb) + 1 + len(mb) + m
            field = b"".join((tag, small[kv] if kv < 128 else _varint(kv), kb, b"\x12", mb, b"\x0a", nb, vb))
        else:
            av = any_value(v)
            m = len(av)
            kv = kb + b"\x12" + (small[m] if m < 128 else _varint(m)) + av
            n = len(kv)
            field = tag + (small[n] if n < 128 else _varint(n)) + kv
        append(field)
        if reused:
            if known is None:
                known = _pair_slot(pairs, k)
            elif len(known) >= _PAIR_PER_KEY:
                try:  # noqa: SIM105  (the oldest value out; another thread may have taken it)
                    del known[next(iter(known))]
                except (KeyError, RuntimeError, StopIteration):
                    pass
            known[v] = field
    return b"".join(out)


#: ReadableSpan's properties the encoder reads: a class that overrides none of them (the lean
#: tracer's spans, the SDK's, a processor's copy) is read from its fields directly, without a
#: property call, a MappingProxy and isinstance checks per span.
_READS = ("context", "parent", "name", "kind", "start_time", "end_time", "attributes", "events", "links",
          "status", "dropped_attributes", "dropped_events", "dropped_links", "resource",
          "instrumentation_scope")  # fmt: skip
_plain_classes: dict[type, bool] = {}
_KIND_VALUE = {kind: kind.value + 1 for kind in SpanKind}  # OTLP SpanKind = API kind + 1
_CODE = {code: (b"\x18" + bytes((code.value,)) if code.value else b"") for code in StatusCode}
_FLAGS_LOCAL = b"\x85\x01" + _pack_i(_HAS_IS_REMOTE)
_FLAGS_REMOTE = b"\x85\x01" + _pack_i(_HAS_IS_REMOTE | _IS_REMOTE)
_STATUS_OK = b"\x7a\x02" + _CODE[StatusCode.OK]
#: Encoded name fields: span names repeat (one per traced function); cleared when full.
_name_cache: dict[str, bytes] = {}
_NAME_LIMIT = 4096


def plain_span_class(cls: type) -> bool:
    """True for a ``ReadableSpan`` class that overrides none of the properties the encoder reads:
    its spans can be read from their fields directly (also ``processors/base.py``'s ``SpanView``)."""
    plain = _plain_classes.get(cls)
    if plain is None:
        plain = issubclass(cls, ReadableSpan) and all(
            getattr(cls, name, None) is getattr(ReadableSpan, name) for name in _READS
        )
        _plain_classes[cls] = plain
    return plain


def _dropped(container: Any) -> int:
    cls = container.__class__
    return 0 if cls is dict or cls is tuple or cls is list else getattr(container, "dropped", 0) or 0


#: What a destination adds to a span as it is encoded (``outward.Conventions.overlay``): given the
#: span, its attributes and name, None (the span goes as it is) or the attributes to send and the
#: keys to add after them. The encoder writes both straight to bytes: no copy of the span.
Overlay = Callable[[Any, Mapping[str, Any], str], Optional[tuple[Mapping[str, Any], Mapping[str, Any]]]]


def _span(span: ReadableSpan, overlay: Optional[Overlay] = None) -> bytes:
    if plain_span_class(span.__class__):
        attributes = span._attributes
        events = span._events
        links = span._links
        name = span._name
        extra = None
        if overlay is not None and attributes:
            changed = overlay(span, attributes, name)
            if changed is not None:
                attributes, extra = changed
        return _encode(
            span._context, span._parent, name, span._kind, span._start_time, span._end_time,
            attributes, extra, _dropped(span._attributes) if span._attributes else 0, events or (),
            _dropped(events) if events else 0, links or (), _dropped(links) if links else 0, span._status,
        )  # fmt: skip
    attributes, name, extra = span.attributes, span.name, None
    if overlay is not None and attributes:
        changed = overlay(span, attributes, name)
        if changed is not None:
            attributes, extra = changed
    return _encode(
        span.context, span.parent, name, span.kind, span.start_time, span.end_time, attributes, extra,
        span.dropped_attributes, span.events, span.dropped_events, span.links, span.dropped_links,
        span.status,
    )  # fmt: skip


#: The status last encoded and its field, one tuple (swapped whole: other threads encode too):
#: spans share their status objects (the tracer's OK).
_last_status: list[tuple[Any, bytes]] = [(None, b"")]
#: The trace id last encoded and its field: a trace's spans are encoded one after another.
_last_trace: list[tuple[int, bytes]] = [(-1, b"")]
#: span_id (field 2), with parent_span_id (field 4): big-endian 8 bytes each, one pack.
_pack_id = struct.Struct(">BBQ").pack
_pack_ids = struct.Struct(">BBQBBQ").pack
#: kind (field 6, OTLP value = API value + 1), start and end times (fixed64 fields 7, 8), one pack.
_pack_kind_times = struct.Struct("<BBBQBQ").pack


def _status(status: Any) -> bytes:
    description = status.description
    code = status.status_code
    if code is StatusCode.OK and not description:
        return _STATUS_OK
    code_bytes = _CODE.get(code)
    if code_bytes is None:
        code_bytes = b"\x18" + bytes((code.value,)) if code.value else b""
    return _ld(b"\x7a", (_ld(b"\x12", _utf8(description)) if description else b"") + code_bytes)


def _encode(
    ctx: Any, parent: Any, name: str, kind: Any, start: Any, end: Any, attributes: Any, extra: Any,
    dropped_attrs: int, events: Any, dropped_events: int, links: Any, dropped_links: int, status: Any,
) -> bytes:  # fmt: skip
    """A span's fields (in field order but for trace_state, which any order allows: proto3)."""
    name_field = _name_cache.get(name)
    if name_field is None:
        name_field = _ld(b"\x2a", _utf8(name))
        if len(_name_cache) >= _NAME_LIMIT:
            _name_cache.clear()
        _name_cache[name] = name_field
    trace_id = ctx.trace_id
    last = _last_trace[0]
    if last[0] == trace_id:
        trace_field = last[1]
    else:
        trace_field = b"\x0a\x10" + trace_id.to_bytes(16, "big")
        _last_trace[0] = (trace_id, trace_field)
    kind_value = _KIND_VALUE.get(kind)
    if kind_value is None:
        kind_value = kind.value + 1
    parts = [
        trace_field,
        _pack_ids(0x12, 8, ctx.span_id, 0x22, 8, parent.span_id)
        if parent is not None
        else _pack_id(0x12, 8, ctx.span_id),
        name_field,
        _pack_kind_times(0x30, kind_value, 0x39, start or 0, 0x41, end or 0),
    ]
    append = parts.append
    trace_state = ctx.trace_state
    if trace_state is not None and len(trace_state):
        append(_ld(b"\x1a", _utf8(trace_state.to_header())))
    if attributes:
        append(key_values(b"\x4a", attributes))
    if extra:
        append(key_values(b"\x4a", extra))
    if dropped_attrs:
        append(b"\x50" + _varint(dropped_attrs))
    for event in events:
        body = (
            b"\x09"
            + _pack_q(event.timestamp)
            + _ld(b"\x12", _utf8(event.name))
            + key_values(b"\x1a", event.attributes)
        )
        append(_ld(b"\x5a", body))
    if dropped_events:
        append(b"\x60" + _varint(dropped_events))
    for link in links:
        lctx = link.context
        body = b"\x0a\x10" + lctx.trace_id.to_bytes(16, "big") + b"\x12\x08" + lctx.span_id.to_bytes(8, "big")
        if lctx.trace_state:
            body += _ld(b"\x1a", _utf8(lctx.trace_state.to_header()))
        body += key_values(b"\x22", link.attributes)
        body += b"\x35" + _pack_i(_HAS_IS_REMOTE | (_IS_REMOTE if lctx.is_remote else 0))
        append(_ld(b"\x6a", body))
    if dropped_links:
        append(b"\x70" + _varint(dropped_links))
    known = _last_status[0]
    if status is known[0]:
        append(known[1])
    else:
        field = _status(status)
        _last_status[0] = (status, field)
        append(field)
    append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
    return b"".join(parts)


_resource_cache: dict[int, tuple[Any, bytes]] = {}
_scope_cache: dict[int, tuple[Any, bytes]] = {}


def _resource(resource: Any) -> bytes:
    cached = _resource_cache.get(id(resource))
    if cached is not None and cached[0] is resource:
        return cached[1]
    body = _ld(b"\x0a", key_values(b"\x0a", resource.attributes if resource is not None else {}))
    if resource is not None and getattr(resource, "schema_url", ""):
        body += _ld(b"\x1a", _utf8(resource.schema_url))
    if len(_resource_cache) > 64:
        _resource_cache.clear()
    _resource_cache[id(resource)] = (resource, body)
    return body


def _scope(scope: Any) -> bytes:
    cached = _scope_cache.get(id(scope))
    if cached is not None and cached[0] is scope:
        return cached[1]
    if scope is None:
        body = _ld(b"\x0a", b"")
    else:
        inner = _ld(b"\x0a", _utf8(scope.name)) if scope.name else b""
        if scope.version:
            inner += _ld(b"\x12", _utf8(scope.version))
        inner += key_values(b"\x1a", getattr(scope, "attributes", None))
        body = _ld(b"\x0a", inner)
        if getattr(scope, "schema_url", ""):
            body += b""  # the schema url goes after the spans; see encode_request
    if len(_scope_cache) > 256:
        _scope_cache.clear()
    _scope_cache[id(scope)] = (scope, body)
    return body


def _header(tag: bytes, size: int) -> bytes:
    return tag + (_SMALL[size] if size < 128 else _varint(size))


def encode_request(spans: Sequence[ReadableSpan], overlay: Optional[Overlay] = None) -> bytes:
    """A serialised ``ExportTraceServiceRequest`` for ``spans``, grouped by resource and scope;
    ``overlay``: what the destination adds to each span (``Overlay``). The spans' fields are joined
    once, into the request: each enclosing message's length is summed, not its bytes copied."""
    groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    last_resource = last_scope = encoded = None
    small = _SMALL
    for span in spans:
        if plain_span_class(span.__class__):
            resource, scope = span._resource, span._instrumentation_scope
        else:
            resource, scope = span.resource, span.instrumentation_scope
        if encoded is None or resource is not last_resource or scope is not last_scope:
            entry = groups.get(id(resource))
            if entry is None:
                entry = groups[id(resource)] = (resource, {})
            scoped = entry[1].get(id(scope))
            if scoped is None:
                scoped = entry[1][id(scope)] = (scope, [])
            encoded, last_resource, last_scope = scoped[1], resource, scope
        body = _span(span, overlay)  # the span field's tag and length, then its body
        n = len(body)
        encoded.append(b"\x12" + (small[n] if n < 128 else _varint(n)))
        encoded.append(body)
    out: list[bytes] = []
    for resource, scopes in groups.values():
        resource_body = _resource(resource)
        blocks: list[tuple[bytes, list[bytes], bytes]] = []
        resource_size = len(resource_body)
        for scope, encoded in scopes.values():
            schema = getattr(scope, "schema_url", "") if scope is not None else ""
            head, tail = _scope(scope), (_ld(b"\x1a", _utf8(schema)) if schema else b"")
            size = len(head) + sum(map(len, encoded)) + len(tail)
            blocks.append((_header(b"\x12", size) + head, encoded, tail))
            resource_size += len(blocks[-1][0]) - len(head) + size
        out.append(_header(b"\x0a", resource_size))
        out.append(resource_body)
        for head, encoded, tail in blocks:
            out.append(head)
            out += encoded
            out.append(tail)
    return b"".join(out)
