"""One trace across two services: a gateway calls an agent service over HTTP.

Run it as is: it starts the agent service (this file with ``--serve``) in a subprocess on a free
loopback port, then acts as the gateway and calls it twice:

1. with MLflow's two calls: ``get_tracing_context_headers_for_http_request()`` on the request,
   ``with set_tracing_context_from_http_request_headers(request.headers):`` in the handler;
2. with OpenTelemetry's HTTP instrumentations (httpx on the caller, FastAPI on the callee, both
   bound to mlflow-otel's pipeline with ``MLFLOW_USE_DEFAULT_TRACER_PROVIDER=false``): no call at
   all, the headers travel by themselves.

Each service exports its own fragment of the trace (to the embedded default sink, or wherever
``OTEL_EXPORTER_OTLP_ENDPOINT`` points, e.g. Jaeger); the fragments share the trace id and the
callee's spans are children of the caller's. With ``MLFLOW_OTEL_PROPAGATE=session,user`` the
gateway's session and user travel as W3C baggage and the agent's fragment carries them too. With
``MLFLOW_TRACKING_URI`` (and ``MLFLOW_EXPERIMENT_NAME``) both send to an MLflow server: one trace
each, the gateway's record, the agent's tags and metadata merged into it.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at run time.
import os
import socket
import subprocess
import sys
import time

# Join OpenTelemetry's global provider, so the HTTP instrumentations' spans and ours share one
# pipeline (this must be set before mlflow_otel is imported).
os.environ.setdefault("MLFLOW_USE_DEFAULT_TRACER_PROVIDER", "false")

import httpx

import mlflow_otel as mlflow
from mlflow_otel.entities import SpanType


def serve(port: int) -> None:
    """The agent service: FastAPI, one endpoint per way of receiving the context."""
    import uvicorn
    from fastapi import FastAPI, Request
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    app = FastAPI()

    @mlflow.trace(span_type=SpanType.AGENT)
    def answer(question: str) -> str:
        # Trace-level keys set in the callee: on an MLflow server they are merged into the record
        # the gateway sends (never overwriting the gateway's own keys).
        mlflow.update_current_trace(
            tags={"served_by": "agent-service", "tier": "agent"}, metadata={"agent.version": "2"}
        )
        with mlflow.start_span("retrieve", span_type=SpanType.RETRIEVER) as span:
            span.set_outputs(["doc-1"])
        return f"answer to {question}"

    @app.post("/manual")
    async def manual(request: Request) -> dict:
        body = await request.json()
        with mlflow.tracing.set_tracing_context_from_http_request_headers(request.headers):
            return {"answer": answer(body["question"])}

    @app.post("/auto")
    async def auto(request: Request) -> dict:
        body = await request.json()
        return {"answer": answer(body["question"])}  # the FastAPI server span is the parent

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    FastAPIInstrumentor.instrument_app(app, excluded_urls="health")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gateway(base: str) -> list[str]:
    """The calling service; returns the trace ids it produced."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    trace_ids = []

    @mlflow.trace(name="gateway_manual", span_type=SpanType.CHAIN)
    def call_manual(question: str) -> str:
        mlflow.update_current_trace(
            session_id="session-7", user="ann", client_request_id="req-manual", tags={"tier": "gateway"}
        )
        headers = mlflow.tracing.get_tracing_context_headers_for_http_request()
        trace_ids.append(mlflow.get_active_trace_id())
        return httpx.post(f"{base}/manual", json={"question": question}, headers=headers).json()["answer"]

    @mlflow.trace(name="gateway_auto", span_type=SpanType.CHAIN)
    def call_auto(question: str) -> str:
        trace_ids.append(mlflow.get_active_trace_id())
        with httpx.Client() as client:  # instrumented: traceparent injected by the instrumentation
            return client.post(f"{base}/auto", json={"question": question}).json()["answer"]

    HTTPXClientInstrumentor().instrument()
    try:
        print(call_manual("what is MLflow?"))
        print(call_auto("what is OpenTelemetry?"))
    finally:
        HTTPXClientInstrumentor().uninstrument()
    return trace_ids


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        os.environ.setdefault("OTEL_SERVICE_NAME", "agent-service")
        serve(int(sys.argv[2]))
        return
    port = _free_port()
    env = dict(os.environ, OTEL_SERVICE_NAME=os.environ.get("AGENT_SERVICE_NAME", "agent-service"))
    agent = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or agent.poll() is not None:
                raise SystemExit("the agent service did not start")
            time.sleep(0.1)
        for trace_id in gateway(base):
            print("trace", trace_id)
        mlflow.flush_trace_async_logging()
    finally:
        agent.terminate()  # SIGTERM: the agent service flushes its fragment as it stops
        agent.wait(30)


if __name__ == "__main__":
    main()
