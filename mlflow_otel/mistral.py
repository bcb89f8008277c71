"""Auto-tracing for Mistral AI, as ``mlflow.mistral.autolog()``.

``import mlflow_otel as mlflow; mlflow.mistral.autolog()`` traces the ``mistralai`` client's chat
calls through an existing OpenTelemetry instrumentor bound to mlflow-otel's tracer provider; its
spans are mapped to MLflow's span model on the way out. Needs ``pip install
'mlflow-otel[mistral]'``; importing this module imports neither the library nor the instrumentor.
The integration itself is ``mlflow_otel/integrations/mistral/``.
"""

from mlflow_otel.integrations.base import autolog_face
from mlflow_otel.integrations.mistral import INTEGRATION

__all__ = ["autolog"]

autolog = autolog_face(INTEGRATION, "Mistral AI")
