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
    """Any OTLP receiver. ``endpoint`` is the full traces URL for HTTP, ``host:port`` URL for gRPC."""

    endpoint: str
    protocol: str = "http/protobuf"
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
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
