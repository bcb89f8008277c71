"""DSPy auto-tracing through an OpenTelemetry instrumentor, as ``mlflow.dspy.autolog()``.

See ``README.md`` beside this file; the binding itself is ``integrations/instrumented.py``.
"""

from __future__ import annotations

from mlflow_otel.integrations.instrumented import OPENINFERENCE, Instrumentor, InstrumentorIntegration


class DspyIntegration(InstrumentorIntegration):
    name = "dspy"
    extra = "dspy"
    library = ("dspy", "dspy-ai")
    instrumentors = (
        Instrumentor(
            "openinference-instrumentation-dspy",
            "openinference.instrumentation.dspy",
            "DSPyInstrumentor",
            OPENINFERENCE,
        ),
    )


INTEGRATION = DspyIntegration()
