"""SDK processes for the scale-out tests (tests/test_scale_out.py): real apps, several processes,
forked workers, each exporting over OTLP/gRPC to its own agent collector.

Roles (``python tests/scale_out_workload.py <role> ...``):

* ``backend``: an HTTP service. Each request carries W3C ``traceparent`` (OTel's propagator, as any
  instrumented client sends it); the service continues the caller's trace, so one trace has spans
  from two processes that leave through two agents and two load balancers. Its LLM span carries an
  API key the app does not redact (the gateway must).
* ``frontend``: a pre-fork server. The master traces its start-up, forks workers, and each worker
  serves requests that call the backend.
* ``load``: forked workers emitting traces of a fixed shape, flat out or paced (throughput and
  gateway-failure runs).

Every process writes ``<out>/<role>-<pid>.json``: its SDK counters (``mlflow_otel.tracing.stats()``
after a flush), its CPU time, and one record per trace it started or continued (trace id, spans it
ended, whether a span failed, when the trace started, a sequence number), so the test can account
for every span end to end.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import resource
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry import trace as otel_trace

import mlflow_otel as mlflow


def _trace_id() -> str:
    return format(otel_trace.get_current_span().get_span_context().trace_id, "032x")


class Ledger:
    """What this process traced, written once at the end (after the SDK flushed)."""

    def __init__(self, out: Path, role: str) -> None:
        self.out, self.role = out, role
        self.traces: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.started = time.time()

    def record(self, trace_id: str, spans: int, error: bool, **extra: Any) -> None:
        with self.lock:
            entry = self.traces.setdefault(trace_id, {"spans": 0, "error": False, "t": time.time()})
            entry["spans"] += spans
            entry["error"] = entry["error"] or error
            entry.update(extra)

    def write(self, flushed: bool) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        data = {
            "role": self.role,
            "pid": os.getpid(),
            "flushed": flushed,
            "started": self.started,
            "finished": time.time(),
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "stats": mlflow.tracing.stats(),
            "traces": self.traces,
        }
        path = self.out / f"{self.role}-{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)


def _finish(ledger: Ledger) -> None:
    ledger.write(mlflow.flush_trace_async_logging(timeout_s=60))


def _fork_workers(count: int, work: Callable[[int], None]) -> list[int]:
    """Fork ``count`` children running ``work(index)``; return the ones that failed."""
    children = []
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                work(index)
            except BaseException as exc:  # report and exit: a child must never return to the caller
                sys.stderr.write(f"worker {index} failed: {exc!r}\n")
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # the worker flushed and wrote its ledger; skip the master's atexit hooks
        children.append(pid)
    return [pid for pid in children if os.waitpid(pid, 0)[1] != 0]


# --- backend: an HTTP service continuing its callers' traces ------------------------------------------
def backend(args: argparse.Namespace) -> None:
    ledger = Ledger(Path(args.out), "backend")

    @mlflow.trace(span_type="RETRIEVER")
    def retrieve(question: str, shard: int) -> list[str]:
        return [f"doc-{shard}-{len(question)}"]

    @mlflow.trace(span_type="LLM")
    def generate(question: str, docs: list[str], api_key: str, fail: bool) -> str:
        span = mlflow.get_current_active_span()
        span.set_attribute("llm.api_key", api_key)
        span.set_attribute("note", f"called with {api_key}")
        if fail:
            raise RuntimeError("provider returned 503")
        return f"answer to {question} from {len(docs)} docs"

    @mlflow.trace(span_type="CHAIN")
    def answer(question: str, shards: int, fail: bool) -> str:
        docs = [d for shard in range(shards) for d in retrieve(question, shard)]
        return generate(question, docs, args.secret, fail)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def do_POST(self) -> None:
            if self.path == "/stop":
                self._reply(200, b"{}")
                threading.Thread(target=server.shutdown, daemon=True).start()
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            caller = propagate.extract(self.headers)  # case-insensitive, as HTTP headers are
            trace_id = format(otel_trace.get_current_span(caller).get_span_context().trace_id, "032x")
            token = otel_context.attach(caller)
            try:
                status, text = 200, answer(body["question"], body["shards"], body["fail"])
            except RuntimeError as exc:
                status, text = 500, str(exc)
            finally:
                otel_context.detach(token)
            ledger.record(trace_id, 2 + body["shards"], status != 200)
            self._reply(status, json.dumps({"answer": text}).encode())

        def _reply(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("listening", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    _finish(ledger)


# --- frontend: a pre-fork server whose workers call the backend ---------------------------------------
def frontend(args: argparse.Namespace) -> None:
    out = Path(args.out)

    @mlflow.trace(span_type="CHAIN")
    def master_startup() -> str:
        return "app loaded"

    @mlflow.trace(span_type="PARSER")
    def plan(question: str) -> int:
        return 1 + len(question) % 3

    @mlflow.trace(span_type="CHAIN")
    def call_backend(question: str, shards: int, fail: bool) -> str:
        headers = {"Content-Type": "application/json"}
        propagate.inject(headers)  # W3C traceparent of this span: the backend continues the trace
        payload = json.dumps({"question": question, "shards": shards, "fail": fail}).encode()
        request = urllib.request.Request(f"{args.backend}/ask", payload, headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())["answer"]
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"backend said {exc.code}") from None

    def worker(index: int) -> None:
        ledger = Ledger(out, "frontend")

        @mlflow.trace(name="handle_request", span_type="AGENT")
        def handle_request(n: int) -> str:
            trace_id = _trace_id()
            question = f"worker {index} question {n}" + "?" * (n % 5)
            shards = plan(question)
            backend_fails = n % 5 == 1
            failed = True
            try:
                reply = call_backend(question, shards, backend_fails)
                if n % 7 == 3:
                    raise ValueError("could not render the reply")
                failed = False
                return reply
            finally:
                ledger.record(trace_id, 3, failed, worker=index, seq=n)

        for n in range(args.requests):
            try:
                handle_request(n)
            except (RuntimeError, ValueError):
                pass
        _finish(ledger)

    master = Ledger(out, "frontend-master")
    startup_id = ""

    @mlflow.trace(name="startup", span_type="CHAIN")
    def startup() -> None:
        nonlocal startup_id
        startup_id = _trace_id()
        master_startup()

    startup()  # the SDK's pipeline runs in the master before it forks, as with gunicorn --preload
    master.record(startup_id, 2, False)
    failed = _fork_workers(args.workers, worker)
    _finish(master)
    if failed:
        sys.exit(f"workers failed: {failed}")


# --- load: forked workers emitting traces of a fixed shape --------------------------------------------
def load(args: argparse.Namespace) -> None:
    out = Path(args.out)
    payload = "x" * args.payload

    @mlflow.trace(span_type="TOOL")
    def step(n: int, text: str) -> int:
        return n + len(text)

    current: dict[str, str] = {}

    @mlflow.trace(span_type="AGENT")
    def request(worker: int, seq: int, fail: bool) -> int:
        current["trace_id"] = _trace_id()
        mlflow.get_current_active_span().set_attributes({"load.worker": worker, "load.seq": seq})
        total = sum(step(i, payload) for i in range(args.children))
        if fail:
            raise RuntimeError("request failed")
        return total

    def worker(index: int) -> None:
        ledger = Ledger(out, "load")
        interval = 1.0 / args.rate if args.rate else 0.0
        start = time.monotonic()
        for seq in range(args.traces):
            if interval:
                delay = start + seq * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            fail = args.errors_every > 0 and seq % args.errors_every == 0
            try:
                request(index, seq, fail)
            except RuntimeError:
                pass
            ledger.record(current["trace_id"], 1 + args.children, fail, worker=index, seq=seq)
        _finish(ledger)

    failed = _fork_workers(args.workers, worker)
    if failed:
        sys.exit(f"workers failed: {failed}")


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    b = roles.add_parser("backend")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--secret", required=True)
    f = roles.add_parser("frontend")
    f.add_argument("--backend", required=True)
    f.add_argument("--workers", type=int, default=3)
    f.add_argument("--requests", type=int, default=30)
    ld = roles.add_parser("load")
    ld.add_argument("--workers", type=int, default=2)
    ld.add_argument("--traces", type=int, default=1000, help="per worker")
    ld.add_argument("--children", type=int, default=6, help="child spans per trace")
    ld.add_argument("--payload", type=int, default=200, help="bytes of input per child span")
    ld.add_argument("--rate", type=float, default=0.0, help="traces/s per worker; 0: flat out")
    ld.add_argument("--errors-every", type=int, default=0, help="every n-th trace fails; 1: all")
    for sub in (b, f, ld):
        sub.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    {"backend": backend, "frontend": frontend, "load": load}[args.role](args)


if __name__ == "__main__":
    main()
