"""Redaction and trimming: secrets never leave the process, huge payloads never stall the exporter.

Both run on the export worker, never on the request path. The policy is the one the gateway
collector loads (collector-config/redaction-policy.yaml, the Collector redaction processor's
schema); the SDK also applies it inside JSON inputs/outputs. On top of it, the built-in defaults
mask API keys, bearer tokens, card numbers and more. Trimming caps attributes and spans by bytes,
keeps JSON valid, summarises base64 images and records what it cut.

    pip install 'mlflow-otel[yaml]'
    python examples/redaction_and_trimming.py && mlflow-otel show -v
"""

import base64
import os
from pathlib import Path

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel.entities import SpanType

POLICY = Path(__file__).resolve().parent.parent / "collector-config" / "redaction-policy.yaml"

tracing.configure(
    redaction=str(POLICY),  # the shared policy file (a dict works too)
    max_attribute_bytes=64 * 1024,  # per attribute (default 1 MiB)
)


@mlflow.trace(span_type=SpanType.LLM)
def call_model(prompt: str, api_key: str, image_png: str) -> dict:
    return {"answer": f"seen {len(image_png)} base64 chars", "contact": "write to ann@corp.example"}


if __name__ == "__main__":
    image = base64.b64encode(os.urandom(300_000)).decode()  # ~400 KB "image" in the inputs
    print(call_model("describe this", "sk-proj-" + "x" * 40, "data:image/png;base64," + image))
