"""LlamaIndex auto-tracing through an OpenTelemetry instrumentor, as ``mlflow.llama_index.autolog()``.

See ``README.md`` beside this file; the binding itself is ``integrations/instrumented.py``.
"""

from __future__ import annotations

from mlflow_otel.integrations.instrumented import (
    OPENINFERENCE,
    OPENLLMETRY,
    Instrumentor,
    InstrumentorIntegration,
)


class LlamaIndexIntegration(InstrumentorIntegration):
    name = "llama_index"
    extra = "llama-index"
    library = ("llama-index-core",)
    instrumentors = (
        Instrumentor(
            "openinference-instrumentation-llama-index",
            "openinference.instrumentation.llama_index",
            "LlamaIndexInstrumentor",
            OPENINFERENCE,
        ),
        Instrumentor(
            "opentelemetry-instrumentation-llamaindex",
            "opentelemetry.instrumentation.llamaindex",
            "LlamaIndexInstrumentor",
            OPENLLMETRY,
        ),
    )


INTEGRATION = LlamaIndexIntegration()
