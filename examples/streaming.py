"""Streaming: a traced generator, its items recorded as they are yielded, reduced to one output.

`@mlflow.trace(output_reducer=...)` on a generator records each yielded item as a
`mlflow.chunk.item.<i>` span event and the reducer's result as the span's output, as MLflow does.
The span ends when the consumer finishes, stops early or the generator raises; a consumer that
stops early does not leave the trace open.

    python examples/streaming.py && mlflow-otel show -v
"""

from collections.abc import Iterator

import mlflow_otel as mlflow
from mlflow_otel.entities import SpanType


def join_tokens(tokens: list[str]) -> str:
    return "".join(tokens)


@mlflow.trace(span_type=SpanType.LLM, output_reducer=join_tokens)
def generate(prompt: str) -> Iterator[str]:
    for word in f"Streaming an answer to {prompt!r}".split(" "):
        yield word + " "


@mlflow.trace(span_type=SpanType.CHAIN)
def answer(prompt: str) -> str:
    return "".join(generate(prompt)).strip()


@mlflow.trace(span_type=SpanType.CHAIN)
def first_words(prompt: str, n: int) -> str:
    words = []
    for token in generate(prompt):  # the consumer stops early; the span still ends
        words.append(token)
        if len(words) == n:
            break
    return "".join(words).strip()


if __name__ == "__main__":
    for token in generate("what is a span?"):
        print(token, end="", flush=True)
    print()
    print(answer("what is a trace?"))
    print(first_words("what is OTLP?", 2))
