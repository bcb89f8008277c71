"""Read-only MLflow span properties shared by live spans (``_span``) and processor views."""

from __future__ import annotations

from typing import Any

from mlflow_otel import _conventions as conv


class SpanReads:
    """MLflow's read-only span payload properties, shared by live spans and processor views."""

    __slots__ = ()

    def get_attribute(self, key: str) -> Any:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    @property
    def inputs(self) -> Any:
        return self.get_attribute(conv.SPAN_INPUTS)

    @property
    def outputs(self) -> Any:
        return self.get_attribute(conv.SPAN_OUTPUTS)
