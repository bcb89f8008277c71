"""Anthropic auto-tracing through an OpenTelemetry instrumentor, as ``mlflow.anthropic.autolog()``.

See ``README.md`` beside this file; the binding itself is ``integrations/instrumented.py``.
"""

from __future__ import annotations

from mlflow_otel.integrations.instrumented import (
    OPENINFERENCE,
    OPENLLMETRY,
    Instrumentor,
    InstrumentorIntegration,
)


class AnthropicIntegration(InstrumentorIntegration):
    name = "anthropic"
    extra = "anthropic"
    library = ("anthropic",)
    instrumentors = (
        Instrumentor(
            "openinference-instrumentation-anthropic",
            "openinference.instrumentation.anthropic",
            "AnthropicInstrumentor",
            OPENINFERENCE,
        ),
        Instrumentor(
            "opentelemetry-instrumentation-anthropic",
            "opentelemetry.instrumentation.anthropic",
            "AnthropicInstrumentor",
            OPENLLMETRY,
        ),
    )


INTEGRATION = AnthropicIntegration()
