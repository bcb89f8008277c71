"""Distributed tracing: MLflow's two calls on OpenTelemetry's propagators (MLflow's module path,
``from mlflow.tracing.distributed import ...``).

The caller puts ``get_tracing_context_headers_for_http_request()`` on its request; the callee runs
its handler inside ``set_tracing_context_from_http_request_headers(headers)``. Both go through the
propagators OpenTelemetry is configured with (``OTEL_PROPAGATORS``: W3C ``tracecontext`` and
``baggage`` by default; ``b3`` / ``jaeger`` when their packages are installed), so OTel's own HTTP
instrumentations (requests, httpx, FastAPI) interoperate and need neither call.

Across processes each service assembles, samples and exports its own *fragment* of the trace (the
spans under its local root). The head sampler follows the caller's sampled flag (``ParentBased``),
so a trace is kept or dropped in every service alike.

Baggage is opt-in (``MLFLOW_OTEL_PROPAGATE``): the trace's session, user and tags named there travel
to downstream services as W3C baggage and are applied there to the fragment
(``spans/propagation.py``), since baggage crosses trust boundaries. A value the default redaction
policy would mask is never propagated, and the header is capped as the W3C Baggage spec prescribes
(8,192 bytes, 180 members).
"""

from __future__ import annotations

import contextlib
import logging
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any, Optional

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry import trace as otel_trace

from mlflow_otel import semconv as conv
from mlflow_otel._log import logger, warn_limited
from mlflow_otel._runtime import RUNTIME
from mlflow_otel._state import STATE
from mlflow_otel.processors.redaction import DefaultRedactor
from mlflow_otel.spans.propagation import BAGGAGE_SESSION, BAGGAGE_TAG_PREFIX, BAGGAGE_USER

__all__ = ["get_tracing_context_headers_for_http_request", "set_tracing_context_from_http_request_headers"]

#: The W3C Baggage limits (w3c.github.io/baggage, "Limits").
MAX_BAGGAGE_BYTES = 8192
MAX_BAGGAGE_MEMBERS = 180


def _case_insensitive(headers: Mapping[str, Any]) -> dict[str, str]:
    """Header names in lower case (frameworks capitalise them: ``Traceparent``); values as text."""
    out: dict[str, str] = {}
    for key, value in dict(headers).items():
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        out[str(key).lower()] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return out


def _trace_baggage() -> dict[str, str]:
    """The current trace's session, user and tags that ``MLFLOW_OTEL_PROPAGATE`` names, never a
    value the default redaction would mask."""
    allowed = STATE.settings().propagate
    if not allowed:
        return {}
    current = otel_trace.get_current_span().get_span_context()
    state = RUNTIME.registry.open_trace(current.trace_id) if current.is_valid else None
    root = state.root if state is not None else None
    if root is None:
        return {}
    attrs = dict(getattr(root.otel_span, "attributes", None) or {})
    members: dict[str, str] = {}
    wanted = {
        "session": [(BAGGAGE_SESSION, attrs.get(conv.TRACE_METADATA_PREFIX + conv.MLFLOW_SESSION_KEY))],
        "user": [(BAGGAGE_USER, attrs.get(conv.TRACE_METADATA_PREFIX + conv.MLFLOW_USER_KEY))],
        "tags": [
            (BAGGAGE_TAG_PREFIX + key[len(conv.TRACE_TAG_PREFIX) :], value)
            for key, value in attrs.items()
            if key.startswith(conv.TRACE_TAG_PREFIX)
        ],
    }
    redactor = _redactor(DefaultRedactor)
    for what, pairs in wanted.items():
        if what not in allowed:
            continue
        for name, value in pairs:
            if value is None:
                continue
            text = str(value)
            if redactor.mask_values(text) != text or redactor.block_key(name.rsplit(".", 1)[-1]):
                warn_limited("baggage", "Not propagating %s as baggage: redaction would mask it.", name)
                continue
            members[name] = text
    return members


_redactors: dict[type, Any] = {}


def _redactor(kind: type) -> Any:
    redactor = _redactors.get(kind)
    if redactor is None:
        redactor = _redactors[kind] = kind()
    return redactor


def _within_limits(members: dict[str, str]) -> dict[str, str]:
    kept: dict[str, str] = {}
    size = 0
    for name, value in members.items():
        entry = len(urllib.parse.quote(name)) + len(urllib.parse.quote(value)) + 2
        if len(kept) >= MAX_BAGGAGE_MEMBERS or size + entry > MAX_BAGGAGE_BYTES:
            warn_limited("baggage_size", "Baggage over the W3C limits: %s and later members dropped.", name)
            break
        kept[name] = value
        size += entry
    return kept


def get_tracing_context_headers_for_http_request() -> dict[str, str]:
    """Headers carrying the current trace context (W3C ``traceparent`` by default), for an outgoing
    HTTP request. Outside any span: an empty dict and a warning (MLflow's behaviour)."""
    try:
        current = otel_trace.get_current_span().get_span_context()
        if not current.is_valid:
            warn_limited(
                "propagation", "No active span found for fetching the trace context from; no headers."
            )
            return {}
        context = otel_context.get_current()
        for name, value in _within_limits(_trace_baggage()).items():
            context = otel_baggage.set_baggage(name, value, context)
        headers: dict[str, str] = {}
        propagate.inject(headers, context=context)
        return headers
    except Exception as exc:  # never into the application
        warn_limited("propagation", "Could not build tracing headers: %s", exc)
        return {}


@contextlib.contextmanager
def set_tracing_context_from_http_request_headers(headers: Mapping[str, Any]) -> Iterator[None]:
    """Run the block inside the caller's trace: spans started here are children of the caller's
    span. Header names in any case. Without a usable ``traceparent`` the block starts a fresh trace
    (said once at DEBUG); this never raises into the handler."""
    token: Optional[object] = None
    try:
        carrier = _case_insensitive(headers)
        context = propagate.extract(carrier)
        if not otel_trace.get_current_span(context).get_span_context().is_valid and logger.isEnabledFor(
            logging.DEBUG
        ):
            logger.debug(
                "No valid trace context in the request headers (traceparent=%r); the handler "
                "starts a new trace.",
                carrier.get("traceparent"),
            )
        token = otel_context.attach(context)
    except Exception as exc:
        warn_limited("propagation", "Could not read tracing headers: %s", exc)
    try:
        yield
    finally:
        if token is not None:
            with contextlib.suppress(Exception):
                otel_context.detach(token)  # type: ignore[arg-type]
