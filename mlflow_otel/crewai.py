"""Auto-tracing for CrewAI, as ``mlflow.crewai.autolog()``.

``import mlflow_otel as mlflow; mlflow.crewai.autolog()`` traces CrewAI crews, agents, tasks and
tools through an existing OpenTelemetry instrumentor bound to mlflow-otel's tracer provider; its
spans are mapped to MLflow's span model on the way out. Needs ``pip install 'mlflow-otel[crewai]'``;
importing this module imports neither the library nor the instrumentor. The integration itself is
``mlflow_otel/integrations/crewai/``.
"""

from mlflow_otel.integrations.base import autolog_face
from mlflow_otel.integrations.crewai import INTEGRATION

__all__ = ["autolog"]

autolog = autolog_face(INTEGRATION, "CrewAI")
