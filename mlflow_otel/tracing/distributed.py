"""``mlflow_otel.tracing.distributed``: MLflow's module path of its distributed-tracing calls
(``from mlflow.tracing.distributed import ...``); the implementation is ``spans/propagation.py``."""

from __future__ import annotations

from mlflow_otel.spans.propagation import (
    get_tracing_context_headers_for_http_request,
    set_tracing_context_from_http_request_headers,
)

__all__ = ["get_tracing_context_headers_for_http_request", "set_tracing_context_from_http_request_headers"]
