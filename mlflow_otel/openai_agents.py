"""Auto-tracing for OpenAI Agents SDK, as ``mlflow.openai_agents.autolog()``.

``import mlflow_otel as mlflow; mlflow.openai_agents.autolog()`` traces agent runs, model responses,
tools, handoffs and guardrails of ``openai-agents`` through an existing OpenTelemetry instrumentor
bound to mlflow-otel's tracer provider; its spans are mapped to MLflow's span model on the way out.
Needs ``pip install 'mlflow-otel[openai-agents]'``; importing this module imports neither the
library nor the instrumentor. The integration itself is ``mlflow_otel/integrations/openai_agents/``.
"""

from mlflow_otel.integrations.base import autolog_face
from mlflow_otel.integrations.openai_agents import INTEGRATION

__all__ = ["autolog"]

autolog = autolog_face(INTEGRATION, "OpenAI Agents SDK")
