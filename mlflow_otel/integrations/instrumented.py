"""An integration that binds an existing OpenTelemetry instrumentor to our tracer provider.

MLflow patches each library itself; the OpenTelemetry ecosystem already maintains instrumentors for
them (OpenInference, the OTel GenAI instrumentations, OpenLLMetry), kept current with each
library's releases. An ``InstrumentorIntegration`` names its library and the instrumentors that
can trace it, in a stated preference (``integrations/registry.py``: OpenInference first, then the
OpenTelemetry GenAI instrumentation, then OpenLLMetry), and ``autolog()`` binds the first one that
is installed and compatible with the installed library (its own ``instrumentation_dependencies``)
with ``instrument(tracer_provider=...)``: the stable provider of ``integrations/provider.py``, never
the application's global one. Its spans then go through our pipeline, where the normalization
processor maps each convention to MLflow's span model (``processors/normalization/``).

``disable=True`` uninstruments; a second call changes nothing (OpenTelemetry instrumentors are
singletons and refuse a second ``instrument``); an instrumentor that the application instrumented
itself (with its own provider) is left alone, with one warning. A library without an installed
instrumentor is one message naming the extra (``integrations/base.py``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from mlflow_otel._log import logger
from mlflow_otel.integrations.base import Integration, MissingDependency
from mlflow_otel.integrations.provider import TRACER_PROVIDER

#: The attribute conventions an instrumentor speaks (what the normalization processor maps).
OPENINFERENCE = "openinference"
GEN_AI = "gen_ai"
OPENLLMETRY = "openllmetry"


@dataclass(frozen=True)
class Instrumentor:
    """One OpenTelemetry instrumentor: its distribution, where its class lives, its convention."""

    distribution: str
    module: str
    class_name: str
    convention: str

    def installed(self) -> bool:
        return _installed(self.distribution)

    def load(self) -> Any:
        """The instrumentor (a ``BaseInstrumentor`` singleton). Imports its module, not the library
        (instrumentors import it at ``instrument``). A renamed class is found by its base."""
        from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

        module = importlib.import_module(self.module)
        cls = getattr(module, self.class_name, None)
        if cls is None:
            found = [
                v
                for v in vars(module).values()
                if isinstance(v, type) and issubclass(v, BaseInstrumentor) and v is not BaseInstrumentor
            ]
            if len(found) != 1:
                raise MissingDependency(f"{self.distribution} has no {self.class_name} in {self.module}")
            cls = found[0]
        return cls()


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _conflict(instance: Any) -> Optional[str]:
    """Why the installed library does not satisfy the instrumentor's declared range, or None."""
    from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

    conflict = get_dependency_conflicts(list(instance.instrumentation_dependencies()))
    return str(conflict) if conflict is not None else None


class InstrumentorIntegration(Integration):
    """A library traced through the first installed, compatible instrumentor in ``instrumentors``."""

    #: Distributions of the library itself: any one installed counts (``dspy`` or ``dspy-ai``).
    library: Sequence[str] = ()
    #: Candidate instrumentors, preferred first.
    instrumentors: Sequence[Instrumentor] = ()

    def __init__(self) -> None:
        super().__init__()
        self._active: Optional[tuple[Instrumentor, Any]] = None

    @property
    def active(self) -> Optional[Instrumentor]:
        """The instrumentor bound to our provider now, if any."""
        return self._active[0] if self._active is not None else None

    def library_installed(self) -> bool:
        return any(_installed(dist) for dist in self.library)

    def available(self) -> list[Instrumentor]:
        return [candidate for candidate in self.instrumentors if candidate.installed()]

    def missing_dependencies(self) -> list[str]:
        missing = []
        if not self.library_installed():
            missing.append(self.library[0])
        if not self.available():
            missing.append(self.instrumentors[0].distribution)
        return missing

    def _choose(self, wanted: Optional[str]) -> list[Instrumentor]:
        available = self.available()
        if wanted is None:
            return available
        chosen = [c for c in available if wanted in (c.distribution, c.convention)]
        if not chosen:
            names = ", ".join(c.distribution for c in self.instrumentors)
            raise MissingDependency(
                f"mlflow_otel.{self.name}.autolog(instrumentor={wanted!r}): not installed; "
                f"known instrumentors for {self.name}: {names}"
            )
        return chosen

    def _instrument(self, instrumentor: Optional[str] = None, **ignored: Any) -> None:
        candidates = self._choose(instrumentor)
        if self._active is not None:
            if self._active[0] in candidates[:1]:
                return  # already bound to the one that would be chosen: nothing changes
            self._uninstrument()
        reasons = []
        for candidate in candidates:
            instance = candidate.load()
            if instance.is_instrumented_by_opentelemetry:
                logger.warning(
                    "mlflow_otel.%s.autolog(): %s is already instrumented by the application with "
                    "its own tracer provider; its spans go there, not through mlflow-otel. Call its "
                    "uninstrument() first to trace it here.",
                    self.name,
                    candidate.distribution,
                )
                return
            conflict = _conflict(instance)
            if conflict is not None:
                reasons.append(f"{candidate.distribution}: {conflict}")
                continue
            instance.instrument(skip_dep_check=True, **self._arguments(candidate))
            self._active = (candidate, instance)
            logger.debug("mlflow_otel.%s.autolog(): bound %s", self.name, candidate.distribution)
            return
        raise MissingDependency(
            f"mlflow_otel.{self.name}.autolog(): no installed instrumentor supports the installed "
            f"library ({'; '.join(reasons)}): pip install -U 'mlflow-otel[{self.extra or self.name}]'"
        )

    def _arguments(self, candidate: Instrumentor) -> dict[str, Any]:
        """What ``instrument()`` is given: our provider, and for the GenAI instrumentations the
        content hook and log events captured onto the span (``integrations/genai_content.py``)."""
        arguments: dict[str, Any] = {"tracer_provider": TRACER_PROVIDER}
        if candidate.convention == GEN_AI:
            from mlflow_otel.integrations import genai_content

            arguments["logger_provider"] = genai_content.LOGGER_PROVIDER
            arguments["completion_hook"] = genai_content.COMPLETION_HOOK
        return arguments

    def _uninstrument(self) -> None:
        if self._active is not None:
            _, instance = self._active
            self._active = None
            if instance.is_instrumented_by_opentelemetry:
                instance.uninstrument()
