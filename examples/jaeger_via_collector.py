"""Exporting to Jaeger through a collector: the app speaks OTLP to a local agent, nothing else.

The app needs only the standard OTel variables; the agent (collector-config/agent.yaml) forwards
to a gateway or straight to Jaeger, which shows MLflow's attributes as searchable tags
(`mlflow.spanType=LLM`, `mlflow.traceTag.environment=demo`).

    JAEGER_ENDPOINT=127.0.0.1:4317  # Jaeger's OTLP/gRPC port, e.g. `docker run jaegertracing/jaeger`
    GATEWAY_ENDPOINT=$JAEGER_ENDPOINT GATEWAY_INSECURE=true AGENT_GRPC_ENDPOINT=127.0.0.1:14317 \\
      otelcol-mlflow --config collector-config/agent.yaml &
    OTEL_SERVICE_NAME=demo-app OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:14317 \\
      OTEL_EXPORTER_OTLP_PROTOCOL=grpc python examples/jaeger_via_collector.py
    # then open Jaeger's UI (port 16686) and search service "demo-app"
"""

import mlflow_otel as mlflow
from mlflow_otel.entities import SpanType


@mlflow.trace(span_type=SpanType.RETRIEVER)
def retrieve(question: str) -> list[str]:
    return ["OpenTelemetry is a CNCF project.", "Jaeger stores traces."]


@mlflow.trace(span_type=SpanType.LLM)
def generate(question: str, context: list[str]) -> str:
    mlflow.get_current_active_span().set_attributes(
        {"mlflow.chat.tokenUsage": {"input_tokens": 20, "output_tokens": 8, "total_tokens": 28}}
    )
    return f"{context[0]} (answering {question!r})"


@mlflow.trace(span_type=SpanType.AGENT)
def ask(question: str) -> str:
    mlflow.update_current_trace(tags={"environment": "demo"})
    return generate(question, retrieve(question))


if __name__ == "__main__":
    print(ask("Where do traces go?"))
    ok = mlflow.flush_trace_async_logging(timeout_s=10)
    print("exported" if ok else "export did not finish within 10 s (is the collector running?)")
