"""One benchmark run of one implementation; prints one JSON line of measurements.

Runs inside the implementation's own environment (mlflow-tracing lives in a venv of its own), so
this file imports only the standard library at the top. Usage (see bench/run.py):

    python bench/worker.py IMPL WORKLOAD PROTOCOL TRACES PAYLOAD_BYTES RECEIVER_HTTP RECEIVER_GRPC

IMPL: ours | otel | mlflow. WORKLOAD: request | dead | memory | disabled | capture (PAYLOAD_BYTES then
selects what the app hands over: -1 a 54 MB text, -2 a dict of a million keys, -3 a MagicMock).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import urllib.request
from typing import Any, Callable

IMPL, WORKLOAD, PROTOCOL = sys.argv[1], sys.argv[2], sys.argv[3]
TRACES, PAYLOAD = int(sys.argv[4]), int(sys.argv[5])
RECV_HTTP, RECV_GRPC = int(sys.argv[6]), int(sys.argv[7])
DEAD_PORT = int(sys.argv[8]) if len(sys.argv) > 8 else 9
SPANS_PER_TRACE = 3
WARMUP = 200


def endpoint() -> tuple[str, str]:
    """(base URL, protocol) the implementation exports to: the receiver, or a closed port."""
    if WORKLOAD in ("dead", "memory"):
        port = DEAD_PORT
    else:
        port = RECV_GRPC if PROTOCOL == "grpc" else RECV_HTTP
    return f"http://127.0.0.1:{port}", ("grpc" if PROTOCOL == "grpc" else "http/protobuf")


def receiver(path: str = "/", method: str = "GET") -> dict[str, int]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{RECV_HTTP}{path}", method=method, data=b"" if method == "POST" else None
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


# --- the three implementations of the same app --------------------------------------------------------
def build_ours() -> tuple[Callable[[Any], Any], Callable[[], None], Callable[[bool], None]]:
    base, proto = endpoint()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = base
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = proto
    if os.environ.get("BENCH_TAIL") == "1":
        # Tail sampling on (the Collector's schema, pipeline/tail.py): errors kept by status, the rest
        # by an always_sample policy, so every trace is decided and every span still delivered.
        import tempfile

        policy = {"policies": [{"name": "errors", "type": "status_code",
                                "status_code": {"status_codes": ["ERROR"]}},
                               {"name": "rest", "type": "always_sample"}]}  # fmt: skip
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(policy, f)
        os.environ["MLFLOW_OTEL_TAIL_SAMPLING_CONFIG"] = f.name
    import mlflow_otel as mlflow

    @mlflow.trace
    def leaf(d):
        return "ok"

    @mlflow.trace
    def mid(d):
        return leaf(d)

    @mlflow.trace
    def top(d):
        return mid(d)

    def switch(on: bool) -> None:
        (mlflow.tracing.enable if on else mlflow.tracing.disable)()

    return top, lambda: mlflow.flush_trace_async_logging(timeout_s=120), switch


def build_otel() -> tuple[Callable[[Any], Any], Callable[[], None], Callable[[bool], None]]:
    base, proto = endpoint()
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if proto == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=base, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces")
    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")

    # What a careful user writes: JSON, and str() for what JSON does not take (a mock, an object).
    def dumps(value: Any) -> str:
        return json.dumps(value, default=str)

    # The equal work by hand: a span per call, inputs and outputs as JSON attributes, span type.
    def leaf(d):
        with tracer.start_as_current_span("leaf") as span:
            span.set_attribute("mlflow.spanType", "UNKNOWN")
            span.set_attribute("mlflow.spanInputs", dumps({"d": d}))
            result = "ok"
            span.set_attribute("mlflow.spanOutputs", dumps(result))
            return result

    def mid(d):
        with tracer.start_as_current_span("mid") as span:
            span.set_attribute("mlflow.spanType", "UNKNOWN")
            span.set_attribute("mlflow.spanInputs", dumps({"d": d}))
            result = leaf(d)
            span.set_attribute("mlflow.spanOutputs", dumps(result))
            return result

    def top(d):
        with tracer.start_as_current_span("top") as span:
            span.set_attribute("mlflow.spanType", "UNKNOWN")
            span.set_attribute("mlflow.spanInputs", dumps({"d": d}))
            result = mid(d)
            span.set_attribute("mlflow.spanOutputs", dumps(result))
            return result

    def switch(on: bool) -> None:  # plain OTel has no switch; "disabled" is not measured for it
        return None

    return top, lambda: provider.force_flush(120_000), switch


def build_mlflow() -> tuple[Callable[[Any], Any], Callable[[], None], Callable[[bool], None]]:
    base, proto = endpoint()
    # mlflow-tracing exports over OTLP when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (its own rule:
    # the traces endpoint, used as is, and OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, default grpc).
    os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = base if proto == "grpc" else f"{base}/v1/traces"
    os.environ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = proto
    # mlflow-tracing 3.17 resolves the experiment's location before it builds its span processors;
    # without a tracking URI that import path needs `sqlparse`, which mlflow-tracing does not
    # install, and tracing ends up exporting nothing. With any http tracking URI set it exports over
    # OTLP as configured (and, with the OTLP endpoint set, only there), so the bench sets one.
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{RECV_HTTP}")
    import mlflow

    @mlflow.trace
    def leaf(d):
        return "ok"

    @mlflow.trace
    def mid(d):
        return leaf(d)

    @mlflow.trace
    def top(d):
        return mid(d)

    def switch(on: bool) -> None:
        (mlflow.tracing.enable if on else mlflow.tracing.disable)()

    def flush() -> None:
        mlflow.flush_trace_async_logging()
        from opentelemetry import trace as otel_trace

        provider = otel_trace.get_tracer_provider()
        if hasattr(provider, "force_flush"):
            provider.force_flush(120_000)
        try:  # mlflow keeps its own provider
            from mlflow.tracing.provider import _MLFLOW_TRACER_PROVIDER

            if _MLFLOW_TRACER_PROVIDER is not None and hasattr(_MLFLOW_TRACER_PROVIDER, "force_flush"):
                _MLFLOW_TRACER_PROVIDER.force_flush(120_000)
        except Exception:
            pass

    return top, flush, switch


def capture_input(kind: int) -> Any:
    if kind == -1:
        return "lorem ipsum " * 4_500_000  # 54 MB of text
    if kind == -2:
        return {f"key-{i}": i for i in range(1_000_000)}
    from unittest import mock

    return mock.MagicMock()


def measure_capture(top: Callable[[Any], Any], flush: Callable[[], None], result: dict[str, Any]) -> None:
    """App-thread time and memory of traced calls handed one huge or hostile input (each of the
    three nested spans captures it): what capture costs on the request path."""
    value = capture_input(PAYLOAD)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    walls = []
    for _ in range(TRACES):
        start = time.perf_counter()
        try:
            top(value)
        except Exception as exc:  # a plain json.dumps may not take the value at all
            result["error"] = repr(exc)[:200]
        walls.append((time.perf_counter() - start) / SPANS_PER_TRACE * 1000)
    result["capture_ms_per_span"] = percentile(walls, 0.5)
    result["capture_rss_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    result["done_at"] = time.time()
    print(json.dumps(result), flush=True)
    os._exit(0)  # the exporter's work on these inputs is not what this workload measures


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    t_import = time.perf_counter()
    top, flush, switch = {"ours": build_ours, "otel": build_otel, "mlflow": build_mlflow}[IMPL]()
    result: dict[str, Any] = {"impl": IMPL, "workload": WORKLOAD, "protocol": PROTOCOL, "traces": TRACES,
                              "payload_bytes": PAYLOAD, "setup_s": time.perf_counter() - t_import}  # fmt: skip
    data = {"q": "hello", "n": 3} if PAYLOAD <= 0 else {"q": "x" * PAYLOAD}

    if WORKLOAD == "capture":
        measure_capture(top, flush, result)
        return

    if WORKLOAD == "disabled":
        n = TRACES

        def plain(d):
            return "ok"

        def measure(fn: Callable[[Any], Any]) -> float:
            start = time.perf_counter_ns()
            for _ in range(n):
                fn(data)
            return (time.perf_counter_ns() - start) / n

        switch(False)
        leafish = top
        measure(leafish)
        result["disabled_ns_per_call"] = measure(leafish) / SPANS_PER_TRACE  # 3 nested decorated calls
        result["plain_ns_per_call"] = measure(plain)
        result["done_at"] = time.time()
        print(json.dumps(result), flush=True)
        return

    for _ in range(WARMUP):
        top(data)
    if WORKLOAD == "request":
        flush()
        deadline = time.monotonic() + 60
        while receiver()["spans"] < WARMUP * SPANS_PER_TRACE and time.monotonic() < deadline:
            time.sleep(0.02)
        receiver("/reset", "POST")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    walls, cpus = [], []
    perf, tcpu = time.perf_counter_ns, time.thread_time_ns
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(TRACES):
        w0, c0 = perf(), tcpu()
        top(data)
        c1, w1 = tcpu(), perf()
        walls.append(w1 - w0)
        cpus.append(c1 - c0)
    app_done = time.perf_counter()
    expected = TRACES * SPANS_PER_TRACE
    per_span_wall = [w / SPANS_PER_TRACE / 1000 for w in walls]
    per_span_cpu = [c / SPANS_PER_TRACE / 1000 for c in cpus]
    result.update(
        app_wall_us_p50=percentile(per_span_wall, 0.5),
        app_wall_us_p99=percentile(per_span_wall, 0.99),
        app_cpu_us_p50=percentile(per_span_cpu, 0.5),
        app_cpu_us_p99=percentile(per_span_cpu, 0.99),
        app_wall_us_mean=sum(per_span_wall) / len(per_span_wall),
        app_cpu_us_mean=sum(per_span_cpu) / len(per_span_cpu),
        app_loop_s=app_done - start_wall,
        spans=expected,
    )
    if WORKLOAD == "request":
        # Wait until everything arrived, or nothing has arrived for 10 s (the rest was dropped).
        deadline = time.monotonic() + 180
        got, last_got, last_change = 0, -1, time.monotonic()
        while time.monotonic() < deadline:
            got = receiver()["spans"]
            if got >= expected:
                break
            if got != last_got:
                last_got, last_change = got, time.monotonic()
            elif time.monotonic() - last_change > 10:
                break
            time.sleep(0.01)
        delivered_at = time.perf_counter()
        cpu = time.process_time() - start_cpu
        if got < expected:  # give stragglers a final flush before counting drops
            flush()
            time.sleep(0.5)
            got = receiver()["spans"]
        result.update(
            delivered=got,
            dropped=expected - got,
            delivery_s=delivered_at - start_wall,
            spans_per_s=got / (delivered_at - start_wall) if got else 0.0,
            process_cpu_us_per_span=cpu / max(got, 1) * 1e6,
        )
    if WORKLOAD == "memory":
        result["rss_over_baseline_mb"] = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
        ) / 1024
    result["done_at"] = time.time()
    print(json.dumps(result), flush=True)
    # Exit without flushing by hand: exit behaviour is part of what is measured.


if __name__ == "__main__":
    main()
