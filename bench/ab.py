"""The request workload side by side: plain OTel and one or more checkouts of mlflow-otel, in one run.

Each repetition runs plain OTel and every checkout in turn (the order reversed every other
repetition) against the same receiver, and prints each one's ratios to plain OTel *of that
repetition*: mean, p50 and p99 app-thread wall per span, mean app-thread CPU, and process CPU (all
threads) per delivered span. For a bisect (two commits side by side) or a before/after:

    git worktree add /tmp/bisect-91ef11d 91ef11d
    .venv/bin/python bench/ab.py --src old=/tmp/bisect-91ef11d --src new=. --traces 4000 --reps 3

A checkout is put on PYTHONPATH; the worker (bench/worker.py) is this checkout's. ``--tail`` runs
every checkout with tail sampling on (BENCH_TAIL=1 in the worker: every trace decided, all kept).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import Receiver, clean_env, free_port  # noqa: E402

KEYS = (
    ("app_wall_us_mean", "mean"),
    ("app_wall_us_p50", "p50"),
    ("app_wall_us_p99", "p99"),
    ("app_cpu_us_mean", "cpu mean"),
    ("process_cpu_us_per_span", "process CPU/span"),
)


def run(src: str, impl: str, protocol: str, traces: int, rx: Receiver, tail: bool) -> dict[str, Any]:
    env = clean_env()
    env["PYTHONPATH"] = src
    if tail:
        env["BENCH_TAIL"] = "1"
    cmd = [sys.executable, str(HERE / "worker.py"), impl, "request", protocol, str(traces), "0",
           str(rx.http), str(rx.grpc), str(free_port())]  # fmt: skip
    rx.reset()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{src} {impl} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", action="append", default=[], help="label=path of a checkout (repeatable)")
    parser.add_argument("--protocols", default="http,grpc")
    parser.add_argument("--traces", type=int, default=4000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tail", action="store_true", help="tail sampling on in every checkout")
    parser.add_argument("--json", default=None, help="write every run here")
    args = parser.parse_args()
    srcs = [tuple(s.split("=", 1)) for s in args.src] or [("ours", str(HERE.parent))]
    srcs = [(label, os.path.abspath(path)) for label, path in srcs]
    rx = Receiver()
    results: list[dict[str, Any]] = []
    ratios: dict[tuple[str, str, str], list[float]] = {}
    try:
        for rep in range(args.reps):
            for protocol in args.protocols.split(","):
                order = [("otel", "otel", str(HERE.parent))] + [(lab, "ours", p) for lab, p in srcs]
                if rep % 2:
                    order.reverse()
                got = {}
                for label, impl, path in order:
                    got[label] = run(path, impl, protocol, args.traces, rx, args.tail)
                    got[label].update(label=label, rep=rep)
                    results.append(got[label])
                base = got["otel"]
                print(f"rep {rep + 1} {protocol}: plain OTel " + ", ".join(
                    f"{name} {base[k]:.1f}" for k, name in KEYS) + " µs", flush=True)  # fmt: skip
                for label, _ in srcs:
                    r = got[label]
                    parts = []
                    for k, name in KEYS:
                        ratio = r[k] / base[k]
                        ratios.setdefault((label, protocol, k), []).append(ratio)
                        parts.append(f"{name} {r[k]:.1f} ({ratio:.2f}x)")
                    print(f"    {label:10s} " + ", ".join(parts) + f", dropped {r['dropped']}", flush=True)
    finally:
        rx.stop()
    print("\nratios to plain OTel, median [min-max] over repetitions:")
    for label, _ in srcs:
        for protocol in args.protocols.split(","):
            cells = []
            for k, name in KEYS:
                v = ratios[(label, protocol, k)]
                cells.append(f"{name} {statistics.median(v):.2f}x [{min(v):.2f}-{max(v):.2f}]")
            print(f"  {label:10s} {protocol:4s} " + ", ".join(cells))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
