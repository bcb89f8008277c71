"""Trace and span ids in every form they take here, in one place.

OTel holds ids as integers (128-bit trace, 64-bit span). On the wire OTLP/JSON writes them as
lower-case hex (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding), while protobuf's
default JSON mapping (MLflow's REST API, a writer that ignored the OTLP rule) writes base64. MLflow
names a trace ``tr-`` + 32 hex digits (MLflow 3's ``TraceInfo.trace_id``) and accepts bare hex.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Optional, Union

TRACE_ID_PREFIX = "tr-"


def trace_hex(trace_id: int) -> str:
    """32 lower-case hex digits, as OTLP/JSON writes a trace id."""
    return format(trace_id, "032x")


def span_hex(span_id: int) -> str:
    """16 lower-case hex digits, as OTLP/JSON writes a span id."""
    return format(span_id, "016x")


def mlflow_trace_id(trace_id: int) -> str:
    """MLflow's trace id for an OTel trace id: ``tr-`` + 32 lower-case hex digits (MLflow 3)."""
    return TRACE_ID_PREFIX + format(trace_id, "032x")


def bare_hex(trace_id: str) -> str:
    """``tr-<hex>`` or bare hex -> the hex digits on the wire, lower-case."""
    text = trace_id.strip()
    return (text[3:] if text.startswith(TRACE_ID_PREFIX) else text).lower()


def parse_trace_id(value: Union[str, int, None]) -> Optional[int]:
    """``tr-<hex>``, bare hex or an int -> the int; None when it is none of these."""
    if isinstance(value, str) and value.startswith(TRACE_ID_PREFIX):
        value = value[len(TRACE_ID_PREFIX) :]
    return parse_span_id(value)


def parse_span_id(value: Union[str, int, None]) -> Optional[int]:
    """Hex or an int -> the int; None when it is neither."""
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    try:
        return int(value, 16)
    except ValueError:
        return None


def decode_wire_id(value: Any, width: int) -> str:
    """An id read from JSON as ``width`` lower-case hex digits: hex as OTLP/JSON says, or base64 as
    protobuf's JSON mapping writes it; anything else is returned as it was."""
    text = str(value or "")
    if len(text) == width:
        try:
            int(text, 16)
            return text.lower()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text
    return raw.hex() if len(raw) * 2 == width else text
