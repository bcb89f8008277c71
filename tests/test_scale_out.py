"""The scale-out tier of collector-config/ run end to end on loopback, as collector-config/README.md
("Scaling out") describes it:

    SDK processes (forked workers) -> agent.yaml -> scale-out.yaml (static resolver) -> 2 x gateway.yaml
    (unchanged: memory_limiter, redaction with the shared policy, tail sampling, batch) -> Jaeger v2

Each gateway writes its name into ``deployment.environment.name`` (gateway.yaml's attributes
processor, set through its environment), so Jaeger shows which gateway every span passed. The SDK
processes (tests/scale_out_workload.py) report their counters and every trace they traced; the
collectors report theirs on their Prometheus ports. The tests account for every span between them.

Numbers these tests measure are printed (``pytest -s``) and recorded in collector-config/README.md.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.backends import (
    COLLECTOR_CONFIG,
    Jaeger,
    Otelcol,
    PoolCollector,
    ScaleOut,
    free_port,
    http_json,
    otelcol_binary,
    wait_until,
)
from tests.conftest import ROOT

pytestmark = pytest.mark.backend

WORKLOAD = ROOT / "tests" / "scale_out_workload.py"
#: Gateways wait this long for a trace's spans before deciding (gateway.yaml's TAIL_DECISION_WAIT;
#: 10s there). It must cover the gap between the halves of a distributed trace: the SDK's batch
#: delay (SDK_DELAY_MS here, 5 s by default) plus the agent's batch timeout (1 s).
DECISION_WAIT_S = 3
SDK_DELAY_MS = 500
#: gateway.yaml's batch timeout: a decided trace leaves the gateway within this.
GATEWAY_BATCH_S = 2
SECRET = "sk-proj-" + "Q9w8E7r6T5y4U3i2O1p0A9s8D7"

ACCEPTED = "otelcol_receiver_accepted_spans_total"
REFUSED = "otelcol_receiver_refused_spans_total"
SENT = "otelcol_exporter_sent_spans_total"
SEND_FAILED = "otelcol_exporter_send_failed_spans_total"
DECIDED = "otelcol_processor_tail_sampling_global_count_traces_sampled_total"


def _report(title: str, numbers: dict[str, Any]) -> None:
    print(f"\n[scale-out] {title}: " + json.dumps(numbers, sort_keys=True))


@pytest.fixture(scope="module")
def pool(jaeger: Jaeger, tmp_path_factory: pytest.TempPathFactory):
    try:
        otelcol_binary()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    topology = ScaleOut(
        tmp_path_factory.mktemp("scale-out"),
        jaeger.grpc_target,
        lanes=2,
        gateways=2,
        TAIL_DECISION_WAIT=f"{DECISION_WAIT_S}s",
        TAIL_SAMPLE_PERCENT="25",
    ).start()
    yield topology
    topology.stop()


def _sdk_env(agent: Otelcol, service: str, workdir: Path) -> dict[str, str]:
    """A user's process: only OTel's standard variables point it at its agent (OTLP/gRPC)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    env.update(
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        OTEL_SERVICE_NAME=service,
        OTEL_EXPORTER_OTLP_ENDPOINT=agent.otlp_grpc,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_BSP_SCHEDULE_DELAY=str(SDK_DELAY_MS),
        # The app does not redact: the gateway, with the same policy file, must.
        MLFLOW_OTEL_REDACTION_DEFAULTS="false",
        MLFLOW_OTEL_TRACES_FILE=str(workdir / f"{service}.jsonl"),
    )
    return env


def _workload(role: str, out: Path, *args: str) -> list[str]:
    return [sys.executable, str(WORKLOAD), role, "--out", str(out), *args]


def _ledgers(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


def _traced(ledgers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every trace the SDK processes traced: spans (all processes together), failed, when."""
    traces: dict[str, dict[str, Any]] = {}
    for ledger in ledgers:
        for trace_id, record in ledger["traces"].items():
            entry = traces.setdefault(trace_id, {"spans": 0, "error": False, "t": record["t"]})
            entry["spans"] += record["spans"]
            entry["error"] = entry["error"] or record["error"]
            entry["t"] = min(entry["t"], record["t"])
    return traces


def _check_sdk(ledgers: list[dict[str, Any]]) -> int:
    """Each process flushed, exported every span it ended, and dropped nothing; returns the spans."""
    exported = 0
    for ledger in ledgers:
        stats = ledger["stats"]
        assert ledger["flushed"], ledger
        assert not [k for k in stats if k.startswith("dropped.")], stats
        assert stats["spans_exported"] == stats["spans_ended"] == stats["spans_started"], stats
        assert stats["spans_exported"] == sum(t["spans"] for t in ledger["traces"].values()), ledger["role"]
        exported += stats["spans_exported"]
    return exported


def _jaeger_traces(jaeger: Jaeger, services: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Spans per trace id (32 hex digits) for every trace touching ``services``."""
    traces: dict[str, list[dict[str, Any]]] = {}
    for service in services:
        for trace in jaeger.traces(service):
            spans = []
            for span in trace["spans"]:
                span = dict(span)
                span["tagmap"] = {t["key"]: t["value"] for t in span.get("tags", [])}
                span["service"] = trace["processes"][span["processID"]]["serviceName"]
                spans.append(span)
            traces[trace["traceID"].zfill(32)] = spans
    return traces


def _gateway_of(spans: list[dict[str, Any]]) -> set[str]:
    return {s["tagmap"].get("deployment.environment.name") for s in spans}


def _archived_trace_ids(gateway: PoolCollector, wanted: set[str]) -> set[str]:
    """Trace ids in the gateway's own archive (gateway.yaml's file/archive exporter)."""
    path = Path(gateway.env["ARCHIVE_FILE"])
    found = set()
    for line in path.read_text().splitlines() if path.exists() else []:
        for rs in json.loads(line).get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    if span["traceId"] in wanted:
                        found.add(span["traceId"])
    return found


class Counts:
    """The counters of every collector of the topology, read before and after a run."""

    KEYS = {
        "agents": [(ACCEPTED, {}), (REFUSED, {}), (SENT, {}), (SEND_FAILED, {})],
        "balancers": [(ACCEPTED, {}), (REFUSED, {}), (SENT, {}), (SEND_FAILED, {})],
        "gateways": [
            (ACCEPTED, {}),
            (REFUSED, {}),
            (DECIDED, {}),
            (SENT, {"exporter": "otlp/traces"}),
            (SEND_FAILED, {}),
        ],
    }

    def __init__(self, pool: ScaleOut) -> None:
        self.values = {
            (tier, c.name, name): c.metric(name, **labels)
            for tier, keys in self.KEYS.items()
            for c in getattr(pool, tier)
            for name, labels in keys
        }

    def delta(self, before: Counts, tier: str, name: str, collector: Optional[str] = None) -> float:
        return sum(
            value - before.values.get(key, 0.0)
            for key, value in self.values.items()
            if key[0] == tier and key[2] == name and collector in (None, key[1])
        )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc (Jaeger's own metrics are off in the helper)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the configuration -------------------------------------------------------------------------------
def test_the_static_resolver_overlay_validates_and_replaces_dns():
    try:
        binary = otelcol_binary()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    configs = ["--config=scale-out.yaml", "--config=scale-out-static.yaml"]
    env = {**os.environ, "GATEWAY_HOSTNAMES": "[10.0.0.5:4317, 10.0.0.6:4317]"}
    shown = subprocess.run(
        [str(binary), "print-config", *configs],
        cwd=COLLECTOR_CONFIG,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "dns: null" in shown.stdout and "- 10.0.0.6:4317" in shown.stdout
    result = subprocess.run(
        [str(binary), "validate", *configs], cwd=COLLECTOR_CONFIG, env=env, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# --- 1. every trace whole in one gateway; errors kept; secrets masked; counts add up ---------------------
def test_traces_land_whole_in_one_gateway_errors_kept_secrets_masked(pool: ScaleOut, jaeger, tmp_path):
    run = uuid.uuid4().hex[:8]
    frontend_service, backend_service = f"so-frontend-{run}", f"so-backend-{run}"
    out = tmp_path / "ledgers"
    out.mkdir()
    before = Counts(pool)
    # Two services on two "hosts": each exports to its own agent, which forwards to its own load
    # balancer; a request's trace has spans in both, which must still meet in one gateway.
    port = free_port()
    backend = subprocess.Popen(
        _workload("backend", out, "--port", str(port), "--secret", SECRET),
        env=_sdk_env(pool.agents[1], backend_service, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert backend.stdout is not None and backend.stdout.readline().strip() == "listening"
        frontend = subprocess.run(
            _workload("frontend", out, "--backend", f"http://127.0.0.1:{port}", "--workers", "3"),
            env=_sdk_env(pool.agents[0], frontend_service, tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert frontend.returncode == 0, frontend.stderr[-3000:]
        stop = urllib.request.Request(f"http://127.0.0.1:{port}/stop", b"{}", method="POST")
        urllib.request.urlopen(stop, timeout=10).read()
        assert backend.wait(60) == 0, backend.stderr.read()[-3000:] if backend.stderr else ""
    finally:
        if backend.poll() is None:
            backend.kill()
            backend.wait(10)

    ledgers = _ledgers(out)
    assert sorted(ledger["role"] for ledger in ledgers) == [
        "backend",
        "frontend",
        "frontend",
        "frontend",
        "frontend-master",
    ]
    assert len({ledger["pid"] for ledger in ledgers}) == 5  # master, three forked workers, backend
    sdk_spans = _check_sdk(ledgers)
    expected = _traced(ledgers)
    errors = {t for t, r in expected.items() if r["error"]}
    assert len(expected) == 91 and len(errors) == 30  # 3 workers x 30 requests, and the master's start-up

    # Every gateway decided every trace it got, once: a trace split across gateways is decided twice.
    def decided() -> Optional[Counts]:
        now = Counts(pool)
        return now if now.delta(before, "gateways", DECIDED) >= len(expected) else None

    wait_until(decided, 60, "tail-sampling decisions", interval=0.5)

    # Then the kept traces leave through each gateway's batch processor (GATEWAY_BATCH_S).
    settle_after = time.monotonic() + GATEWAY_BATCH_S + 1

    def delivered() -> Optional[dict[str, list[dict[str, Any]]]]:
        now = Counts(pool)
        traces = _jaeger_traces(jaeger, [frontend_service, backend_service])
        in_jaeger = sum(len(spans) for spans in traces.values())
        sent = now.delta(before, "gateways", SENT)
        settled = errors <= set(traces) and in_jaeger == sent
        return traces if settled and time.monotonic() > settle_after else None

    traces = wait_until(delivered, 60, "kept traces in Jaeger", interval=0.5)
    after = Counts(pool)

    # Counts add up, tier by tier: SDK -> agents -> load balancers -> gateways, nothing refused.
    tiers = {
        "sdk exported": sdk_spans,
        "agents accepted": after.delta(before, "agents", ACCEPTED),
        "agents sent": after.delta(before, "agents", SENT),
        "balancers accepted": after.delta(before, "balancers", ACCEPTED),
        "balancers sent": after.delta(before, "balancers", SENT),
        "gateways accepted": after.delta(before, "gateways", ACCEPTED),
    }
    assert set(tiers.values()) == {sum(r["spans"] for r in expected.values())}, tiers
    for tier in ("agents", "balancers", "gateways"):
        assert after.delta(before, tier, REFUSED) == 0 and after.delta(before, tier, SEND_FAILED) == 0
    assert after.delta(before, "gateways", DECIDED) == len(expected)  # each trace decided exactly once
    for gateway in pool.gateways:  # both gateways took a share
        assert after.delta(before, "gateways", ACCEPTED, gateway.name) > 0

    # Jaeger holds what the gateways sent; every kept trace is whole, and passed one gateway.
    by_gateway: dict[str, set[str]] = defaultdict(set)
    for trace_id, spans in traces.items():
        assert len(spans) == expected[trace_id]["spans"], trace_id  # whole: both services' spans
        (gateway,) = _gateway_of(spans)  # one gateway for all of them
        by_gateway[gateway].add(trace_id)
    for gateway in pool.gateways:
        sent = after.delta(before, "gateways", SENT, gateway.name)
        assert sum(len(traces[t]) for t in by_gateway[gateway.name]) == sent, gateway.name
        assert _archived_trace_ids(gateway, set(expected)) == by_gateway[gateway.name]  # its own archive
    # Both halves of every request's trace met there, though they left through different agents
    # and load balancers (only the master's start-up trace stays in one service).
    (startup,) = next(ledger["traces"] for ledger in ledgers if ledger["role"] == "frontend-master")
    distributed = [t for t in traces if t != startup]
    for trace_id in distributed:
        assert {s["service"] for s in traces[trace_id]} == {frontend_service, backend_service}
    assert distributed

    # Tail sampling: every error trace kept (whole), and only a share of the rest (25%).
    kept_ok = set(traces) - errors
    assert errors <= set(traces)
    assert 0 < len(kept_ok) < len(expected) - len(errors)

    # Redaction in the gateways: the API key the app sent never reached Jaeger.
    generate = [s for spans in traces.values() for s in spans if s["operationName"] == "generate"]
    assert generate, "no kept trace had the LLM span"
    assert SECRET not in json.dumps(traces)
    assert all(s["tagmap"]["llm.api_key"] == "****" for s in generate)
    assert all(int(s["tagmap"]["redaction.masked.count"]) >= 2 for s in generate)

    _report(
        "end to end",
        {
            "processes": len(ledgers),
            "traces": len(expected),
            "spans": sdk_spans,
            "error traces": len(errors),
            "kept": len(traces),
            "kept per gateway": {g: len(ids) for g, ids in sorted(by_gateway.items())},
            "spans per gateway": {
                g.name: after.delta(before, "gateways", ACCEPTED, g.name) for g in pool.gateways
            },
            "distributed traces kept": len(distributed),
        },
    )


# --- 2. throughput of the whole pipeline -------------------------------------------------------------
THROUGHPUT_TRACES = 4000  # per worker; 2 processes x 2 forked workers x 4000 x 7 spans = 112,000 spans
THROUGHPUT_CHILDREN = 6


def test_pipeline_throughput_sdk_to_jaeger(pool: ScaleOut, jaeger, tmp_path):
    """Spans/s from the SDK's processes to Jaeger, through both tiers, with every gateway processor
    on. Every trace fails, so tail sampling keeps all of them and every span makes the whole trip."""
    service = f"so-load-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "ledgers"
    out.mkdir()
    before = Counts(pool)
    cpu_before = {c.name: c.metric("otelcol_process_cpu_seconds_total") for c in pool.collectors}
    assert jaeger.process is not None
    jaeger_cpu_before = _cpu_seconds(jaeger.process.pid)
    args = ["--workers", "2", "--traces", str(THROUGHPUT_TRACES), "--children", str(THROUGHPUT_CHILDREN)]
    loads = [
        subprocess.Popen(
            _workload("load", out, *args, "--errors-every", "1"),
            env=_sdk_env(agent, service, tmp_path),
            stderr=subprocess.PIPE,
            text=True,
        )
        for agent in pool.agents
    ]
    total = len(loads) * 2 * THROUGHPUT_TRACES * (1 + THROUGHPUT_CHILDREN)
    timeline: list[tuple[float, float, float]] = []  # (time, into the gateways, into Jaeger)
    deadline = time.time() + 150
    while time.time() < deadline:
        now = Counts(pool)
        delivered = now.delta(before, "gateways", SENT)  # acknowledged by Jaeger
        timeline.append((time.time(), now.delta(before, "gateways", ACCEPTED), delivered))
        if delivered >= total:
            break
        if any(p.poll() not in (None, 0) for p in loads):
            break
        time.sleep(0.25)
    for p in loads:
        assert p.wait(60) == 0, p.stderr.read()[-3000:] if p.stderr else ""
    done = timeline[-1][0]
    after = Counts(pool)
    ledgers = _ledgers(out)
    assert len(ledgers) == 4
    assert _check_sdk(ledgers) == total
    # The SDK counts every span once (above), but OTLP delivery is at least once: on a starved machine
    # a request (the SDK's, or a Collector tier's exporterhelper) can time out after the next hop took
    # it, and the retry the spec prescribes is taken again. So: nothing missing, few twice.
    accepted, sent = after.delta(before, "gateways", ACCEPTED), after.delta(before, "gateways", SENT)
    assert total <= accepted <= total * 1.1, (accepted, total)
    assert total <= sent <= accepted, timeline[-5:]
    for tier in ("agents", "balancers", "gateways"):
        assert after.delta(before, tier, REFUSED) == 0 and after.delta(before, tier, SEND_FAILED) == 0
    # Jaeger stores what it acknowledged: a sample of traces read back whole.
    traced = _traced(ledgers)
    for trace_id in random.Random(7).sample(sorted(traced), 25):
        url = f"http://127.0.0.1:{jaeger.ports['query']}/api/traces/{trace_id}"
        (trace,) = http_json(url)["data"]
        assert len({span["spanID"] for span in trace["spans"]}) == 1 + THROUGHPUT_CHILDREN, trace_id

    first = min(ledger["started"] for ledger in ledgers)
    sdk_done = max(ledger["finished"] for ledger in ledgers)
    # Into the gateways (redacted, buffered for decision_wait) vs. into Jaeger (after decision_wait
    # and the gateway's batch: a fixed delay that a longer run amortizes).
    in_gateways = next(t for t, accepted, _ in timeline if accepted >= total)
    end_to_end = total / (done - first)
    cpu = {
        c.name: c.metric("otelcol_process_cpu_seconds_total") - cpu_before[c.name] for c in pool.collectors
    }
    cpu_us = {
        "sdk": sum(ledger["cpu_s"] for ledger in ledgers),
        "agents": sum(cpu[c.name] for c in pool.agents),
        "load balancers": sum(cpu[c.name] for c in pool.balancers),
        "gateways": sum(cpu[c.name] for c in pool.gateways),
        "jaeger": _cpu_seconds(jaeger.process.pid) - jaeger_cpu_before,
    }
    _report(
        "throughput",
        {
            "spans": total,
            "sdk spans/s": round(total / (sdk_done - first)),
            "into gateways spans/s": round(total / (in_gateways - first)),
            "end-to-end spans/s": round(end_to_end),
            "last span in jaeger after sdk done (s)": round(done - sdk_done, 2),
            "taken twice between tiers": accepted - total,
            "cpu us per span": {k: round(v * 1e6 / total, 1) for k, v in cpu_us.items()},
        },
    )
    # A floor far below this machine's figure (README): fails when the pipeline stalls, not when CI
    # is slow.
    assert end_to_end > 1000, end_to_end


# --- 3. a gateway dies mid-run and comes back --------------------------------------------------------
KILL_RATE = 40  # traces/s per worker, 2 workers, 4 spans each: 320 spans/s
KILL_AT_S, DOWN_S, RUN_S = 7.0, 5.0, 22.0


def test_a_gateway_killed_mid_run_loses_only_what_it_held(pool: ScaleOut, jaeger, tmp_path):
    """SIGKILL one gateway under steady traffic, start it again: the load balancer holds that
    gateway's share (queue and retries) and delivers it when the gateway is back; what is lost is
    what the dead gateway itself held (tail sampling's decision_wait, its batch). Every trace here
    fails, so the gateways keep all of them: a trace missing from Jaeger was lost."""
    service = f"so-kill-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "ledgers"
    out.mkdir()
    victim, survivor = pool.gateways[1], pool.gateways[0]
    balancer = pool.balancers[0]
    accepted_before = victim.metric(ACCEPTED)
    load = subprocess.Popen(
        _workload(
            "load", out, "--workers", "2", "--traces", str(int(KILL_RATE * RUN_S)), "--rate", str(KILL_RATE),
            "--children", "3", "--errors-every", "1",
        ),
        env=_sdk_env(pool.agents[0], service, tmp_path),
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        started = time.time()
        time.sleep(KILL_AT_S)
        held_by_victim = victim.metric(ACCEPTED) - accepted_before  # what it had taken in, at most
        victim.kill()
        killed = time.time()
        time.sleep(DOWN_S)
        victim.restart()
        up = time.time()
        # Routing recovers when the load balancer's retries reach the new process.
        recovery: list[tuple[float, float]] = []
        while time.time() - up < 30:
            recovery.append((time.time(), victim.metric(ACCEPTED)))
            if recovery[-1][1] > 0 and load.poll() is not None:
                break
            time.sleep(0.1)
        assert load.wait(RUN_S + 60) == 0, load.stderr.read()[-3000:] if load.stderr else ""
    finally:
        if load.poll() is None:
            load.kill()
            load.wait(10)
    ledgers = _ledgers(out)
    _check_sdk(ledgers)  # the SDK never noticed: its agent was up throughout
    expected = _traced(ledgers)
    late = {t for t, r in expected.items() if r["t"] > killed}  # ended after the kill: cannot be lost

    def arrived() -> Optional[dict[str, list[dict[str, Any]]]]:
        traces = _jaeger_traces(jaeger, [service])
        return traces if late <= set(traces) else None

    wait_until(arrived, 60, "every trace traced after the kill in Jaeger", interval=1.0)
    time.sleep(GATEWAY_BATCH_S + 1)  # the survivor's last batch
    traces = _jaeger_traces(jaeger, [service])

    for trace_id, spans in traces.items():  # whatever arrived is whole and passed one gateway
        assert len(spans) == expected[trace_id]["spans"], trace_id
        assert len(_gateway_of(spans)) == 1, trace_id
    lost = set(expected) - set(traces)
    lost_spans = sum(expected[t]["spans"] for t in lost)
    assert lost, "a SIGKILLed gateway loses the traces it held in decision_wait"
    assert all(expected[t]["t"] <= killed for t in lost)
    assert lost_spans <= held_by_victim + 512  # plus one agent batch in flight at the kill
    held = {
        t for t, r in expected.items() if killed < r["t"] < up and _gateway_of(traces[t]) == {victim.name}
    }
    assert held, "the load balancer held nothing for the dead gateway"
    first_delivery = next((t for t, n in recovery if n > 0), None)
    assert first_delivery is not None, "nothing reached the restarted gateway in 30 s:\n" + "\n".join(
        balancer.log_lines()[-20:]
    )
    held_spans = sum(expected[t]["spans"] for t in held)
    drained = next((t for t, n in recovery if n >= held_spans), recovery[-1][0])
    # scale-out.yaml's retry_on_failure (max_interval 5s, +-50% jitter), after gRPC reconnects.
    assert first_delivery - up < 15, recovery[:20]
    back = {t for t, r in expected.items() if r["t"] > drained and t in traces}
    assert {t for t in back if _gateway_of(traces[t]) == {victim.name}}, "no new trace went to it again"
    assert {t for t in back if _gateway_of(traces[t]) == {survivor.name}}
    retries = sum(
        1 for line in balancer.log_lines() if "Will retry the request" in line and victim.grpc_target in line
    )
    assert retries > 0
    _report(
        "gateway killed",
        {
            "traffic spans/s": 2 * KILL_RATE * 4,
            "down (s)": round(up - killed, 2),
            "traces": len(expected),
            "lost traces": len(lost),
            "lost spans": lost_spans,
            "lost window before kill (s)": round(killed - min(expected[t]["t"] for t in lost), 2),
            "victim had accepted (spans)": held_by_victim,
            "held by load balancer (traces)": len(held),
            "held by load balancer (spans)": held_spans,
            "first delivery after restart (s)": round(first_delivery - up, 2),
            "backlog delivered after restart (s)": round(drained - up, 2),
            "run (s)": round(time.time() - started, 1),
        },
    )
