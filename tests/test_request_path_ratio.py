"""The request path's cost as a ratio to plain OpenTelemetry, measured side by side: a regression
like the one of issue 27 (about 40% more app time than two weeks before) fails a submission.

Absolute times only measure the CI machine; the ratio to plain opentelemetry-sdk (its
BatchSpanProcessor and OTLP exporter, the same receiver, the same run) is what the bench reports
(bench/README.md). Short runs of bench/worker.py's request workload, ours and plain OTel
alternating; the best ratio of a few rounds, so a busy neighbour on a shared 2-core machine does
not fail it; the margin is wide (the bench measures about 0.4x, these short runs about 0.25x; this
fails above 0.6x).
"""

from __future__ import annotations

import importlib.util
import time

import pytest

from tests.conftest import ROOT

#: Fail when ours costs more than this share of plain OTel's mean app-thread time per span.
LIMIT = 0.6
TRACES = 1000
ROUNDS = 3


def _bench_run():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(120)
def test_mean_app_time_per_span_stays_well_under_plain_opentelemetry():
    run = _bench_run()
    started = time.monotonic()
    rx = run.Receiver()
    ratios, cpu_ratios, seen = [], [], []
    try:
        for round_ in range(ROUNDS):
            got = {}
            for impl in ("ours", "otel") if round_ % 2 == 0 else ("otel", "ours"):
                got[impl] = run.run_worker(run.sys.executable, impl, "request", "http", TRACES, 0, rx)
            ours, otel = got["ours"], got["otel"]
            assert ours["dropped"] == 0, ours
            ratios.append(ours["app_wall_us_mean"] / otel["app_wall_us_mean"])
            cpu_ratios.append(ours["process_cpu_us_per_span"] / otel["process_cpu_us_per_span"])
            seen.append(f"{ours['app_wall_us_mean']:.1f} / {otel['app_wall_us_mean']:.1f} µs")
            if min(ratios) <= LIMIT * 0.75:
                break  # clearly under the limit: spare the CI machine the other rounds
    finally:
        rx.stop()
    best = min(ratios)
    print(f"request path: {best:.2f}x plain OTel ({', '.join(seen)})")
    assert best <= LIMIT, (
        f"mean app-thread time per span {best:.2f}x plain OpenTelemetry (limit {LIMIT}x; rounds: "
        f"{', '.join(seen)}; process CPU per delivered span {min(cpu_ratios):.2f}x). "
        "Profile the request path with bench/ab.py."
    )
    assert time.monotonic() - started < 60
