"""Auto-tracing for LangChain, as ``mlflow.langchain.autolog()``.

``import mlflow_otel as mlflow; mlflow.langchain.autolog()`` traces LangChain and LangGraph
runnables (chains, graphs, chat models, tools, retrievers) through an existing OpenTelemetry
instrumentor bound to mlflow-otel's tracer provider; its spans are mapped to MLflow's span model on
the way out. Needs ``pip install 'mlflow-otel[langchain]'``; importing this module imports neither
the library nor the instrumentor. The integration itself is ``mlflow_otel/integrations/langchain/``.
"""

from mlflow_otel.integrations.base import autolog_face
from mlflow_otel.integrations.langchain import INTEGRATION

__all__ = ["autolog"]

autolog = autolog_face(INTEGRATION, "LangChain")
