"""Auto-tracing for LiteLLM, as ``mlflow.litellm.autolog()``.

``import mlflow_otel as mlflow; mlflow.litellm.autolog()`` traces ``litellm.completion`` /
``acompletion`` / ``embedding`` for every provider through an existing OpenTelemetry instrumentor
bound to mlflow-otel's tracer provider; its spans are mapped to MLflow's span model on the way out.
Needs ``pip install 'mlflow-otel[litellm]'``; importing this module imports neither the library nor
the instrumentor. The integration itself is ``mlflow_otel/integrations/litellm/``.
"""

from __future__ import annotations

from typing import Any, Optional

from mlflow_otel._log import logger
from mlflow_otel.integrations.litellm import INTEGRATION

__all__ = ["autolog"]


def autolog(
    disable: bool = False,
    log_traces: bool = True,
    silent: bool = False,
    instrumentor: Optional[str] = None,
    **mlflow_only: Any,
) -> None:
    """Trace LiteLLM; ``autolog(disable=True)`` uninstruments it. Calling it again changes nothing.

    ``instrumentor`` picks one of the supported instrumentors by distribution or convention
    (``"openinference"``, ``"gen_ai"``, ``"openllmetry"``) instead of the stated preference. MLflow's
    other arguments (``log_models``, ``exclusive``, ``disable_for_unsupported_versions``, ...)
    concern MLflow runs and models; they are accepted and ignored.
    """
    if mlflow_only and not silent:
        logger.debug("mlflow_otel.litellm.autolog: ignoring MLflow-only arguments %s", sorted(mlflow_only))
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent, instrumentor=instrumentor)
