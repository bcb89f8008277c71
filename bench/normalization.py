"""What auto-tracing through OpenTelemetry instrumentors costs (mlflow_otel.<library>.autolog).

1. **Normalization per third-party span**: the processor (``processors/normalization/``) on spans
   real instrumentors made (OpenInference Anthropic, LangChain, LlamaIndex; OTel GenAI google-genai;
   OpenLLMetry Anthropic), on the process worker; and on one of our own CHAIN spans (its fast path).
2. **An instrumented call**: the same ``anthropic`` ``messages.create`` against a loopback fake of the
   Messages API, (a) untraced, (b) under OpenInference's instrumentor on a plain OpenTelemetry SDK
   provider (BatchSpanProcessor, an exporter that drops), (c) under ``mlflow_otel.anthropic.autolog()``
   (the same instrumentor through our provider and pipeline, to an exporter that drops). Each mode
   in its own process, alternating; the median wall time per call, and the process's CPU time per
   call with every thread (export included), which is what a shared machine measures reliably.

    python bench/normalization.py            # ~1 minute
    python bench/normalization.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class _Drop:
    """An OTel SpanExporter that drops everything (what we measure is the SDK side)."""

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _drop_exporter() -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter

    class Drop(_Drop, SpanExporter):
        pass

    return Drop()


# --- 1. normalization per span ----------------------------------------------------------------------------


def _captured_spans() -> dict[str, Any]:
    """Spans as real instrumentors make them, captured on a plain SDK provider."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tests.provider_fakes import ProviderFake

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    out: dict[str, Any] = {}
    with ProviderFake() as fake:
        import anthropic
        from openinference.instrumentation.anthropic import AnthropicInstrumentor

        AnthropicInstrumentor().instrument(tracer_provider=provider)
        client = anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0)
        client.messages.create(
            model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hi " * 50}]
        )
        out["OpenInference anthropic (CHAT_MODEL)"] = memory.get_finished_spans()[-1]
        AnthropicInstrumentor().uninstrument()

        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor as LlmetryAnthropic

        LlmetryAnthropic().instrument(tracer_provider=provider)
        client.messages.create(
            model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hi " * 50}]
        )
        out["OpenLLMetry anthropic (GenAI keys)"] = memory.get_finished_spans()[-1]
        LlmetryAnthropic().uninstrument()

        from google import genai
        from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor

        from mlflow_otel.integrations import genai_content

        GoogleGenAiSdkInstrumentor().instrument(
            tracer_provider=provider,
            completion_hook=genai_content.COMPLETION_HOOK,
            logger_provider=genai_content.LOGGER_PROVIDER,
        )
        gclient = genai.Client(api_key="k", http_options=genai.types.HttpOptions(base_url=fake.base_url))
        gclient.models.generate_content(model="gemini-test", contents="hi " * 50)
        out["OTel GenAI google-genai (hook content)"] = memory.get_finished_spans()[-1]
        GoogleGenAiSdkInstrumentor().uninstrument()

    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.prompts import ChatPromptTemplate
    from openinference.instrumentation.langchain import LangChainInstrumentor

    LangChainInstrumentor().instrument(tracer_provider=provider)
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="Paris",
                    usage_metadata={"input_tokens": 9, "output_tokens": 1, "total_tokens": 10},
                )
            ]
        )
    )
    (ChatPromptTemplate.from_messages([("human", "capital of {c}?")]) | model).invoke({"c": "France"})
    spans = memory.get_finished_spans()
    out["OpenInference langchain chat model"] = next(s for s in spans if s.name == "GenericFakeChatModel")
    out["OpenInference langchain chain"] = next(s for s in spans if s.name == "RunnableSequence")
    LangChainInstrumentor().uninstrument()

    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext

    out["ours: CHAIN span (fast path)"] = ReadableSpan(
        name="step",
        context=SpanContext(1, 2, False),
        attributes={"mlflow.spanType": "CHAIN", "mlflow.spanInputs": '{"q": 1}', "mlflow.spanOutputs": '"a"'},
        instrumentation_scope=InstrumentationScope("mlflow_otel"),
        start_time=1,
        end_time=2,
    )
    return out


def normalization(rounds: int) -> dict[str, float]:
    from mlflow_otel.processors.base import SpanView
    from mlflow_otel.processors.normalization import Normalizer

    results = {}
    for label, span in _captured_spans().items():
        normalizer = Normalizer(frozenset({"mlflow", "gen_ai"}), False)
        times = []
        for _ in range(7):
            start = time.perf_counter()
            for _ in range(rounds):
                view = SpanView(span)
                normalizer(view)
                view.result()
            times.append((time.perf_counter() - start) / rounds)
        results[label] = statistics.median(times) * 1e6
    return results


# --- 2. an instrumented call ------------------------------------------------------------------------------


def call_mode(mode: str, calls: int, base_url: str) -> dict[str, Any]:
    """Per-call wall seconds of ``messages.create`` in this process under ``mode``, and the process's
    CPU seconds per call (every thread: the export side included, flushed before the clock stops)."""
    import anthropic

    flush: Any = lambda: None  # noqa: E731

    if mode == "otel":
        from openinference.instrumentation.anthropic import AnthropicInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(_drop_exporter()))
        AnthropicInstrumentor().instrument(tracer_provider=provider)
        flush = provider.force_flush
    elif mode == "ours":
        import mlflow_otel as mlflow

        mlflow.tracing.set_destination(_drop_exporter())
        mlflow.anthropic.autolog()
        flush = mlflow.flush_trace_async_logging
    client = anthropic.Anthropic(base_url=base_url, api_key="k", max_retries=0)
    messages = [{"role": "user", "content": "what is otel"}]
    for _ in range(50):  # warm-up: connections, imports, first spans
        client.messages.create(model="claude-test", max_tokens=64, messages=messages)
    flush()
    times = []
    cpu = time.process_time()
    for _ in range(calls):
        start = time.perf_counter()
        client.messages.create(model="claude-test", max_tokens=64, messages=messages)
        times.append(time.perf_counter() - start)
    flush()
    return {"wall": statistics.median(times), "cpu": (time.process_time() - cpu) / calls}


def instrumented_calls(calls: int, repeats: int) -> dict[str, dict[str, float]]:
    from tests.provider_fakes import ProviderFake

    per_mode: dict[str, list[dict[str, float]]] = {"none": [], "otel": [], "ours": []}
    env = {**os.environ, "MLFLOW_OTEL_TRACES_FILE": os.devnull, "PYTHONPATH": str(ROOT)}
    with ProviderFake() as fake:
        for _ in range(repeats):
            for mode in per_mode:
                result = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--call-mode",
                        mode,
                        "--calls",
                        str(calls),
                        "--base-url",
                        fake.base_url,
                    ],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=600,
                    check=True,
                )
                per_mode[mode].append(json.loads(result.stdout.strip().splitlines()[-1]))
    return {
        mode: {kind: statistics.median(v[kind] for v in values) * 1e6 for kind in ("wall", "cpu")}
        for mode, values in per_mode.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--call-mode")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--base-url")
    args = parser.parse_args()
    if args.call_mode:
        print(json.dumps(call_mode(args.call_mode, args.calls, args.base_url)))
        return
    rounds, calls, repeats = (500, 100, 1) if args.quick else (5000, 300, 3)
    print(f"Normalization per span (median of 7 x {rounds}, microseconds):")
    for label, us in normalization(rounds).items():
        print(f"  {label:42s} {us:8.1f} us")
    result = instrumented_calls(calls, repeats)
    print(f"Anthropic messages.create against a loopback fake (median of {repeats} runs x {calls} calls):")
    print(f"  {'':42s} {'wall/call':>10s} {'CPU/call':>10s} {'added CPU':>10s}")
    base = result["none"]["cpu"]
    for mode, label in (
        ("none", "untraced"),
        ("otel", "OpenInference on a plain OTel SDK provider"),
        ("ours", "mlflow_otel.anthropic.autolog()"),
    ):
        r = result[mode]
        print(f"  {label:42s} {r['wall']:8.0f}us {r['cpu']:8.0f}us {r['cpu'] - base:+8.0f}us")


if __name__ == "__main__":
    main()
