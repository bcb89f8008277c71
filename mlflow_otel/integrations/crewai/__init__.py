"""CrewAI auto-tracing through an OpenTelemetry instrumentor, as ``mlflow.crewai.autolog()``.

See ``README.md`` beside this file; the binding itself is ``integrations/instrumented.py``.
"""

from __future__ import annotations

from mlflow_otel.integrations.instrumented import (
    OPENINFERENCE,
    OPENLLMETRY,
    Instrumentor,
    InstrumentorIntegration,
)


class CrewaiIntegration(InstrumentorIntegration):
    name = "crewai"
    extra = "crewai"
    library = ("crewai",)
    instrumentors = (
        Instrumentor(
            "openinference-instrumentation-crewai",
            "openinference.instrumentation.crewai",
            "CrewAIInstrumentor",
            OPENINFERENCE,
        ),
        Instrumentor(
            "opentelemetry-instrumentation-crewai",
            "opentelemetry.instrumentation.crewai",
            "CrewAIInstrumentor",
            OPENLLMETRY,
        ),
    )


INTEGRATION = CrewaiIntegration()
