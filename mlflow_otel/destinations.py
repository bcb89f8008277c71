"""Where traces go: destinations a trace, a context or the whole process can be routed to.

``MlflowExperimentLocation`` is MLflow's name (``mlflow.entities.trace_location``); with a tracking
server set by ``set_tracking_uri`` (or ``MLFLOW_TRACKING_URI``) it becomes OTLP/HTTP to
``{uri}/v1/traces`` with the ``x-mlflow-experiment-id`` header, which is how an MLflow server ingests
OTLP. ``OtlpDestination`` and ``FileDestination`` name any OTLP receiver or a local file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional, Union

#: The conventions a destination can ask for (``MLFLOW_OTEL_SEMCONV``'s names).
SEMCONVS = ("mlflow", "gen_ai", "openinference")

__all__ = [
    "Destination",
    "FileDestination",
    "MlflowExperiment",
    "MlflowExperimentLocation",
    "OtlpDestination",
]


@dataclass(frozen=True)
class MlflowExperimentLocation:
    """An experiment of an MLflow tracking server (the current tracking URI unless one is given)."""

    experiment_id: str
    tracking_uri: Optional[str] = None


#: MLflow 3.0's ``mlflow.tracing.destination.MlflowExperiment``.
MlflowExperiment = MlflowExperimentLocation


@dataclass(frozen=True)
class OtlpDestination:
    """Any OTLP receiver. ``endpoint`` is the full traces URL for HTTP, ``host:port`` URL for gRPC.

    ``semconv``: the conventions this receiver gets, a subset of ``mlflow``, ``gen_ai``,
    ``openinference`` (a comma-separated string or a sequence); None: ``MLFLOW_OTEL_OTLP_SEMCONV``'s.
    Arize Phoenix reads OpenInference only: ``semconv="openinference"`` sends each input and output
    once, in the keys it renders (README, "Backends").
    """

    endpoint: str
    protocol: str = "http/protobuf"
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    semconv: Optional[frozenset[str]] = None

    def __post_init__(self) -> None:
        if self.semconv is not None:
            names = self.semconv.split(",") if isinstance(self.semconv, str) else self.semconv
            chosen = frozenset(str(n).strip().lower() for n in names if str(n).strip())
            if not chosen or chosen - set(SEMCONVS):
                raise ValueError(f"semconv: expected a subset of {', '.join(SEMCONVS)}, got {self.semconv!r}")
            object.__setattr__(self, "semconv", chosen)
        # ``headers={"k": "v"}`` (as OTel's exporters take them) kept as sorted pairs: hashable,
        # so the destination can key caches and be compared.
        if isinstance(self.headers, Mapping):
            object.__setattr__(
                self, "headers", tuple(sorted((str(k), str(v)) for k, v in self.headers.items()))
            )


@dataclass(frozen=True)
class FileDestination:
    """OTLP JSON lines in a local file (the embedded default sink's format)."""

    path: str


Destination = Union[MlflowExperimentLocation, OtlpDestination, FileDestination]
