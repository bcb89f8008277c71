"""Auto-tracing for the ``openai`` client, as ``mlflow.openai.autolog()``.

``import mlflow_otel as mlflow; mlflow.openai.autolog()`` and every call of an ``OpenAI`` /
``AsyncOpenAI`` / ``AzureOpenAI`` client (or one pointed at any OpenAI-compatible server with
``base_url``) becomes a span: CHAT_MODEL for chat completions and the Responses API, EMBEDDING for
embeddings, LLM for legacy completions, and a span with inputs and outputs for every other endpoint.
Needs ``pip install 'mlflow-otel[openai]'``; importing this module does not import ``openai``.
The integration itself is ``mlflow_otel/integrations/openai/``.
"""

from __future__ import annotations

from typing import Any

from mlflow_otel._log import logger
from mlflow_otel.integrations.openai import INTEGRATION

__all__ = ["autolog"]


def autolog(
    disable: bool = False,
    log_traces: bool = True,
    silent: bool = False,
    inject_trace_context: bool = False,
    **mlflow_only: Any,
) -> None:
    """Trace OpenAI client calls; ``autolog(disable=True)`` puts the client back as it was.

    Calling it again is harmless (settings are re-read, nothing is wrapped twice), and clients
    created before the call are covered, because the client's request layer is wrapped at the class.
    ``inject_trace_context=True`` adds W3C ``traceparent`` headers to OpenAI requests (off by default:
    MLflow injects them unasked). MLflow's other arguments (``log_models``, ``exclusive``,
    ``disable_for_unsupported_versions``, ...) concern MLflow runs and models; they are accepted and
    ignored so existing calls keep working.
    """
    if mlflow_only and not silent:
        logger.debug("mlflow_otel.openai.autolog: ignoring MLflow-only arguments %s", sorted(mlflow_only))
    INTEGRATION.autolog(
        disable=disable, log_traces=log_traces, silent=silent, inject_trace_context=inject_trace_context
    )
