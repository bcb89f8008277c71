"""``mlflow-otel push`` beside a live export of the same workload, to the bench's OTLP receiver.

One run, one receiver (``bench/receiver.py``, its own process, decoding every request):

  live     the workload (3 spans per trace: a CHAIN root, a RETRIEVER, an LLM call) exported as it
           runs to the receiver over OTLP/HTTP: spans per second from the first span until the
           receiver has counted them all (the app thread, the processor chain and the export share
           the process, as in production);
  record   the same workload with no endpoint: the embedded default's file (and store);
  push     ``mlflow-otel push FILE --to http://127.0.0.1:PORT`` as a user runs it (a process of
           its own): its export phase (the rate it prints: decoding done, spans through the chain
           and the exporter until the receiver confirmed them) and the whole command (start,
           reading and decoding the file included), each as spans per second.

    .venv/bin/python bench/push.py [--spans 100000] [--protocol http/protobuf|grpc]

Prints a table and writes ``bench/results/push.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.run import Receiver  # noqa: E402

WORKLOAD = """
import sys, time
import mlflow_otel as mlflow
from mlflow_otel.entities import SpanType

@mlflow.trace(span_type=SpanType.RETRIEVER)
def retrieve(question):
    return [{"page_content": f"doc about {question}", "metadata": {"source": "kb", "page": 3}, "id": "d1"}]

@mlflow.trace(span_type=SpanType.LLM)
def answer(question, documents):
    return f"the answer to {question}"

@mlflow.trace
def pipeline(question):
    return answer(question, retrieve(question))

started = time.time()
for i in range(int(sys.argv[1])):
    pipeline(f"question {i}")
mlflow.flush_trace_async_logging(timeout_s=600)
print(started)
"""


def _count(rx: Receiver) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{rx.http}/", timeout=10) as response:
        return int(json.loads(response.read())["spans"])


def _wait(rx: Receiver, spans: int, quiet_s: float = 3.0) -> tuple[float, int]:
    """When the receiver counted its last span (time.time()) and how many: ``spans``, or fewer
    once nothing arrived for ``quiet_s``."""
    last, count = time.time(), _count(rx)
    while count < spans and time.time() - last < quiet_s:
        time.sleep(0.01)
        now = _count(rx)
        if now != count:
            last, count = time.time(), now
    return last, count


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    env.update(PYTHONPATH=str(ROOT), OTEL_SERVICE_NAME="bench", **extra)
    return env


def _endpoint(rx: Receiver, protocol: str) -> str:
    return f"http://127.0.0.1:{rx.grpc}" if protocol == "grpc" else f"http://127.0.0.1:{rx.http}/v1/traces"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--protocol", default="http/protobuf", choices=("http/protobuf", "grpc"))
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    traces = (args.spans + 2) // 3
    spans = traces * 3
    folder = tempfile.mkdtemp(prefix="mlflow-otel-push-")
    traces_file = os.path.join(folder, "traces.jsonl")
    rx = Receiver()
    try:
        rx.reset()
        live_env = _env(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=_endpoint(rx, args.protocol))
        live_env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = args.protocol
        # Queues that hold the whole run: the live rate is the export's, not what a full queue drops.
        live_env["MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE"] = str(spans * 2)
        live = subprocess.run(
            [sys.executable, "-c", WORKLOAD, str(traces)], env=live_env, capture_output=True, text=True
        )
        if live.returncode != 0:
            raise RuntimeError(live.stderr[-3000:])
        live_end, live_spans = _wait(rx, spans)
        live_s = live_end - float(live.stdout.split()[-1])

        record_env = _env(
            MLFLOW_OTEL_TRACES_FILE=traces_file, MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE=str(spans * 2)
        )
        recorded = subprocess.run(
            [sys.executable, "-c", WORKLOAD, str(traces)], env=record_env, capture_output=True, text=True
        )
        if recorded.returncode != 0:
            raise RuntimeError(recorded.stderr[-3000:])

        rx.reset()
        started = time.time()
        command = [
            sys.executable,
            "-m",
            "mlflow_otel",
            "push",
            traces_file,
            "--to",
            _endpoint(rx, args.protocol),
        ]
        if args.protocol == "grpc":
            command += ["--protocol", "grpc"]
        pushed = subprocess.run(command, env=_env(), capture_output=True, text=True)
        ended, push_spans = _wait(rx, spans)
        if pushed.returncode != 0:
            raise RuntimeError(pushed.stdout + pushed.stderr[-3000:])
        rate = re.search(r"\(([\d,]+) spans/s\)", pushed.stdout)
        results: dict[str, Any] = {
            "spans": spans,
            "protocol": args.protocol,
            "live export (app running)": live_spans / live_s,
            "live_delivered": live_spans,
            "push_delivered": push_spans,
            "push, export phase": float(rate.group(1).replace(",", "")) if rate else None,
            "push, whole command": push_spans / (ended - started),
            "file_bytes": os.path.getsize(traces_file),
            "push_summary": pushed.stdout.strip(),
        }
    finally:
        rx.stop()
    print(
        f"{spans:,} spans over {args.protocol}: live delivered {results['live_delivered']:,}, "
        f"push delivered {results['push_delivered']:,}"
    )
    for name in ("live export (app running)", "push, export phase", "push, whole command"):
        print(f"  {name:<28} {results[name]:>10,.0f} spans/s")
    os.makedirs(args.out, exist_ok=True)
    Path(args.out, "push.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
