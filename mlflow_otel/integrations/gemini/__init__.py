"""Google Gemini (google-genai) auto-tracing through an OpenTelemetry instrumentor.

As ``mlflow.gemini.autolog()``.
See ``README.md`` beside this file; the binding itself is ``integrations/instrumented.py``.
"""

from __future__ import annotations

from mlflow_otel.integrations.instrumented import GEN_AI, OPENINFERENCE, Instrumentor, InstrumentorIntegration


class GeminiIntegration(InstrumentorIntegration):
    name = "gemini"
    extra = "gemini"
    library = ("google-genai",)
    instrumentors = (
        Instrumentor(
            "openinference-instrumentation-google-genai",
            "openinference.instrumentation.google_genai",
            "GoogleGenAIInstrumentor",
            OPENINFERENCE,
        ),
        Instrumentor(
            "opentelemetry-instrumentation-google-genai",
            "opentelemetry.instrumentation.google_genai",
            "GoogleGenAiSdkInstrumentor",
            GEN_AI,
        ),
    )


INTEGRATION = GeminiIntegration()
