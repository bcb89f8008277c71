"""Every auto-tracing integration, and ``mlflow_otel.autolog()`` over all of them.

Which instrumentor traces a library, when several are installed, is stated once here:

1. **Our own** wrapper where we have one (OpenAI: ``integrations/openai/``, streams and every endpoint);
2. **OpenInference** (``openinference-instrumentation-<library>``): the broadest set, and it records
   inputs, outputs, messages, tools and token usage on the span itself;
3. **OpenTelemetry GenAI** instrumentations (``opentelemetry-instrumentation-google-genai``, ...):
   the conventions' own, content through the completion hook and log events
   (``integrations/genai_content.py``);
4. **OpenLLMetry** (Traceloop's ``opentelemetry-instrumentation-<library>``).

Each integration lists its candidates in this order; the first installed one that supports the
installed library version is bound (``integrations/instrumented.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Optional

from mlflow_otel._log import logger
from mlflow_otel.integrations import (
    anthropic,
    bedrock,
    crewai,
    dspy,
    gemini,
    groq,
    langchain,
    litellm,
    llama_index,
    mistral,
    openai,
    openai_agents,
)
from mlflow_otel.integrations.base import Integration
from mlflow_otel.integrations.instrumented import InstrumentorIntegration

#: Every integration by MLflow's flavor name (``mlflow.<name>.autolog``).
INTEGRATIONS: Mapping[str, Integration] = {
    integration.name: integration
    for integration in (
        openai.INTEGRATION,
        anthropic.INTEGRATION,
        langchain.INTEGRATION,
        llama_index.INTEGRATION,
        dspy.INTEGRATION,
        bedrock.INTEGRATION,
        gemini.INTEGRATION,
        groq.INTEGRATION,
        mistral.INTEGRATION,
        litellm.INTEGRATION,
        crewai.INTEGRATION,
        openai_agents.INTEGRATION,
    )
}


def _library_installed(integration: Integration) -> bool:
    if isinstance(integration, InstrumentorIntegration):
        return integration.library_installed()
    return not integration.missing_dependencies()


def installed(names: Optional[Iterable[str]] = None) -> list[Integration]:
    """Integrations whose library is installed (their instrumentor may still be missing)."""
    chosen = INTEGRATIONS.values() if names is None else [INTEGRATIONS[n] for n in names]
    return [integration for integration in chosen if _library_installed(integration)]


def autolog(
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_models: bool = True,
    log_datasets: bool = True,
    log_traces: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    extra_tags: Optional[dict[str, str]] = None,
    exclude_flavors: Optional[list[str]] = None,
    **mlflow_only: Any,
) -> None:
    """MLflow's ``mlflow.autolog()``: trace every supported library that is installed.

    A library installed without an instrumentor is named in one message with the extras to install.
    ``disable=True`` (or ``log_traces=False``) switches every integration off. ``exclude_flavors``
    leaves the named ones as they are. MLflow's run and model arguments (``log_models``,
    ``log_datasets``, ``extra_tags``, ...) concern MLflow runs and are accepted and ignored.
    """
    excluded = set(exclude_flavors or ())
    chosen = [i for i in installed() if i.name not in excluded]
    if disable or not log_traces:
        for integration in chosen:
            integration.autolog(disable=True)
        return
    lacking = []
    for integration in chosen:
        if integration.missing_dependencies():
            lacking.append(integration)
            continue
        integration.autolog(silent=silent)
    if lacking and not silent:
        names = ", ".join(i.name for i in lacking)
        extras = ",".join(i.extra or i.name for i in lacking)
        logger.warning(
            "mlflow_otel.autolog(): %s installed without an instrumentor, not traced: "
            "pip install 'mlflow-otel[%s]'",
            names,
            extras,
        )
