"""The RAG app of tests/test_phoenix.py traced Phoenix's own way, the reference our rendering is held
to: ``arize-phoenix-otel``'s ``register``, ``openinference-instrumentation-openai`` for the chat call,
OpenInference's span helpers (``@tracer.agent`` / ``@tracer.chain`` / ``@tracer.tool``, a RETRIEVER
span carrying ``get_retriever_attributes``) and its context helpers (``using_session``,
``using_user``, ``using_metadata``, ``using_tags``).

Runs with the Phoenix venv's python (tests/backends/install.sh installs these packages there), not
this project's: ``python tests/phoenix_reference_app.py ENDPOINT PROJECT OPENAI_BASE_URL``, where
ENDPOINT is Phoenix's OTLP/HTTP traces URL. Exits once every span is exported.
"""

from __future__ import annotations

import sys
from typing import Any

from openai import OpenAI
from openinference.instrumentation import (
    get_retriever_attributes,
    using_metadata,
    using_session,
    using_tags,
    using_user,
)
from openinference.instrumentation.openai import OpenAIInstrumentor
from phoenix.otel import register


def main(endpoint: str, project: str, openai_base_url: str) -> None:
    provider = register(
        endpoint=endpoint, project_name=project, batch=False, set_global_tracer_provider=False, verbose=False
    )
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer(__name__)
    client = OpenAI(base_url=openai_base_url, api_key="test")

    def search_docs(query: str) -> list[dict[str, Any]]:
        with tracer.start_as_current_span("search_docs", openinference_span_kind="retriever") as span:
            span.set_input(query)
            documents = [
                {"content": "Refunds are accepted within 30 days.", "id": "doc-1", "score": 0.92, "metadata": {"score": 0.92, "source": "refunds.md"}},
                {"content": "Shipping takes 5 days.", "id": "doc-2", "score": 0.41, "metadata": {"score": 0.41, "source": "shipping.md"}},
            ]  # fmt: skip
            span.set_attributes(get_retriever_attributes(documents=documents))
            return documents

    @tracer.tool
    def lookup_order(order_id: int) -> dict[str, Any]:
        return {"order_id": order_id, "status": "delivered"}

    @tracer.tool
    def cancel_order(order_id: int) -> None:
        raise LookupError(f"order {order_id} cannot be cancelled")

    @tracer.agent
    def support_agent(question: str) -> str:
        docs = search_docs(question)
        lookup_order(42)
        try:
            cancel_order(42)
        except LookupError:
            pass
        answer = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "Answer from the documents."},
                {"role": "user", "content": docs[0]["content"] + " " + question},
            ],
        )
        return answer.choices[0].message.content

    @tracer.chain
    def answer(question: str) -> str:
        return support_agent(question)

    with (
        using_session("session-px-1"),
        using_user("ann"),
        using_metadata({"app_version": "1.4"}),
        using_tags(["environment:production"]),
    ):
        assert "Refunds" in answer("Can I return my order?")
    provider.force_flush()
    provider.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:4])
