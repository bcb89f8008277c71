"""Bytes per trace for each conventions setting, and the same app traced Phoenix's own way.

The app is tests/test_phoenix.py's RAG app (a plain root, AGENT, RETRIEVER returning two MLflow
documents, two TOOLs one of which raises, an OpenAI chat call through ``mlflow_otel.openai.autolog()``
against the loopback fake tests/openai_server.py); ``--all-types`` adds one span of every other MLflow
type (16 spans). Each setting sends one trace to tests/otlp_receiver.py over OTLP/HTTP
(``OtlpDestination(semconv=...)``); the reference (tests/phoenix_reference_app.py, 6 spans) runs in the
Phoenix venv of tests/backends/install.sh. Printed per setting: the encoded size of the trace's spans
(OTLP protobuf ``Span`` messages, so the reference's one request per span does not count its resource
six times), the request bytes, and how many copies of the retrieved documents' text went.

    PYTHONPATH=. python bench/semconv_bytes.py [--all-types]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mlflow_otel as mlflow  # noqa: E402
from mlflow_otel import tracing  # noqa: E402
from mlflow_otel.destinations import OtlpDestination  # noqa: E402
from tests.backends import PHOENIX_VENV  # noqa: E402
from tests.openai_server import OpenAiServer  # noqa: E402
from tests.otlp_receiver import OtlpReceiver  # noqa: E402
from tests.test_phoenix import _rag_app  # noqa: E402

SETTINGS = (
    ("mlflow", False),
    ("mlflow,gen_ai", False),
    ("mlflow,gen_ai,openinference", False),  # the OTLP default
    ("openinference", False),
    ("gen_ai", False),
    ("gen_ai", True),
    ("gen_ai,openinference", False),
)
#: Text of the second document only: every copy of it is a copy of the retriever's output.
MARKER = "Shipping takes 5 days."


def _measure(receiver: OtlpReceiver, send) -> tuple[int, int, int, int]:
    """(spans, span bytes, request bytes, copies of MARKER) of what ``send()`` delivered."""
    before = len(receiver.received)
    send()
    deadline = time.monotonic() + 30
    got = receiver.received[before:]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = receiver.received[before:]
        if now and len(now) == len(got):
            break
        got = now
    spans = [s for r in got for rs in r.request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    copies = sum(r.request.SerializeToString().count(MARKER.encode()) for r in got)
    return len(spans), sum(s.ByteSize() for s in spans), sum(r.size for r in got), copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all-types", action="store_true", help="one span of every other MLflow type too")
    args = parser.parse_args()
    receiver = OtlpReceiver().start()
    endpoint = f"http://127.0.0.1:{receiver.http_port}/v1/traces"
    rows = []
    with OpenAiServer() as server:
        for semconv, capture in SETTINGS:
            os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = str(capture).lower()
            tracing.reset()
            tracing.set_destination(OtlpDestination(endpoint, semconv=semconv))

            def send() -> None:
                mlflow.openai.autolog()
                try:
                    _rag_app(server.base_url, args.all_types)("Can I return my order?")
                finally:
                    mlflow.openai.autolog(disable=True)
                mlflow.flush_trace_async_logging()

            label = f"ours, semconv={semconv}" + (", GenAI content opted in" if capture else "")
            rows.append((label, *_measure(receiver, send)))
        python = PHOENIX_VENV / "bin" / "python"
        if python.exists() and not args.all_types:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLFLOW_"))}
            app = [str(python), str(ROOT / "tests" / "phoenix_reference_app.py"), endpoint, "ref"]
            rows.append(
                (
                    "Phoenix-native (phoenix.otel + OpenInference)",
                    *_measure(receiver, lambda: subprocess.run([*app, server.base_url], env=env, check=True)),
                )
            )
    print(f"{'setting':60} {'spans':>5} {'span bytes':>10} {'request bytes':>13} {'doc copies':>10}")
    for label, spans, span_bytes, request_bytes, copies in rows:
        print(f"{label:60} {spans:5} {span_bytes:10} {request_bytes:13} {copies:10}")


if __name__ == "__main__":
    main()
