"""LangChain auto-tracing through an OpenTelemetry instrumentor, as ``mlflow.langchain.autolog()``.

See ``README.md`` beside this file; the binding itself is ``integrations/instrumented.py``.
"""

from __future__ import annotations

from typing import Any

from mlflow_otel.integrations.instrumented import (
    OPENINFERENCE,
    OPENLLMETRY,
    Instrumentor,
    InstrumentorIntegration,
)


class LangchainIntegration(InstrumentorIntegration):
    name = "langchain"
    extra = "langchain"
    library = ("langchain-core",)
    instrumentors = (
        Instrumentor(
            "openinference-instrumentation-langchain",
            "openinference.instrumentation.langchain",
            "LangChainInstrumentor",
            OPENINFERENCE,
        ),
        Instrumentor(
            "opentelemetry-instrumentation-langchain",
            "opentelemetry.instrumentation.langchain",
            "LangchainInstrumentor",
            OPENLLMETRY,
        ),
    )

    def _instrument(self, **options: Any) -> None:
        super()._instrument(**options)
        if self._active is not None and self._active[0].convention == OPENINFERENCE:
            from mlflow_otel.integrations.langchain import context

            context.enable(self._active[1])  # runs become the current span (context.py)

    def _uninstrument(self) -> None:
        from mlflow_otel.integrations.langchain import context

        context.disable()
        super()._uninstrument()


INTEGRATION = LangchainIntegration()
