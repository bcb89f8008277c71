"""Amazon Bedrock auto-tracing through an OpenTelemetry instrumentor, as ``mlflow.bedrock.autolog()``.

See ``README.md`` beside this file; the binding itself is ``integrations/instrumented.py``.
"""

from __future__ import annotations

from mlflow_otel.integrations.instrumented import (
    OPENINFERENCE,
    OPENLLMETRY,
    Instrumentor,
    InstrumentorIntegration,
)


class BedrockIntegration(InstrumentorIntegration):
    name = "bedrock"
    extra = "bedrock"
    library = ("boto3",)
    instrumentors = (
        Instrumentor(
            "openinference-instrumentation-bedrock",
            "openinference.instrumentation.bedrock",
            "BedrockInstrumentor",
            OPENINFERENCE,
        ),
        Instrumentor(
            "opentelemetry-instrumentation-bedrock",
            "opentelemetry.instrumentation.bedrock",
            "BedrockInstrumentor",
            OPENLLMETRY,
        ),
    )


INTEGRATION = BedrockIntegration()
