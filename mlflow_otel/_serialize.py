"""Safe, bounded JSON encoding of inputs, outputs and attribute values (capture, on the app thread).

Tracing must never break or stall the traced application: whatever a user passes in, encoding
returns a valid JSON document and never raises, never recurses without bound, never emits
``NaN``/``Infinity`` (not JSON), and costs about what a value at the size limit costs, whatever the
size of the value (a 54 MB text or a dict of a million keys is cut on the way in, not encoded whole
and trimmed later):

* small values of JSON's own types take the C encoder directly (the common case);
* anything else is first copied into JSON-native form by a walk with a byte budget
  (``_Budget``): strings are cut with a marker (``…[truncated N chars]``), containers stop with a
  marker naming what was left out (the trimming processor's markers), depth is bounded, cycles are
  marked;
* objects are converted only by what their *class* defines (``model_dump``, ``tolist``,
  ``_asdict``, dataclass fields, ...), never through an instance's ``__getattr__``: a
  ``unittest.mock.Mock`` or a lazy proxy answers every attribute with a new object, so it becomes
  its short ``repr`` instead of an endless conversion;
* web-framework objects (a Starlette/FastAPI ``Request``, Flask/Werkzeug and Django requests,
  ``httpx``/``requests`` responses) become a small summary (method, URL path, query, status,
  headers as a dict, so the redaction policy masks secret headers by key); files, sockets, locks and
  clients become their ``repr``.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import hashlib
import io
import itertools
import json
import math
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import PurePath
from typing import Any, Optional

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


def _class_method(obj: Any, name: str) -> Any:
    """``obj.name`` if the object's *class* defines ``name`` (never an instance ``__getattr__``)."""
    if getattr(type(obj), name, None) is None:
        return None
    try:
        method = getattr(obj, name)
    except Exception:
        return None
    return method if callable(method) else None


#: Top-level packages whose request / response objects are summarised rather than walked.
_WEB_PACKAGES = frozenset(
    {"starlette", "fastapi", "werkzeug", "flask", "django", "httpx", "requests", "aiohttp"}
)


def _headers(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        items = headers.items() if hasattr(headers, "items") else headers
        for key, value in list(items)[:64]:
            out[str(key).lower()] = str(value)
    except Exception:
        pass
    return out


def _web_summary(obj: Any) -> Optional[dict[str, Any]]:
    """A request or response of a web framework as the few fields a trace needs."""
    package = (type(obj).__module__ or "").split(".", 1)[0]
    if package not in _WEB_PACKAGES:
        return None
    summary: dict[str, Any] = {"type": type(obj).__qualname__}
    for field_name in ("method", "status_code", "status"):
        try:
            value = getattr(obj, field_name, None)
        except Exception:
            value = None
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            summary[field_name] = value
    try:
        url = getattr(obj, "url", None)
        path = getattr(url, "path", None) if url is not None else getattr(obj, "path", None)
        if path is None and isinstance(url, str):
            path = url.split("?", 1)[0]
        if isinstance(path, str):
            summary["path"] = path
        query = getattr(url, "query", None) if url is not None else getattr(obj, "query_string", None)
        if isinstance(query, bytes):
            query = query.decode("latin-1")
        if query:
            summary["query"] = str(query)
    except Exception:
        pass
    try:
        headers = getattr(obj, "headers", None)
        if headers is None and hasattr(obj, "META"):  # Django
            headers = {k[5:].replace("_", "-"): v for k, v in obj.META.items() if k.startswith("HTTP_")}
        if headers is not None:
            summary["headers"] = _headers(headers)
    except Exception:
        pass
    return summary


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
    if isinstance(obj, type):
        return safe_text(obj)
    if dataclasses.is_dataclass(obj):
        # Shallow: the walk (or the encoder) recurses, and detects cycles, itself.
        return {f.name: getattr(obj, f.name, None) for f in dataclasses.fields(obj)}
    if isinstance(obj, _OPAQUE):
        return safe_text(obj)
    summary = _web_summary(obj)
    if summary is not None:
        return summary
    model_dump = _class_method(obj, "model_dump")  # pydantic v2
    if model_dump is not None:
        return model_dump()
    if getattr(type(obj), "__fields__", None) is not None:  # pydantic v1
        legacy = _class_method(obj, "dict")
        if legacy is not None:
            return legacy()
    asdict = _class_method(obj, "_asdict")  # namedtuples
    if asdict is not None:
        return asdict()
    tolist = _class_method(obj, "tolist")  # numpy arrays and scalars, torch tensors
    if tolist is not None:
        return tolist()
    to_dict = _class_method(obj, "to_dict")
    if to_dict is not None:
        return to_dict()
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, (list, tuple)):
        return list(obj)
    return safe_text(obj)


#: Objects that are handles, not data: recorded as their repr.
_OPAQUE: tuple[type, ...] = (io.IOBase, socket.socket, type(threading.Lock()), type(threading.RLock()))


_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=_convert)

try:  # the C encoder, built once (json.JSONEncoder.encode builds one per call)
    from json.encoder import c_make_encoder, encode_basestring

    # No cycle markers (``markers=None``): every caller hands over acyclic values of JSON's own
    # types (``_is_small``, ``_flat_size``), and a shared markers dict would keep the value of a
    # failed encoding (NaN) alive.
    _c_encoder: Any = (
        c_make_encoder(None, _convert, encode_basestring, None, ": ", ", ", False, False, False)
        if c_make_encoder is not None
        else None
    )
except ImportError:  # pragma: no cover - pure-Python json
    _c_encoder = None


#: The default capture budget: the trimming processor's per-attribute default (1 MiB).
DEFAULT_LIMIT = 1024 * 1024
_SCALARS = frozenset({int, float, bool, type(None)})
#: Values this small, of JSON's own types, are encoded directly without the budgeted walk.
_SMALL_NODES = 256
_SMALL_TEXT = 4096


def _is_small(obj: Any, _scalars: frozenset[type] = _SCALARS) -> bool:
    """True for a value of JSON's own types (dicts with str keys, lists, tuples, str, numbers, bool,
    None) with at most ``_SMALL_NODES`` members and no long string: the C encoder's cost is then
    bounded, so it takes the value as is. One pass; nested containers go on a stack."""
    kind = obj.__class__
    if kind is str:
        return len(obj) <= _SMALL_TEXT
    if kind in _scalars:
        return True
    nodes = 0
    stack: Optional[list[Any]] = None
    node = obj
    while True:
        kind = node.__class__
        if kind is dict:
            nodes += len(node)
            if nodes > _SMALL_NODES:
                return False
            for key, value in node.items():
                if key.__class__ is not str:
                    return False
                vkind = value.__class__
                if vkind is str:
                    if len(value) > _SMALL_TEXT:
                        return False
                elif vkind not in _scalars:
                    if vkind is not dict and vkind is not list and vkind is not tuple:
                        return False
                    if stack is None:
                        stack = [value]
                    else:
                        stack.append(value)
        elif kind is list or kind is tuple:
            nodes += len(node)
            if nodes > _SMALL_NODES:
                return False
            for value in node:
                vkind = value.__class__
                if vkind is str:
                    if len(value) > _SMALL_TEXT:
                        return False
                elif vkind not in _scalars:
                    if vkind is not dict and vkind is not list and vkind is not tuple:
                        return False
                    if stack is None:
                        stack = [value]
                    else:
                        stack.append(value)
        else:
            return False
        if not stack:
            return True
        node = stack.pop()


class _Budget:
    """The walk's state: bytes still to spend, the cap of one string, the containers on the path.

    The total is a quarter over the limit and one string gets at most half of it, so a long text
    does not starve the keys after it; small members after the budget ran out are still kept
    (``_SMALL_AFTER``), so the trimming processor (off the request path) can cut the document in a
    balanced way, and capture costs about two encodings of the limit at most.

    There is a time budget too (``CAPTURE_TIME_BUDGET_S``), checked at each container and each
    bulk chunk: a huge container of tiny members (a 1M-key dict) costs the request path a few
    milliseconds, not an encoding of the whole limit; what it left is marked as truncated.
    """

    __slots__ = ("active", "deadline", "left", "text_cap")

    def __init__(self, limit: int) -> None:
        self.left = limit + limit // 4
        self.text_cap = max(64, limit // 2)
        self.active: set[int] = set()
        self.deadline = time.perf_counter() + CAPTURE_TIME_BUDGET_S

    def out_of_time(self) -> bool:
        """True (and the byte budget spent) once the time budget has passed."""
        if time.perf_counter() > self.deadline:
            self.left = min(self.left, 0)
            return True
        return False


#: The request-path time one captured value may take before the rest is cut (issue: a 1M-key dict
#: must cost about what a value at the limit costs, under 10 ms with the input and output of a span).
CAPTURE_TIME_BUDGET_S = 0.004


#: After the budget ran out, this many more members of a container are looked at, and the small
#: ones kept (a short string, a number, a small JSON value): ``{"document": <huge>, "meta": {...}}``
#: keeps its ``meta``.
_SMALL_AFTER = 64
_SMALL_AFTER_BYTES = 256


def _small_leftover(value: Any) -> bool:
    kind = value.__class__
    if kind is str:
        return len(value) <= _SMALL_AFTER_BYTES
    if kind in _SCALARS:
        return True
    if (kind is dict or kind is list) and len(value) <= 8 and _is_small(value):
        try:
            return len(json.dumps(value)) <= _SMALL_AFTER_BYTES
        except (TypeError, ValueError):
            return False
    return False


_DATA_URI = re.compile(r"^data:([\w.+/-]+);base64,", re.ASCII)
_BASE64 = re.compile(r"^[A-Za-z0-9+/\r\n]+={0,2}$", re.ASCII)
#: Strings at least this long that are base64 get summarised when they are too long to keep.
_MIN_BLOB = 512


def summarise_blob(text: str) -> Optional[str]:
    """A short stand-in for a base64 image, audio or file (a ``data:`` URI, or a base64 payload of
    binary data), or None if ``text`` is not one: plain text is cut with a marker instead, so its
    head survives (a long run of ``abc`` or of ids is text, even if every character is in the
    base64 alphabet)."""
    if len(text) < _MIN_BLOB:
        return None
    head = _DATA_URI.match(text)
    if head:
        payload, kind = text[head.end() :], head.group(1)
    else:
        sample = text[:4096]
        binary_like = (
            any(c.isupper() for c in sample)
            and any(c.islower() for c in sample)
            and any(c.isdigit() for c in sample)
            and len(set(sample)) > 32
        )
        if not (binary_like and _BASE64.match(sample) and _BASE64.match(text)):
            return None
        payload, kind = text, "application/octet-stream"
    size = len(payload) * 3 // 4
    digest = hashlib.sha256(payload.encode("ascii", "ignore")).hexdigest()[:16]
    return f"<{kind} base64, {size} bytes, sha256:{digest}…>"


def _cut_text(text: str, budget: _Budget) -> str:
    size = len(text)
    if size <= budget.text_cap and size + 2 <= budget.left:
        budget.left -= size + 2
        return text
    blob = summarise_blob(text)
    if blob is not None:
        budget.left -= len(blob) + 2
        return blob
    keep = max(0, min(budget.text_cap, budget.left) - 40)
    budget.left -= keep + 40
    return f"{text[:keep]}…[truncated {size - keep} of {size} chars]"


#: Members taken at a time from a long container on the bulk path.
_CHUNK = 2048
#: JSON's flat types: a chunk of only these (and no long string) goes through the C encoder whole.
_FLAT = frozenset({str, int, float, bool, type(None)})


def _flat_size(values: list[Any]) -> int:
    """An upper bound of the chunk's memory (a proxy of its JSON size), or -1 if it is not flat.
    C-level passes: the chunk's types, and ``sys.getsizeof`` of each member. Records (small dicts
    of flat values, a list of rows) count as flat too, one row at a time."""
    types = set(map(type, values))
    if types <= _FLAT:
        return sum(map(sys.getsizeof, values))
    if types != {dict}:
        return -1
    size = 0
    for row in values:
        if len(row) > 32 or not set(map(type, row)) <= {str}:
            return -1
        row_values = list(row.values())
        if not set(map(type, row_values)) <= _FLAT:
            return -1
        size += sum(map(sys.getsizeof, row_values))
    return size


def _c_text(value: Any) -> Optional[str]:
    """JSON of a value of JSON's own types through the C encoder; None if it refuses (NaN)."""
    encoder = _c_encoder
    try:
        return "".join(encoder(value, 0)) if encoder is not None else _encoder.encode(value)
    except Exception:
        return None


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return encode_basestring(str.__str__(key))
    if key is None or isinstance(key, (bool, int, float)):
        name = json.dumps(key) if not isinstance(key, float) or math.isfinite(key) else str(key)
        return encode_basestring(name)
    return encode_basestring(safe_text(key))


def _bulk(items: Iterator[tuple[Any, Any]], total: int, out: list[str], budget: _Budget) -> tuple[int, bool]:
    """Emit whole flat chunks of a long dict while they fit the budget, each encoded once by the C
    encoder. Returns how many items were taken and whether anything was emitted."""
    taken, emitted = 0, False
    while taken < total and budget.left > 0 and not budget.out_of_time():
        chunk = dict(itertools.islice(items, _CHUNK))
        if not chunk:
            break
        keys_flat = set(map(type, chunk)) <= {str}
        size = _flat_size(list(chunk.values())) if keys_flat else -1
        text = _c_text(chunk) if 0 <= size <= 4 * budget.left + _SMALL_TEXT else None
        if text is not None and len(text) <= budget.left:
            if len(text) > 2:
                out.append((", " if emitted else "") + text[1:-1])
                emitted = True
            budget.left -= len(text)
            taken += len(chunk)
            continue
        for key, value in chunk.items():  # the chunk that crosses the budget: one by one
            if budget.left <= 0:
                break
            out.append((", " if emitted else "") + _key_text(key) + ": ")
            budget.left -= 4
            _emit(value, budget, 1, out)
            emitted = True
            taken += 1
        break
    return taken, emitted


def _bulk_list(obj: Any, out: list[str], budget: _Budget) -> int:
    """The list counterpart of ``_bulk``: whole flat slices while they fit."""
    taken, total = 0, len(obj)
    while taken < total and budget.left > 0 and not budget.out_of_time():
        chunk = list(obj[taken : taken + _CHUNK])
        size = _flat_size(chunk)
        text = _c_text(chunk) if 0 <= size <= 4 * budget.left + _SMALL_TEXT else None
        if text is None or len(text) > budget.left:  # the rest one by one, cut at the budget
            break
        if len(text) > 2:
            out.append((", " if taken else "") + text[1:-1])
        budget.left -= len(text)
        taken += len(chunk)
    return taken


def _emit_text(text: str, budget: _Budget, out: list[str]) -> None:
    out.append(encode_basestring(_cut_text(text, budget)))


def _emit(obj: Any, budget: _Budget, depth: int, out: list[str]) -> None:
    """Append the JSON of ``obj`` to ``out`` within the budget, encoding each piece once; never
    raises. Strings are cut with a marker, containers stop with one, depth and cycles are bounded,
    objects are converted as ``_convert`` says."""
    kind = type(obj)
    if kind is str:
        out.append(encode_basestring(_cut_text(obj, budget)))
        return
    if obj is None:
        out.append("null")
        budget.left -= 4
        return
    if kind is bool:
        out.append("true" if obj else "false")
        budget.left -= 5
        return
    if isinstance(obj, int) and not isinstance(obj, bool):
        text = int.__repr__(int(obj))
        out.append(text)
        budget.left -= len(text)
        return
    if isinstance(obj, float):
        value = float(obj)
        if math.isfinite(value):
            text = float.__repr__(value)
        else:
            text = '"NaN"' if math.isnan(value) else ('"Infinity"' if value > 0 else '"-Infinity"')
        out.append(text)
        budget.left -= len(text)
        return
    if isinstance(obj, str):
        _emit_text(str.__str__(obj), budget, out)
        return
    if depth >= MAX_DEPTH:
        out.append('"<max depth exceeded>"')
        return
    ident = id(obj)
    if ident in budget.active:
        out.append('"<cycle>"')
        return
    budget.active.add(ident)
    mark = len(out)
    budget.out_of_time()
    try:
        if isinstance(obj, dict):
            total = len(obj)
            items = iter(list(obj.items()) if total < 4096 else obj.items())
            out.append("{")
            kept, emitted = 0, False
            if total > _CHUNK:  # long and flat: whole chunks through the C encoder
                kept, emitted = _bulk(items, total, out, budget)
            looked_after = 0
            for key, value in items:
                if budget.left <= 0:  # out of budget: keep the small members of the next few
                    looked_after += 1
                    if looked_after > _SMALL_AFTER:
                        break
                    text = _c_text(value) if _small_leftover(value) else None
                    if text is not None:
                        out.append((", " if emitted else "") + _key_text(key) + ": " + text)
                        emitted = True
                        kept += 1
                    continue
                key_text = _key_text(key)
                out.append((", " if emitted else "") + key_text + ": ")
                budget.left -= len(key_text) + 4
                _emit(value, budget, depth + 1, out)
                emitted = True
                kept += 1
            if kept < total:
                marker = encode_basestring(f"[{total - kept} more keys truncated]")
                out.append((", " if emitted else "") + '"…": ' + marker)
            out.append("}")
            return
        if isinstance(obj, (list, tuple)):
            total = len(obj)
            out.append("[")
            done = _bulk_list(obj, out, budget) if total > _CHUNK else 0
            for item in itertools.islice(obj, done, None):
                if budget.left <= 0:
                    break
                if done:
                    out.append(", ")
                budget.left -= 2
                _emit(item, budget, depth + 1, out)
                done += 1
            if done < total:
                marker = encode_basestring(f"…[{total - done} more items truncated]")
                out.append((", " if done else "") + marker)
            out.append("]")
            return
        try:
            converted = _convert(obj)
        except Exception:
            converted = safe_text(obj)
        if converted is obj:
            _emit_text(safe_text(obj), budget, out)
        else:
            _emit(converted, budget, depth + 1, out)
    except Exception:
        del out[mark:]  # whatever this value had emitted is incomplete: its repr instead
        _emit_text(safe_text(obj), budget, out)
    finally:
        budget.active.discard(ident)


def _emitted(obj: Any, limit: int) -> str:
    pieces: list[str] = []
    try:
        _emit(obj, _Budget(limit), 0, pieces)
        return "".join(pieces)
    except Exception:  # pragma: no cover - the emitter guards every step
        return json.dumps(safe_text(obj))


def dumps(obj: Any, limit: int = DEFAULT_LIMIT) -> str:
    """Encode ``obj`` as JSON, exactly once, within about ``limit`` bytes. Never raises; always
    returns valid JSON; the cost is bounded by the limit, not by the size of ``obj``.

    The text is MLflow's: ``json.dumps``' default separators (``", "``, ``": "``), not ASCII-escaped,
    as MLflow writes span inputs and outputs (``dump_span_attribute_value``), so ``trace.data.request``,
    ``mlflow.traceInputs`` and MLflow's UI show the text MLflow would. The C encoder takes the
    separators as arguments: the same cost as compact text, one byte more per member."""
    if obj.__class__ is str:
        if len(obj) <= limit:
            return encode_basestring(obj)
        return encode_basestring(_cut_text(obj, _Budget(limit)))  # the head, a marker, the size
    if not _is_small(obj):
        return _emitted(obj, limit)
    text = _c_text(obj)  # NaN and the like: None, then the emitter's markers below
    if text is not None:
        return text
    return _emitted(obj, limit)


_scan_once = json.decoder.JSONDecoder().scan_once  # the C scanner json.loads ends up in
_scan_string = json.decoder.scanstring


def loads_or_raw(text: Any) -> Any:
    """Decode JSON written by :func:`dumps`; give back the raw value if it is not JSON.

    The C scanner is called directly (``json.loads`` spends most of a short text's time in its
    Python layers); whatever it does not take whole (whitespace around the value, trailing text,
    a BOM) goes through ``json.loads``, so the result is always ``json.loads``' own."""
    if text.__class__ is not str:
        if not isinstance(text, str):
            return text
    else:
        try:
            value, end = _scan_string(text, 1) if text[:1] == '"' else _scan_once(text, 0)
            if end == len(text):
                return value
        except (StopIteration, ValueError):
            pass
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
