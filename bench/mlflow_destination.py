"""The MLflow destination: sustained traces per second into a real MLflow 3.18 server, and HTTP
requests per trace, beside mlflow-tracing 3.17.2 sending the same workload to the same server.

Workload: ``--traces`` production-shaped requests, each a trace of three spans (AGENT root, RETRIEVER
and CHAT_MODEL children) with ``client_request_id``, tags, session and user, made as fast as one
thread makes them. The clock stops when the server holds every trace (``SearchTracesV3`` count),
so the figure is end to end: spans, records, the server's writes.

Configurations:
  ours               the MLflow destination: OTLP spans, then one StartTraceV3 record per trace,
                     RECORD_CONCURRENCY records of a batch at once (keep-alive sessions)
  ours records=1     the same, one record at a time
  ours spans only    OTLP to the server's /v1/traces with no record (what it cost before: no
                     client_request_id, custom previews or metadata)
  mlflow-tracing     MLflow's SDK (async trace logging, its default), the same server

Requests per trace are counted by a pass-through proxy in front of the server (a separate, shorter
run per configuration, so the throughput figures do not pay for the proxy).

    .venv/bin/python bench/mlflow_destination.py --traces 1000

Prints a table and writes ``bench/results/mlflow_destination.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(ROOT))

from tests.backends import MlflowServer, free_port  # noqa: E402

MLFLOW_TRACING = Path.home() / ".cache" / "mlflow-otel-backends" / "mlflow-tracing-venv" / "bin" / "python"

WORKLOAD = r"""
import os, sys, time
MODE = os.environ["BENCH_MODE"]
if MODE == "mlflow":
    import mlflow
    from mlflow.entities import SpanType
else:
    import mlflow_otel as mlflow
    from mlflow_otel.entities import SpanType
    from mlflow_otel.pipeline import route
    route.RECORD_CONCURRENCY = int(os.environ.get("BENCH_RECORD_CONCURRENCY", route.RECORD_CONCURRENCY))
    if MODE == "spans":
        from mlflow_otel import tracing
        from mlflow_otel.destinations import OtlpDestination
        tracing.set_destination(OtlpDestination(
            os.environ["BENCH_URI"] + "/v1/traces",
            headers=(("x-mlflow-experiment-id", os.environ["BENCH_EXPERIMENT_ID"]),),
        ))

mlflow.set_tracking_uri(os.environ["BENCH_URI"])
mlflow.set_experiment(experiment_id=os.environ["BENCH_EXPERIMENT_ID"])

@mlflow.trace(name="agent", span_type=SpanType.AGENT)
def agent(i):
    mlflow.update_current_trace(
        client_request_id=f"req-{i}", tags={"environment": "production", "tier": str(i % 3)},
        metadata={"mlflow.trace.session": f"s-{i % 50}", "mlflow.trace.user": f"u-{i % 20}"},
    )
    with mlflow.start_span("retrieve", span_type=SpanType.RETRIEVER) as span:
        span.set_inputs({"query": f"question {i}"})
        span.set_outputs(["doc-1", "doc-2"])
    with mlflow.start_span("llm", span_type=SpanType.CHAT_MODEL) as span:
        span.set_inputs({"messages": [{"role": "user", "content": f"question {i}"}]})
        span.set_outputs({"choices": [{"message": {"role": "assistant", "content": f"answer {i}"}}]})
    return f"answer {i}"

n = int(os.environ["BENCH_TRACES"])
started = time.perf_counter()
for i in range(n):
    agent(i)
app_s = time.perf_counter() - started
if MODE == "mlflow":
    mlflow.flush_trace_async_logging()
else:
    mlflow.flush_trace_async_logging(timeout_s=900)  # records wait on the server: allow for it
print(app_s, time.perf_counter() - started)
"""


def _count(uri: str, experiment_id: str) -> int:
    body = {
        "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}],
        "max_results": 500,
    }  # fmt: skip  (each run has an experiment of its own)
    total, token = 0, None
    while True:
        if token:
            body["page_token"] = token
        request = urllib.request.Request(
            f"{uri}/api/3.0/mlflow/traces/search", data=json.dumps(body).encode(),
            headers={"content-type": "application/json"}, method="POST",
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as response:
            data = json.loads(response.read())
        total += len(data.get("traces") or [])
        token = data.get("next_page_token")
        if not token:
            return total


def _experiment(uri: str, name: str) -> str:
    request = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/experiments/create", data=json.dumps({"name": name}).encode(),
        headers={"content-type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["experiment_id"]


class CountingProxy:
    """Forwards every request to the server and counts them by method and path."""

    def __init__(self, upstream: str) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.counts[f"{self.command} {self.path.split('?')[0]}"] += 1
                request = urllib.request.Request(upstream + self.path, data=body, method=self.command)
                for name, value in self.headers.items():
                    if name.lower() not in ("host", "content-length", "connection"):
                        request.add_header(name, value)
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status, kind, data = (
                            response.status,
                            response.headers.get("content-type"),
                            response.read(),
                        )
                except urllib.error.HTTPError as exc:
                    status, kind, data = exc.code, exc.headers.get("content-type"), exc.read()
                self.send_response(status)
                self.send_header("content-type", kind or "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _forward

            def log_message(self, *args: object) -> None:
                return None

        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run(config: str, python: str, env_extra: dict[str, str], uri: str, traces: int, workdir: Path) -> dict:
    experiment_id = _experiment(uri, f"{config}-{time.time_ns()}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    env.update(
        BENCH_URI=uri, BENCH_EXPERIMENT_ID=experiment_id, BENCH_TRACES=str(traces), PYTHONPATH=str(ROOT),
        MLFLOW_OTEL_TRACES_FILE=str(workdir / f"{config}.jsonl"), **env_extra,
    )  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run([python, "-c", WORKLOAD], env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{config}: {result.stderr[-3000:]}")
    app_s, _flushed_s = (float(x) for x in result.stdout.strip().splitlines()[-1].split())
    # Done when the server holds every trace, or its count stopped growing for 30 s (an SDK that
    # dropped traces); the clock stops at the last trace stored.
    stored, last_growth = _count(uri, experiment_id), time.perf_counter()
    while stored < traces and time.perf_counter() - last_growth < 30:
        time.sleep(0.5)
        now = _count(uri, experiment_id)
        if now > stored:
            stored, last_growth = now, time.perf_counter()
    total_s = last_growth - started
    return {
        "stored": stored,
        "app_s": app_s,
        "end_to_end_s": total_s,
        "traces_per_s": stored / total_s,
        "app_us_per_trace": app_s / traces * 1e6,
    }


CONFIGS = {
    "ours": ("ours", {"BENCH_MODE": "ours"}),
    "ours records=1": ("ours", {"BENCH_MODE": "ours", "BENCH_RECORD_CONCURRENCY": "1"}),
    "ours spans only": ("ours", {"BENCH_MODE": "spans"}),
    "mlflow-tracing": ("mlflow", {"BENCH_MODE": "mlflow"}),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=1000)
    parser.add_argument("--count-traces", type=int, default=200, help="traces of the request-count run")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mlflow-dest-"))
    server = MlflowServer(workdir).start()
    pythons = {"ours": sys.executable, "mlflow": str(MLFLOW_TRACING)}
    results: dict[str, dict] = {}
    try:
        for name in args.configs.split(","):
            python_key, env = CONFIGS[name]
            results[name] = run(name, pythons[python_key], env, server.uri, args.traces, workdir)
            proxy = CountingProxy(server.uri)
            try:
                run(name, pythons[python_key], env, proxy.uri, args.count_traces, workdir)
            finally:
                proxy.stop()
            results[name]["requests"] = dict(proxy.counts)
            results[name]["requests_per_trace"] = (
                sum(
                    count
                    for path, count in proxy.counts.items()
                    if "experiments" not in path and "search" not in path
                )
                / args.count_traces
            )
            print(name, json.dumps(results[name]), flush=True)
    finally:
        server.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mlflow_destination.json").write_text(
        json.dumps({"traces": args.traces, "results": results}, indent=1)
    )
    print(f"\n{args.traces} traces of 3 spans into MLflow 3.18 (one server, --workers 1, SQLite):")
    print("| configuration | traces/s end to end | app-thread µs/trace | requests/trace | stored |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['traces_per_s']:,.0f} | {r['app_us_per_trace']:,.0f} | "
            f"{r['requests_per_trace']:.2f} | {r['stored']} |"
        )


if __name__ == "__main__":
    main()
