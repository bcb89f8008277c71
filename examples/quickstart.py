"""Quickstart: MLflow tracing code, with only the import changed.

Run it with no collector configured and the trace lands in ./mlflow-otel-traces.jsonl;
`mlflow-otel show` prints it. Set OTEL_EXPORTER_OTLP_ENDPOINT to send it to a collector instead.
"""

import mlflow_otel as mlflow
from mlflow_otel.entities import SpanType


@mlflow.trace(span_type=SpanType.RETRIEVER)
def retrieve(question: str) -> list[str]:
    return [f"doc about {word}" for word in question.split()[:2]]


@mlflow.trace(span_type=SpanType.LLM)
def generate(question: str, documents: list[str]) -> str:
    with mlflow.start_span(name="format_prompt", span_type=SpanType.PARSER) as span:
        prompt = f"Answer {question!r} using {len(documents)} documents."
        span.set_inputs({"question": question})
        span.set_outputs(prompt)
    return f"An answer built from: {prompt}"


@mlflow.trace(span_type=SpanType.AGENT)
def answer(question: str) -> str:
    mlflow.update_current_trace(tags={"environment": "quickstart"})
    return generate(question, retrieve(question))


if __name__ == "__main__":
    print(answer("What is OpenTelemetry?"))
