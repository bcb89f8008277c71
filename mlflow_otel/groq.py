"""Auto-tracing for Groq, as ``mlflow.groq.autolog()``.

``import mlflow_otel as mlflow; mlflow.groq.autolog()`` traces the ``groq`` client's chat
completions through an existing OpenTelemetry instrumentor bound to mlflow-otel's tracer provider;
its spans are mapped to MLflow's span model on the way out. Needs ``pip install
'mlflow-otel[groq]'``; importing this module imports neither the library nor the instrumentor. The
integration itself is ``mlflow_otel/integrations/groq/``.
"""

from mlflow_otel.integrations.base import autolog_face
from mlflow_otel.integrations.groq import INTEGRATION

__all__ = ["autolog"]

autolog = autolog_face(INTEGRATION, "Groq")
