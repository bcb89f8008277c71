"""OpenAI Agents SDK auto-tracing through an OpenTelemetry instrumentor.

As ``mlflow.openai_agents.autolog()``.
See ``README.md`` beside this file; the binding itself is ``integrations/instrumented.py``.
"""

from __future__ import annotations

from mlflow_otel.integrations.instrumented import (
    OPENINFERENCE,
    OPENLLMETRY,
    Instrumentor,
    InstrumentorIntegration,
)


class OpenaiAgentsIntegration(InstrumentorIntegration):
    name = "openai_agents"
    extra = "openai-agents"
    library = ("openai-agents",)
    instrumentors = (
        Instrumentor(
            "openinference-instrumentation-openai-agents",
            "openinference.instrumentation.openai_agents",
            "OpenAIAgentsInstrumentor",
            OPENINFERENCE,
        ),
        Instrumentor(
            "opentelemetry-instrumentation-openai-agents",
            "opentelemetry.instrumentation.openai_agents",
            "OpenAIAgentsInstrumentor",
            OPENLLMETRY,
        ),
    )


INTEGRATION = OpenaiAgentsIntegration()
