"""Auto-tracing for Anthropic, as ``mlflow.anthropic.autolog()``.

``import mlflow_otel as mlflow; mlflow.anthropic.autolog()`` traces the ``anthropic`` client's
``messages`` calls through an existing OpenTelemetry instrumentor bound to mlflow-otel's tracer
provider; its spans are mapped to MLflow's span model on the way out. Needs ``pip install
'mlflow-otel[anthropic]'``; importing this module imports neither the library nor the instrumentor.
The integration itself is ``mlflow_otel/integrations/anthropic/``.
"""

from mlflow_otel.integrations.anthropic import INTEGRATION
from mlflow_otel.integrations.base import autolog_face

__all__ = ["autolog"]

autolog = autolog_face(INTEGRATION, "Anthropic")
