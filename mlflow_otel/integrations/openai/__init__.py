"""The OpenAI integration: our own wrapper of the client's request layer (see ``README.md``)."""

from __future__ import annotations

from typing import Any

from mlflow_otel.integrations.base import Integration


class OpenAIIntegration(Integration):
    """Wraps ``SyncAPIClient.request`` / ``AsyncAPIClient.request`` at the class (``patch.py``)."""

    name = "openai"
    extra = "openai"
    dependencies = ("openai",)

    def _instrument(self, inject_trace_context: bool = False, **ignored: Any) -> None:
        from mlflow_otel.integrations.openai import patch

        patch.install(inject_trace_context=inject_trace_context)

    def _uninstrument(self) -> None:
        from mlflow_otel.integrations.openai import patch

        patch.uninstall()


INTEGRATION = OpenAIIntegration()
