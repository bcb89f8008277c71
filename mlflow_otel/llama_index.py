"""Auto-tracing for LlamaIndex, as ``mlflow.llama_index.autolog()``.

``import mlflow_otel as mlflow; mlflow.llama_index.autolog()`` traces LlamaIndex query engines,
workflows, LLMs, retrievers and embeddings through an existing OpenTelemetry instrumentor bound to
mlflow-otel's tracer provider; its spans are mapped to MLflow's span model on the way out. Needs
``pip install 'mlflow-otel[llama-index]'``; importing this module imports neither the library nor
the instrumentor. The integration itself is ``mlflow_otel/integrations/llama_index/``.
"""

from mlflow_otel.integrations.base import autolog_face
from mlflow_otel.integrations.llama_index import INTEGRATION

__all__ = ["autolog"]

autolog = autolog_face(INTEGRATION, "LlamaIndex")
