"""Auto-tracing for Google Gemini, as ``mlflow.gemini.autolog()``.

``import mlflow_otel as mlflow; mlflow.gemini.autolog()`` traces the ``google-genai`` client
(``models.generate_content``, streams, async) through an existing OpenTelemetry instrumentor bound
to mlflow-otel's tracer provider; its spans are mapped to MLflow's span model on the way out. Needs
``pip install 'mlflow-otel[gemini]'``; importing this module imports neither the library nor the
instrumentor. The integration itself is ``mlflow_otel/integrations/gemini/``.
"""

from mlflow_otel.integrations.base import autolog_face
from mlflow_otel.integrations.gemini import INTEGRATION

__all__ = ["autolog"]

autolog = autolog_face(INTEGRATION, "Google Gemini")
