"""Safe JSON encoding of inputs, outputs and attribute values.

Tracing must never break the traced application (docs/architecture.md): whatever a user passes in,
encoding returns a valid JSON document and never raises, never recurses without bound, and never
emits ``NaN``/``Infinity`` (not JSON). The fast path is the C encoder; only values it rejects
(cycles, non-finite floats, exotic keys, objects whose ``__str__`` raises, very deep nesting) take
the slower sanitising walk.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

#: Nesting deeper than this is cut with a marker in the sanitising walk.
MAX_DEPTH = 64
#: Bytes up to this length that decode as UTF-8 are kept as text; others are summarised.
_MAX_INLINE_BYTES = 256


def safe_text(obj: Any) -> str:
    """``str(obj)``, else ``repr(obj)``, else a marker naming the type: never raises."""
    for render in (str, repr):
        try:
            text = render(obj)
            if isinstance(text, str):
                return text
        except Exception:
            continue
    try:
        name = type(obj).__qualname__
    except Exception:
        name = "object"
    return f"<unserializable {name}>"


def _summarise_bytes(data: bytes | bytearray | memoryview) -> str:
    raw = bytes(data)
    if len(raw) <= _MAX_INLINE_BYTES:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return f"<{len(raw)} bytes>"


def _convert(obj: Any) -> Any:
    """One step of conversion of a non-JSON-native object to something the encoder handles."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _summarise_bytes(obj)
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, datetime.timedelta):
        return obj.total_seconds()
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (decimal.Decimal, uuid.UUID, PurePath, complex)):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        # Shallow: the encoder recurses (and detects cycles) itself.
        return {f.name: getattr(obj, f.name, None) for f in dataclasses.fields(obj)}
    model_dump = getattr(obj, "model_dump", None)  # pydantic v2
    if callable(model_dump) and not isinstance(obj, type):
        return model_dump()
    legacy_dict = getattr(obj, "dict", None)  # pydantic v1
    if callable(legacy_dict) and hasattr(obj, "__fields__") and not isinstance(obj, type):
        return legacy_dict()
    tolist = getattr(obj, "tolist", None)  # numpy arrays and scalars, torch tensors
    if callable(tolist) and not isinstance(obj, type):
        return tolist()
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, (list, tuple)):
        return list(obj)
    return safe_text(obj)


_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_convert)

try:  # the C encoder, built once (json.JSONEncoder.encode builds one per call)
    from json.encoder import c_make_encoder, encode_basestring

    def _make_c_encoder() -> Any:
        return c_make_encoder({}, _convert, encode_basestring, None, ":", ",", False, False, False)

    _c_encoder: Any = _make_c_encoder() if c_make_encoder is not None else None
except ImportError:  # pragma: no cover - pure-Python json
    _c_encoder = None


def _sanitise(obj: Any, depth: int, active: set[int]) -> Any:
    """A JSON-native copy of ``obj``: cycles and excess depth become markers; never raises."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj if not isinstance(obj, int) or isinstance(obj, bool) else int(obj)
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if depth >= MAX_DEPTH:
        return "<max depth exceeded>"
    ident = id(obj)
    if ident in active:
        return "<cycle>"
    active.add(ident)
    try:
        if isinstance(obj, dict):
            out = {}
            for key, value in list(obj.items()):
                if isinstance(key, str):
                    name = key
                elif key is None or isinstance(key, (bool, int, float)):
                    name = json.dumps(key) if not isinstance(key, float) or math.isfinite(key) else str(key)
                else:
                    name = safe_text(key)
                out[name] = _sanitise(value, depth + 1, active)
            return out
        if isinstance(obj, (list, tuple)):
            return [_sanitise(item, depth + 1, active) for item in list(obj)]
        try:
            converted = _convert(obj)
        except Exception:
            converted = safe_text(obj)
        if converted is obj:
            return safe_text(obj)
        return _sanitise(converted, depth + 1, active)
    except Exception:
        return safe_text(obj)
    finally:
        active.discard(ident)


def dumps(obj: Any) -> str:
    """Encode ``obj`` as compact JSON, exactly once. Never raises; always returns valid JSON."""
    global _c_encoder
    if obj.__class__ is str:
        return encode_basestring(obj)
    encoder = _c_encoder
    if encoder is not None:
        try:
            return "".join(encoder(obj, 0))
        except Exception:
            _c_encoder = _make_c_encoder()  # its cycle markers may be left dirty by the failure
    else:
        try:
            return _encoder.encode(obj)
        except Exception:  # cycles, NaN, unsortable keys, RecursionError, a raising __str__ ...
            pass
    try:
        return _encoder.encode(_sanitise(obj, 0, set()))
    except Exception:
        return json.dumps(safe_text(obj))


def loads_or_raw(text: Any) -> Any:
    """Decode JSON written by :func:`dumps`; give back the raw value if it is not JSON."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def to_attribute_value(value: Any) -> Any:
    """A value OTel accepts as an attribute: primitives and homogeneous primitive lists stay native
    (so backends can filter on them), anything else becomes a JSON string."""
    if isinstance(value, (str, bool, int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value
    if isinstance(value, (list, tuple)) and value:
        first = type(value[0])
        if first in (str, bool, int, float) and all(type(v) is first for v in value):
            return list(value)
    return dumps(value)
