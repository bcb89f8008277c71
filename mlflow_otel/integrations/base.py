"""The base every auto-tracing integration implements (OpenTelemetry's ``BaseInstrumentor`` shape).

An integration says which packages it needs (``dependencies``) and how to switch tracing on and off
for its library (``_instrument`` / ``_uninstrument``). The base makes ``instrument()`` idempotent,
checks the dependencies first (a missing one is one clear message naming the extra to install), and
maps MLflow's ``<library>.autolog(disable=, silent=, log_traces=, ...)`` arguments onto it. A new
library's auto-tracing is one module: a subclass and an ``autolog`` face.
"""

from __future__ import annotations

import importlib.metadata
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Callable, Optional

from mlflow_otel._log import logger


class MissingDependency(ImportError):
    """A package the integration needs is not installed."""


class Integration(ABC):
    """One library's auto-tracing. Subclasses set ``name``, ``extra`` and ``dependencies``."""

    #: The library's name as MLflow spells the flavor (``mlflow.<name>.autolog``).
    name: str = ""
    #: The optional extra that installs what it needs: ``pip install 'mlflow-otel[<extra>]'``.
    extra: str = ""
    #: Distribution names that must be installed (versions are the extra's business).
    dependencies: Sequence[str] = ()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instrumented = False

    @property
    def is_instrumented(self) -> bool:
        return self._instrumented

    def missing_dependencies(self) -> list[str]:
        missing = []
        for dist in self.dependencies:
            try:
                importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                missing.append(dist)
        return missing

    def instrument(self, **options: Any) -> None:
        """Switch tracing on (again, with new options, if it was on). Raises ``MissingDependency``."""
        missing = self.missing_dependencies()
        if missing:
            raise MissingDependency(
                f"mlflow_otel.{self.name}.autolog() needs {', '.join(missing)}: "
                f"pip install 'mlflow-otel[{self.extra or self.name}]'"
            )
        with self._lock:
            self._instrument(**options)
            self._instrumented = True

    def uninstrument(self) -> None:
        with self._lock:
            if self._instrumented:
                self._uninstrument()
                self._instrumented = False

    def autolog(
        self, disable: bool = False, log_traces: bool = True, silent: bool = False, **options: Any
    ) -> None:
        """MLflow's ``autolog`` arguments: ``disable`` / ``log_traces=False`` switch tracing off;
        ``silent`` hides our messages. The integration's own options are passed on; MLflow's
        others (``log_models``, ``exclusive``, ...) concern MLflow runs and models and are ignored."""
        if disable or not log_traces:
            self.uninstrument()
            return
        try:
            self.instrument(**options)
        except MissingDependency as exc:
            if not silent:
                logger.warning("%s", exc)

    @abstractmethod
    def _instrument(self, **options: Any) -> None: ...

    @abstractmethod
    def _uninstrument(self) -> None: ...


def autolog_face(integration: Integration, label: str) -> Callable[..., None]:
    """The ``mlflow_otel.<library>.autolog`` function of an instrumented library: MLflow's
    arguments, the integration's own (``instrumentor``), the rest accepted and ignored."""
    name = integration.name

    def autolog(
        disable: bool = False,
        log_traces: bool = True,
        silent: bool = False,
        instrumentor: Optional[str] = None,
        **mlflow_only: Any,
    ) -> None:
        if mlflow_only and not silent:
            logger.debug(
                "mlflow_otel.%s.autolog: ignoring MLflow-only arguments %s", name, sorted(mlflow_only)
            )
        integration.autolog(disable=disable, log_traces=log_traces, silent=silent, instrumentor=instrumentor)

    autolog.__module__ = f"mlflow_otel.{name}"
    autolog.__qualname__ = "autolog"
    autolog.__doc__ = f"""Trace {label}; ``autolog(disable=True)`` uninstruments it. Calling it again
    changes nothing.

    ``instrumentor`` picks one of the supported instrumentors by distribution or convention
    (``"openinference"``, ``"gen_ai"``, ``"openllmetry"``) instead of the stated preference. MLflow's
    other arguments (``log_models``, ``exclusive``, ``disable_for_unsupported_versions``, ...)
    concern MLflow runs and models; they are accepted and ignored.
    """
    return autolog
