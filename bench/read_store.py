"""The read API on the embedded local store, beside ``mlflow.search_traces`` on MLflow's default local
store (``sqlite:///mlflow.db``), with the same traces.

1. Our SDK traces ``--traces`` requests (an AGENT root with a RETRIEVER and a CHAT_MODEL child; tags
   ``customer`` = one of 1,000, ``environment``; session and user) to the default destination: the
   OTLP/JSON file and the local store beside it (``records/local.py``).
2. Ours, in a fresh process: ``get_trace`` of the latest trace, a tag search returning 100 traces
   (``tags.customer = 'c-42'``), a search newest-first with ``max_results=100``, the first read.
3. The same traces, read back from our store, are written into MLflow 3.18's SQLite store (its
   ``log_spans``, in batches) and MLflow measures the same calls with ``mlflow.get_trace`` /
   ``mlflow.search_traces`` in its own venv (``bench/read_store_mlflow.py``).

    .venv/bin/python bench/read_store.py --traces 100000    # targets: get_trace < 50 ms, tag search < 1 s

Prints a table and writes ``bench/results/read_store.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
MLFLOW_PYTHON = Path.home() / ".cache" / "mlflow-otel-backends" / "mlflow-venv" / "bin" / "python"

POPULATE = r"""
import sys, time
import mlflow_otel as mlflow
from mlflow_otel.entities import SpanType

@mlflow.trace(name="agent", span_type=SpanType.AGENT)
def agent(i):
    mlflow.update_current_trace(
        tags={"customer": f"c-{i % 1000}", "environment": "prod" if i % 2 else "dev"},
        session_id=f"s-{i % 5000}", user=f"u-{i % 300}", client_request_id=f"req-{i}",
    )
    with mlflow.start_span("retrieve", span_type=SpanType.RETRIEVER) as span:
        span.set_inputs({"query": f"question {i}"})
        span.set_outputs([f"doc-{i % 97}", f"doc-{i % 89}"])
    with mlflow.start_span("llm", span_type=SpanType.CHAT_MODEL) as span:
        span.set_inputs({"messages": [{"role": "user", "content": f"question {i}"}]})
        span.set_outputs({"choices": [{"message": {"role": "assistant", "content": f"answer {i}"}}]})
    return f"answer {i}"

n = int(sys.argv[1])
started = time.perf_counter()
for i in range(n):
    agent(i)
    if i % 5000 == 4999:
        mlflow.flush_trace_async_logging(timeout_s=120)  # keep the queues short: a steady stream
assert mlflow.flush_trace_async_logging(timeout_s=300)
print(time.perf_counter() - started, mlflow.get_last_active_trace_id())
"""

MEASURE = r"""
import json, statistics, sys, time
started = time.perf_counter()
import mlflow_otel as mlflow
latest = sys.argv[1]
out = {}
t = time.perf_counter(); trace = mlflow.get_trace(latest); out["first_get_trace_ms"] = (time.perf_counter() - t) * 1000
assert trace is not None and len(trace.data.spans) == 3
runs = []
for _ in range(20):
    t = time.perf_counter(); mlflow.get_trace(latest); runs.append((time.perf_counter() - t) * 1000)
out["get_trace_ms"] = statistics.median(runs)
runs = []
for _ in range(5):
    t = time.perf_counter()
    found = mlflow.search_traces(filter_string="tags.customer = 'c-42'", return_type="list")
    runs.append((time.perf_counter() - t) * 1000)
assert len(found) == int(sys.argv[2]) // 1000, len(found)
out["tag_search_ms"] = statistics.median(runs)
out["tag_search_hits"] = len(found)
runs = []
for _ in range(5):
    t = time.perf_counter()
    df = mlflow.search_traces(filter_string="tags.customer = 'c-42'")
    runs.append((time.perf_counter() - t) * 1000)
out["tag_search_dataframe_ms"] = statistics.median(runs)
runs = []
for _ in range(5):
    t = time.perf_counter()
    page = mlflow.search_traces(max_results=100, return_type="list")
    runs.append((time.perf_counter() - t) * 1000)
out["newest_100_ms"] = statistics.median(runs)
runs = []
for _ in range(5):
    t = time.perf_counter()
    hits = mlflow.search_traces(filter_string="metadata.`mlflow.trace.user` = 'u-7' AND trace.status = 'OK'", max_results=100, return_type="list")
    runs.append((time.perf_counter() - t) * 1000)
out["user_and_status_100_ms"] = statistics.median(runs)
print(json.dumps(out))
"""

DUMP = r"""
import json, sys
from mlflow_otel.records.local import LocalStore, store_path
store = LocalStore(store_path(sys.argv[1]))
token = None
with open(sys.argv[2], "w") as fh:
    while True:
        page, token = store.search_traces(None, None, 2000, ["timestamp_ms ASC"], token)
        for trace in page:
            fh.write(json.dumps(trace.to_dict(), default=str) + "\n")
        if not token:
            break
"""


def _run(
    python: str, code_or_script: str, args: list[str], env: dict[str, str], cwd: Path, script: bool = False
) -> str:
    command = [python, code_or_script, *args] if script else [python, "-c", code_or_script, *args]
    full = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    full.update(env)
    full["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(command, env=full, cwd=cwd, capture_output=True, text=True, timeout=7200)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-4000:])
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--workdir", default=None, help="reuse a populated directory")
    parser.add_argument("--mlflow-python", default=str(MLFLOW_PYTHON))
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="read-store-"))
    workdir.mkdir(parents=True, exist_ok=True)
    traces_file = workdir / "traces.jsonl"
    env = {"MLFLOW_OTEL_TRACES_FILE": str(traces_file), "OTEL_BSP_SCHEDULE_DELAY": "200"}
    state = workdir / "populated.json"
    if state.exists():
        populated = json.loads(state.read_text())
    else:
        seconds, latest = _run(sys.executable, POPULATE, [str(args.traces)], env, workdir).split()
        populated = {"traces": args.traces, "seconds": float(seconds), "latest": latest}
        state.write_text(json.dumps(populated))
    db = Path(str(traces_file)[: -len(".jsonl")] + ".db")
    ours = json.loads(
        _run(sys.executable, MEASURE, [populated["latest"], str(populated["traces"])], env, workdir)
    )
    ours["store_mb"] = round(sum(p.stat().st_size for p in workdir.glob("traces.db*")) / 1e6, 1)
    ours["otlp_json_mb"] = round(sum(p.stat().st_size for p in workdir.glob("traces.jsonl*")) / 1e6, 1)
    ours["populate_traces_per_s"] = round(populated["traces"] / populated["seconds"])
    results = {"traces": populated["traces"], "ours": ours}
    if not args.skip_mlflow:
        dump = workdir / "traces-dump.jsonl"
        if not dump.exists():
            _run(sys.executable, DUMP, [str(traces_file), str(dump)], {}, workdir)
        theirs = _run(
            args.mlflow_python,
            str(HERE / "read_store_mlflow.py"),
            [str(dump), str(workdir / "mlflow.db"), populated["latest"], str(populated["traces"])],
            {},
            workdir,
            script=True,
        )
        results["mlflow"] = json.loads(theirs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "read_store.json").write_text(json.dumps(results, indent=1))
    rows = [
        ("get_trace, latest trace (ms, median of 20)", "get_trace_ms"),
        ("first get_trace in a fresh process (ms)", "first_get_trace_ms"),
        ("tag search, 100 of N traces, list (ms)", "tag_search_ms"),
        ("tag search, 100 of N traces, DataFrame (ms)", "tag_search_dataframe_ms"),
        ("newest 100 traces (ms)", "newest_100_ms"),
        ("user AND status, max 100 (ms)", "user_and_status_100_ms"),
    ]
    print(
        f"{populated['traces']:,} traces, db {db.name}: {ours['store_mb']} MB store, {ours['otlp_json_mb']} MB OTLP/JSON"
    )
    print(
        f"| metric | mlflow-otel local store | MLflow {'' if args.skip_mlflow else '3.18'} sqlite:///mlflow.db |"
    )
    print("|---|---|---|")
    for label, key in rows:
        theirs_value = results.get("mlflow", {}).get(key)
        print(f"| {label} | {ours[key]:,.1f} | {'-' if theirs_value is None else f'{theirs_value:,.1f}'} |")
    ok = ours["get_trace_ms"] < 50 and ours["tag_search_ms"] < 1000
    print(f"targets (get_trace < 50 ms, tag search < 1 s): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
