"""Concurrency: fan out work to threads and to asyncio tasks, all spans in the caller's trace.

asyncio tasks inherit the current span by themselves (OTel context lives in contextvars). Threads
start with an empty context, so hand them the caller's with `contextvars.copy_context().run`, as
MLflow's documentation does; the spans then nest under the caller, one trace for the whole request.

    python examples/threads_and_asyncio.py && mlflow-otel show -v
"""

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor

import mlflow_otel as mlflow
from mlflow_otel.entities import SpanType


@mlflow.trace(span_type=SpanType.RETRIEVER)
def search(shard: int, query: str) -> list[str]:
    return [f"shard{shard}: {query}"]


@mlflow.trace(span_type=SpanType.AGENT)
def threaded(query: str) -> list[str]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(contextvars.copy_context().run, search, shard, query) for shard in range(4)]
        return [hit for f in futures for hit in f.result()]


@mlflow.trace(span_type=SpanType.TOOL)
async def fetch(source: str) -> str:
    await asyncio.sleep(0.01)
    return f"{source}: ok"


@mlflow.trace(span_type=SpanType.AGENT)
async def concurrent(sources: list[str]) -> list[str]:
    return list(await asyncio.gather(*(fetch(s) for s in sources)))


if __name__ == "__main__":
    print(threaded("otel"))
    print(asyncio.run(concurrent(["web", "docs", "wiki"])))
