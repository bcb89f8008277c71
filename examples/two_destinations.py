"""Routing: traces of two endpoints go to two destinations, from one process.

A public endpoint's traces go to the operations backend (an OTel Collector), an internal
evaluation endpoint's to an MLflow experiment. `trace_destination=` on the entry point routes a
whole trace (MLflow's parameter); `tracing.set_destination(dest, context_local=True)` routes
whatever runs in the current context (a request handler, say). Each destination has its own queue,
so a slow one never holds the other back.

Destinations here are two files so the script runs anywhere; in production they would be e.g.
    OtlpDestination("http://otel-agent:4318/v1/traces")
    MlflowExperimentLocation(experiment_id="42", tracking_uri="http://mlflow:5000")

    python examples/two_destinations.py && mlflow-otel show --file public-traces.jsonl
"""

import os

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel.destinations import FileDestination
from mlflow_otel.entities import SpanType

PUBLIC = FileDestination(os.environ.get("PUBLIC_TRACES", "public-traces.jsonl"))
INTERNAL = FileDestination(os.environ.get("INTERNAL_TRACES", "internal-traces.jsonl"))


@mlflow.trace(span_type=SpanType.TOOL)
def lookup(item: str) -> str:
    return f"{item}: in stock"


@mlflow.trace(span_type=SpanType.AGENT, trace_destination=PUBLIC)
def public_endpoint(item: str) -> str:
    return lookup(item)


def internal_endpoint(case: str) -> str:
    tracing.set_destination(INTERNAL, context_local=True)  # this handler's context only
    try:
        with mlflow.start_span("evaluate", span_type=SpanType.EVALUATOR) as span:
            span.set_inputs({"case": case})
            verdict = lookup(case)
            span.set_outputs(verdict)
            return verdict
    finally:
        tracing.set_destination(None, context_local=True)


if __name__ == "__main__":
    print(public_endpoint("widget"))
    print(internal_endpoint("regression-17"))
