"""Auto-tracing for OpenAI Agents SDK, as ``mlflow.openai_agents.autolog()``.

``import mlflow_otel as mlflow; mlflow.openai_agents.autolog()`` traces agent runs, model responses,
tools, handoffs and guardrails of ``openai-agents`` through an existing OpenTelemetry instrumentor
bound to mlflow-otel's tracer provider; its spans are mapped to MLflow's span model on the way out.
Needs ``pip install 'mlflow-otel[openai-agents]'``; importing this module imports neither the
library nor the instrumentor. The integration itself is ``mlflow_otel/integrations/openai_agents/``.
"""

from __future__ import annotations

from typing import Any, Optional

from mlflow_otel._log import logger
from mlflow_otel.integrations.openai_agents import INTEGRATION

__all__ = ["autolog"]


def autolog(
    disable: bool = False,
    log_traces: bool = True,
    silent: bool = False,
    instrumentor: Optional[str] = None,
    **mlflow_only: Any,
) -> None:
    """Trace OpenAI Agents SDK; ``autolog(disable=True)`` uninstruments it. Calling it again changes nothing.

    ``instrumentor`` picks one of the supported instrumentors by distribution or convention
    (``"openinference"``, ``"gen_ai"``, ``"openllmetry"``) instead of the stated preference. MLflow's
    other arguments (``log_models``, ``exclusive``, ``disable_for_unsupported_versions``, ...)
    concern MLflow runs and models; they are accepted and ignored.
    """
    if mlflow_only and not silent:
        logger.debug(
            "mlflow_otel.openai_agents.autolog: ignoring MLflow-only arguments %s", sorted(mlflow_only)
        )
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent, instrumentor=instrumentor)
