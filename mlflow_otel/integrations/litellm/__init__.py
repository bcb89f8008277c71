"""LiteLLM auto-tracing through an OpenTelemetry instrumentor, as ``mlflow.litellm.autolog()``.

See ``README.md`` beside this file; the binding itself is ``integrations/instrumented.py``.
"""

from __future__ import annotations

from mlflow_otel.integrations.instrumented import OPENINFERENCE, Instrumentor, InstrumentorIntegration


class LitellmIntegration(InstrumentorIntegration):
    name = "litellm"
    extra = "litellm"
    library = ("litellm",)
    instrumentors = (
        Instrumentor(
            "openinference-instrumentation-litellm",
            "openinference.instrumentation.litellm",
            "LiteLLMInstrumentor",
            OPENINFERENCE,
        ),
    )


INTEGRATION = LitellmIntegration()
