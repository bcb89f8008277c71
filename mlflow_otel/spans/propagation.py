"""Incoming baggage, on the app thread: the root-span attributes a caller's
``MLFLOW_OTEL_PROPAGATE`` members become (``spans/fluent.py`` asks at each new local root), and the
W3C baggage names both sides use. MLflow's two distributed-tracing calls, which also mask outgoing
values with the default redaction policy, are ``tracing/distributed.py``, on the floor above the
processors.
"""

from __future__ import annotations

from typing import Optional

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context

from mlflow_otel import semconv as conv
from mlflow_otel._state import STATE

#: Baggage member names for what ``MLFLOW_OTEL_PROPAGATE`` lets travel.
BAGGAGE_SESSION = "mlflow.trace.session"
BAGGAGE_USER = "mlflow.trace.user"
BAGGAGE_TAG_PREFIX = "mlflow.traceTag."


def baggage_attributes(context: Optional[otel_context.Context] = None) -> dict[str, str]:
    """Root-span attributes from incoming baggage that ``MLFLOW_OTEL_PROPAGATE`` accepts (the
    callee's side): session, user, tags."""
    allowed = STATE.settings().propagate
    if not allowed:
        return {}
    members = otel_baggage.get_all(context)
    if not members:
        return {}
    attrs: dict[str, str] = {}
    for name, value in members.items():
        text = str(value)
        if name == BAGGAGE_SESSION and "session" in allowed:
            attrs[conv.TRACE_METADATA_PREFIX + conv.MLFLOW_SESSION_KEY] = text
            attrs[conv.SESSION_ID] = text
        elif name == BAGGAGE_USER and "user" in allowed:
            attrs[conv.TRACE_METADATA_PREFIX + conv.MLFLOW_USER_KEY] = text
            attrs[conv.USER_ID] = text
        elif name.startswith(BAGGAGE_TAG_PREFIX) and "tags" in allowed:
            attrs[conv.TRACE_TAG_PREFIX + name[len(BAGGAGE_TAG_PREFIX) :]] = text
    return attrs
