"""The benchmark harness runs end to end (small counts): it must not rot between full runs.

Targets are checked by the full run in bench/, not here: timing assertions in unit tests only
measure the CI machine's noise.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_quick_run_produces_table_json_and_chart(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--impls", "ours,otel",
         "--workloads", "request,disabled,memory", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "latest.md").read_text()
    assert "| app-thread wall per span, p50 (µs) |" in table
    assert "mlflow-otel / plain OTel" in table
    runs = json.loads((tmp_path / "latest.json").read_text())["runs"]
    ours = runs["request/http|ours"][0]
    assert ours["delivered"] == ours["spans"] and ours["dropped"] == 0
    assert runs["request/grpc|otel"][0]["delivered"] > 0
    assert (tmp_path / "chart.png").stat().st_size > 1000
