"""Every scenario of MLflow's "Manual Tracing" guide, written against ``import mlflow_otel as mlflow``.

The calls are the guide's API calls with the guide's arguments; only the import differs. Where the
guide calls OpenAI, a local function stands in (OpenAI auto-tracing has its own tests).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import math
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import mlflow_otel as mlflow
from mlflow_otel.entities import SpanType
from tests.conftest import by_name, decoded


def test_decorator_with_span_type_attributes_and_name(otlp):
    @mlflow.trace(span_type="func", attributes={"key": "value"})
    def increment(x):
        return x + 1

    @mlflow.trace(span_type="func", attributes={"key1": "value1"})
    def decrement(x):
        return x - 1

    @mlflow.trace(name="Trace Test")
    def run(x):
        return decrement(increment(x))

    assert run(4) == 4
    spans = by_name(otlp(3))
    root = spans["Trace Test"]
    assert spans["increment"].parent_id == root.span_id == spans["decrement"].parent_id
    assert spans["increment"].attributes["mlflow.spanType"] == "func"
    assert spans["increment"].attributes["key"] == "value"
    assert spans["decrement"].attributes["key1"] == "value1"
    assert decoded(root, "mlflow.spanOutputs") == 4


def test_function_wrapping(otlp):
    def invocation(x, y, exp=2):
        raised = mlflow.trace(math.pow)(x, exp)
        return mlflow.trace(math.factorial)(int(raised))

    assert invocation(4, 2) == math.factorial(16)
    spans = by_name(otlp(2))
    assert decoded(spans["pow"], "mlflow.spanInputs") == {"x": 4, "y": 2}
    assert decoded(spans["factorial"], "mlflow.spanOutputs") == math.factorial(16)


def test_customizing_and_updating_span_inside_function(otlp):
    def local_llm(messages, model):
        return f"{model} says hi to {messages[0]['content']}"

    @mlflow.trace(name="call-local-llm", span_type=SpanType.LLM, attributes={"model": "gpt-4o-mini"})
    def invoke(prompt: str):
        return local_llm(messages=[{"role": "user", "content": prompt}], model="gpt-4o-mini")

    @mlflow.trace(span_type=SpanType.LLM)
    def invoke_dynamic(prompt: str):
        span = mlflow.get_current_active_span()
        span.set_attributes({"model": "gpt-4o-mini"})
        return local_llm(messages=[{"role": "user", "content": prompt}], model="gpt-4o-mini")

    invoke("Ann")
    invoke_dynamic("Bob")
    spans = by_name(otlp(2))
    assert spans["call-local-llm"].attributes["model"] == "gpt-4o-mini"
    assert spans["call-local-llm"].attributes["mlflow.spanType"] == "LLM"
    assert spans["invoke_dynamic"].attributes["model"] == "gpt-4o-mini"


def test_trace_tags(otlp):
    @mlflow.trace
    def my_func(x):
        mlflow.update_current_trace(tags={"fruit": "apple"})
        return x + 1

    my_func(1)
    (span,) = otlp(1)
    assert span.attributes["mlflow.traceTag.fruit"] == "apple"


def test_request_and_response_previews(otlp):
    @mlflow.trace(name="Summarization Pipeline")
    def summarize_document(document_content: str, user_instructions: str):
        mlflow.update_current_trace(
            request_preview=f"Doc: {document_content[:30]}... Instr: {user_instructions[:30]}..."
        )
        summary = f"Summary of '{document_content[:20]}...' per '{user_instructions}'"
        mlflow.update_current_trace(response_preview=f"Summary: {summary[:50]}...")
        return summary

    summarize_document("A very long document about many topics. " * 10, "Focus on topic X.")
    (span,) = otlp(1)
    assert span.name == "Summarization Pipeline"
    assert span.attributes["mlflow.trace.requestPreview"].startswith("Doc: A very long document about ")
    assert span.attributes["mlflow.trace.responsePreview"].startswith("Summary: Summary of")


def test_code_block(otlp):
    x, y = 1, 2
    with mlflow.start_span(name="my_span") as span:
        span.set_inputs({"x": x, "y": y})
        z = x + y
        span.set_outputs(z)
    (s,) = otlp(1)
    assert decoded(s, "mlflow.spanInputs") == {"x": 1, "y": 2}
    assert decoded(s, "mlflow.spanOutputs") == 3


def test_code_block_inside_decorated_chat_loop(otlp):
    replies = iter(["hello", "BYE"])

    @mlflow.trace(span_type=SpanType.CHAIN)
    def start_session():
        messages = [{"role": "system", "content": "You are a friendly chat bot"}]
        while True:
            with mlflow.start_span(name="User") as span:
                span.set_inputs(messages)
                user_input = next(replies)
                span.set_outputs(user_input)
            if user_input == "BYE":
                break
            messages.append({"role": "user", "content": user_input})

    start_session()
    spans = otlp(3)
    names = sorted(s.name for s in spans)
    assert names == ["User", "User", "start_session"]  # MLflow 3.18 keeps same-named spans' names
    first = min((s for s in spans if s.name == "User"), key=lambda s: s.start_ns)
    assert decoded(first, "mlflow.spanInputs") == [
        {"role": "system", "content": "You are a friendly chat bot"}
    ]


def test_exceptions_are_recorded_as_events(otlp):
    @mlflow.trace
    def flaky():
        raise ConnectionError("upstream down")

    try:
        flaky()
    except ConnectionError:
        pass
    (span,) = otlp(1)
    assert span.status == "ERROR" and span.events[0][0] == "exception"


def test_decorator_order(otlp):
    def timing(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            start = time.time()
            result = func(*args, **kwargs)
            wrapper.elapsed = time.time() - start
            return result

        return wrapper

    @mlflow.trace(name="outer_order")
    @timing
    def correct(x, y):
        time.sleep(0.02)
        return x + y

    @timing
    @mlflow.trace(name="inner_order")
    def other(x, y):
        time.sleep(0.02)
        return x * y

    assert correct(5, 3) == 8 and other(5, 3) == 15
    spans = by_name(otlp(2))
    # functools.wraps keeps the signature visible, so inputs are bound names in both orders.
    assert decoded(spans["outer_order"], "mlflow.spanInputs") == {"x": 5, "y": 3}
    assert decoded(spans["inner_order"], "mlflow.spanInputs") == {"x": 5, "y": 3}
    assert spans["outer_order"].end_ns - spans["outer_order"].start_ns >= 20_000_000


def test_streaming_default_and_reducer(otlp):
    @mlflow.trace
    def stream_data():
        yield from range(5)

    @mlflow.trace(output_reducer=lambda x: ",".join(x))
    def stream_chars():
        yield from "hello"

    assert list(stream_data()) == [0, 1, 2, 3, 4]
    assert "".join(stream_chars()) == "hello"
    spans = by_name(otlp(2))
    assert decoded(spans["stream_data"], "mlflow.spanOutputs") == [0, 1, 2, 3, 4]
    assert decoded(spans["stream_chars"], "mlflow.spanOutputs") == "h,e,l,l,o"
    assert len(spans["stream_chars"].events) == 5  # the raw chunks stay in the events


def test_multithreading_with_as_completed(otlp):
    @mlflow.trace
    def worker(question: str) -> str:
        return f"answer to {question}"

    @mlflow.trace
    def main(questions: list[str]) -> list[str]:
        results = []
        with ThreadPoolExecutor(max_workers=2) as executor:
            futures = []
            for question in questions:
                ctx = contextvars.copy_context()
                futures.append(executor.submit(ctx.run, worker, question))
            for future in as_completed(futures):
                results.append(future.result())
        return results

    assert len(main(["What is the capital of France?", "What is the capital of Germany?"])) == 2
    spans = otlp(3)
    root = next(s for s in spans if s.name == "main")
    assert sorted(s.name for s in spans if s.parent_id == root.span_id) == ["worker", "worker"]


def test_async_pipeline(otlp):
    @mlflow.trace
    async def async_operation(data: str) -> str:
        await asyncio.sleep(0.01)
        return f"Processed: {data}"

    @mlflow.trace
    async def async_pipeline(items: list[str]) -> list[str]:
        return [await async_operation(item) for item in items]

    assert asyncio.run(async_pipeline(["item1", "item2", "item3"]))[0] == "Processed: item1"
    spans = otlp(4)
    root = next(s for s in spans if s.name == "async_pipeline")
    children = sorted(s.name for s in spans if s.parent_id == root.span_id)
    assert children == ["async_operation"] * 3
