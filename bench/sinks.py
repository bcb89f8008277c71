"""Each local sink's drain rate (spans/s on this machine), beside the rate the request path fills it.

Spans come from the real pipeline (3 spans per trace: a CHAIN root, a RETRIEVER returning
MLflow's documents, an LLM call; small inputs and outputs), captured after the processor chain,
then exported in the pipeline's batches (512 spans) to:

  file        the OTLP/JSON lines file alone (exporters/file.py)
  store       the local trace store alone (records/local.py) indexing the file's lines from memory
  embedded    the embedded default destination (exporters/local_store.py): each span encoded once,
              the file written, the store indexing it on its own thread; "export" is the pace the
              queue sees (the export returns once the line is written), "store caught up" the time
              until the index holds every trace as well

and ``fill`` is the request path: the app thread's time per span building the same traces (mean),
as spans per second of one thread. A sink keeps up when its rate is at least the fill rate; on
two cores shared with the app thread, its share of the GIL sets what it achieves in a run.

    .venv/bin/python bench/sinks.py [--traces 5000] [--reps 5]

Prints a table and writes ``bench/results/sinks.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import mlflow_otel as mlflow  # noqa: E402
from mlflow_otel._telemetry import Counters  # noqa: E402
from mlflow_otel.entities import SpanType  # noqa: E402
from mlflow_otel.exporters.file import OtlpJsonFileExporter  # noqa: E402
from mlflow_otel.exporters.local_store import FileAndStoreExporter  # noqa: E402
from mlflow_otel.otlp.json import request_line, span_texts  # noqa: E402
from mlflow_otel.records.local import LocalTraceWriter, store_path  # noqa: E402

BATCH = 512


@mlflow.trace(span_type=SpanType.RETRIEVER)
def retrieve(question: str) -> list[dict[str, Any]]:
    return [{"page_content": f"doc about {question}", "metadata": {"source": "kb", "page": 3}, "id": "d1"}]


@mlflow.trace(span_type=SpanType.LLM)
def answer(question: str, documents: list[dict[str, Any]]) -> str:
    return f"the answer to {question}"


@mlflow.trace
def pipeline(question: str) -> str:
    return answer(question, retrieve(question))


def _spans(traces: int) -> tuple[list[Any], float]:
    """The spans as the pipeline hands them to a destination, and the app thread's mean time per span."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    mlflow.tracing.set_destination(memory)
    started = time.perf_counter()
    for i in range(traces):
        pipeline(f"question {i}")
    app_s = time.perf_counter() - started
    mlflow.flush_trace_async_logging(timeout_s=60)
    spans = list(memory.get_finished_spans())
    return spans, app_s / len(spans)


def _rate(
    spans: list[Any],
    make: Callable[[str], Callable[[list[Any]], None]],
    reps: int,
    then: Optional[Callable[[], None]] = None,
) -> float:
    """The best of ``reps`` runs, each into a fresh folder: spans per second (``then`` is timed too)."""
    batches = [spans[i : i + BATCH] for i in range(0, len(spans), BATCH)]
    best = float("inf")
    for _ in range(reps):
        export = make(tempfile.mkdtemp(prefix="mlflow-otel-sinks-"))
        started = time.perf_counter()
        for batch in batches:
            export(batch)
        if then is not None:
            then()
        best = min(best, time.perf_counter() - started)
    return len(spans) / best


def _file(folder: str) -> Callable[[list[Any]], None]:
    return OtlpJsonFileExporter(os.path.join(folder, "traces.jsonl")).export


def _index_rate(spans: list[Any], reps: int) -> float:
    """The store indexing lines already in the file, their spans and texts still in memory (as the
    indexing thread does while it keeps up): spans per second, the best of ``reps``."""
    best = float("inf")
    for _ in range(reps):
        path = os.path.join(tempfile.mkdtemp(prefix="mlflow-otel-sinks-"), "traces.jsonl")
        file = OtlpJsonFileExporter(path)
        batches: deque[Any] = deque()
        for i in range(0, len(spans), BATCH):
            batch = spans[i : i + BATCH]
            texts = span_texts(batch)
            batches.append((*file.append(request_line(batch, texts)), batch, texts))
        writer = LocalTraceWriter(store_path(path), traces_file=path, counters=Counters())
        started = time.perf_counter()
        writer.index(batches)
        best = min(best, time.perf_counter() - started)
    return len(spans) / best


_last: list[FileAndStoreExporter] = []


def _embedded(folder: str) -> Callable[[list[Any]], None]:
    if _last:
        _last[0].shutdown()  # the previous run's indexing, outside the timing
    exporter = FileAndStoreExporter(os.path.join(folder, "traces.jsonl"), counters=Counters())
    _last[:] = [exporter]
    return exporter.export


def _caught_up() -> None:
    exporter = _last[0]
    exporter.force_flush(600_000)
    if exporter.store.behind():
        raise SystemExit("the store did not catch up with the file")
    exporter.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    spans, app_s_per_span = _spans(args.traces)
    results = {
        "spans": len(spans),
        "fill (request path, one thread)": 1.0 / app_s_per_span,
        "file": _rate(spans, _file, args.reps),
        "store (indexing from memory)": _index_rate(spans, args.reps),
        "embedded: export": _rate(spans, _embedded, args.reps),
        "embedded: store caught up": _rate(spans, _embedded, args.reps, _caught_up),
    }
    print(f"{'sink':<34} {'spans/s':>10}")
    for name, value in results.items():
        if name != "spans":
            print(f"{name:<34} {value:>10,.0f}")
    os.makedirs(args.out, exist_ok=True)
    Path(args.out, "sinks.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
