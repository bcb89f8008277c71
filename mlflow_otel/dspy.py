"""Auto-tracing for DSPy, as ``mlflow.dspy.autolog()``.

``import mlflow_otel as mlflow; mlflow.dspy.autolog()`` traces DSPy modules, language-model calls
and adapters through an existing OpenTelemetry instrumentor bound to mlflow-otel's tracer provider;
its spans are mapped to MLflow's span model on the way out. Needs ``pip install
'mlflow-otel[dspy]'``; importing this module imports neither the library nor the instrumentor. The
integration itself is ``mlflow_otel/integrations/dspy/``.
"""

from mlflow_otel.integrations.base import autolog_face
from mlflow_otel.integrations.dspy import INTEGRATION

__all__ = ["autolog"]

autolog = autolog_face(INTEGRATION, "DSPy")
