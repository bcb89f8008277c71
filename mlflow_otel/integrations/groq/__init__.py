"""Groq auto-tracing through an OpenTelemetry instrumentor, as ``mlflow.groq.autolog()``.

See ``README.md`` beside this file; the binding itself is ``integrations/instrumented.py``.
"""

from __future__ import annotations

from mlflow_otel.integrations.instrumented import (
    OPENINFERENCE,
    OPENLLMETRY,
    Instrumentor,
    InstrumentorIntegration,
)


class GroqIntegration(InstrumentorIntegration):
    name = "groq"
    extra = "groq"
    library = ("groq",)
    instrumentors = (
        Instrumentor(
            "openinference-instrumentation-groq",
            "openinference.instrumentation.groq",
            "GroqInstrumentor",
            OPENINFERENCE,
        ),
        Instrumentor(
            "opentelemetry-instrumentation-groq",
            "opentelemetry.instrumentation.groq",
            "GroqInstrumentor",
            OPENLLMETRY,
        ),
    )


INTEGRATION = GroqIntegration()
