"""Auto-tracing for Amazon Bedrock, as ``mlflow.bedrock.autolog()``.

``import mlflow_otel as mlflow; mlflow.bedrock.autolog()`` traces ``boto3`` ``bedrock-runtime``
clients (``converse``, ``invoke_model``) through an existing OpenTelemetry instrumentor bound to
mlflow-otel's tracer provider; its spans are mapped to MLflow's span model on the way out. Needs
``pip install 'mlflow-otel[bedrock]'``; importing this module imports neither the library nor the
instrumentor. The integration itself is ``mlflow_otel/integrations/bedrock/``.
"""

from mlflow_otel.integrations.base import autolog_face
from mlflow_otel.integrations.bedrock import INTEGRATION

__all__ = ["autolog"]

autolog = autolog_face(INTEGRATION, "Amazon Bedrock")
