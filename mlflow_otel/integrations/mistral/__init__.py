"""Mistral AI auto-tracing through an OpenTelemetry instrumentor, as ``mlflow.mistral.autolog()``.

See ``README.md`` beside this file; the binding itself is ``integrations/instrumented.py``.
"""

from __future__ import annotations

from mlflow_otel.integrations.instrumented import (
    OPENINFERENCE,
    OPENLLMETRY,
    Instrumentor,
    InstrumentorIntegration,
)


class MistralIntegration(InstrumentorIntegration):
    name = "mistral"
    extra = "mistral"
    library = ("mistralai",)
    instrumentors = (
        Instrumentor(
            "openinference-instrumentation-mistralai",
            "openinference.instrumentation.mistralai",
            "MistralAIInstrumentor",
            OPENINFERENCE,
        ),
        Instrumentor(
            "opentelemetry-instrumentation-mistralai",
            "opentelemetry.instrumentation.mistralai",
            "MistralAiInstrumentor",
            OPENLLMETRY,
        ),
    )


INTEGRATION = MistralIntegration()
