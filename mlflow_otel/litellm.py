"""Auto-tracing for LiteLLM, as ``mlflow.litellm.autolog()``.

``import mlflow_otel as mlflow; mlflow.litellm.autolog()`` traces ``litellm.completion`` /
``acompletion`` / ``embedding`` for every provider through an existing OpenTelemetry instrumentor
bound to mlflow-otel's tracer provider; its spans are mapped to MLflow's span model on the way out.
Needs ``pip install 'mlflow-otel[litellm]'``; importing this module imports neither the library nor
the instrumentor. The integration itself is ``mlflow_otel/integrations/litellm/``.
"""

from mlflow_otel.integrations.base import autolog_face
from mlflow_otel.integrations.litellm import INTEGRATION

__all__ = ["autolog"]

autolog = autolog_face(INTEGRATION, "LiteLLM")
