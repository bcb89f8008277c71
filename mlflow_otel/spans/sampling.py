"""Trace-level sampling: keep or drop whole traces, consistently across processes.

The decision for a root is the OTel SDK's ``TraceIdRatioBased`` rule (keep when the low 64 bits of
the trace id are below ``ratio * 2**64``; spec: trace/sdk.md#traceidratiobased), so any two processes,
or an OTel SDK in another language, agree on the same trace id. A span with a parent follows the
parent's sampled flag (``ParentBased``), so a trace is kept or dropped whole, and a sampled-out root
still puts a valid (non-recording) span in the context: its children are never orphan traces.

``trace(..., sampling_ratio_override=r)`` on a root sets that root's ratio; it travels to the sampler
as a private start attribute that the sampler removes again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.util.types import Attributes

from mlflow_otel._log import logger

#: Start attribute carrying a per-root ratio to the sampler; never exported.
RATIO_OVERRIDE_KEY = "mlflow_otel.sampling_ratio_override"

_DROP = SamplingResult(Decision.DROP)


_TRACE_ID_LIMIT = TraceIdRatioBased.TRACE_ID_LIMIT


def _bound(ratio: float) -> int:
    return TraceIdRatioBased.get_bound_for_rate(min(max(float(ratio), 0.0), 1.0))


class TraceRatioSampler(Sampler):
    """``ParentBased(TraceIdRatioBased(ratio))`` with a per-root override.

    The one sampling implementation: the SDK's tracer calls ``should_sample`` (OTel's interface), our
    lean tracer calls its fast path ``sample_root`` directly; both decide with the same bound.
    """

    def __init__(self, ratio: float = 1.0) -> None:
        self.ratio = min(max(ratio, 0.0), 1.0)
        self._bound = _bound(self.ratio)

    def sample_root(self, trace_id: int, override: Optional[float] = None) -> bool:
        """Keep a new trace? ``TraceIdRatioBased``'s rule on the low 64 bits of the trace id."""
        bound = self._bound if override is None else _bound(override)
        return (trace_id & _TRACE_ID_LIMIT) < bound

    def should_sample(
        self,
        parent_context: Optional[Context],
        trace_id: int,
        name: str,
        kind: Optional[SpanKind] = None,
        attributes: Attributes = None,
        links: Optional[Sequence[Link]] = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        override = None
        if attributes and RATIO_OVERRIDE_KEY in attributes:
            attributes = dict(attributes)
            override = attributes.pop(RATIO_OVERRIDE_KEY)
        parent = get_current_span(parent_context).get_span_context()
        keep = parent.trace_flags.sampled if parent.is_valid else self.sample_root(trace_id, override)
        if not keep:
            return _DROP
        return SamplingResult(
            Decision.RECORD_AND_SAMPLE, attributes, parent.trace_state if parent.is_valid else None
        )

    def get_description(self) -> str:
        return f"ParentBased(TraceIdRatioBased{{{self.ratio}}})"


def sampler_for(ratio: Optional[float], otel_sampler: Optional[str], otel_arg: Optional[str]) -> Sampler:
    """The sampler from settings: ``MLFLOW_TRACE_SAMPLING_RATIO`` wins, else ``OTEL_TRACES_SAMPLER``.

    The OTel values (sdk-environment-variables.md) map onto the same sampler: ``always_on`` and
    ``parentbased_always_on`` are ratio 1, ``*always_off`` ratio 0, ``*traceidratio`` the argument.
    The non-parent-based variants are treated as parent-based: sampling here is per trace by design.
    """
    if ratio is not None:
        return TraceRatioSampler(ratio)
    name = (otel_sampler or "parentbased_always_on").strip().lower()
    if name.endswith("always_off"):
        return TraceRatioSampler(0.0)
    if name.endswith("traceidratio"):
        try:
            arg = float(otel_arg) if otel_arg not in (None, "") else 1.0
        except ValueError:
            logger.warning("Invalid OTEL_TRACES_SAMPLER_ARG %r; using 1.0.", otel_arg)
            arg = 1.0
        return TraceRatioSampler(arg)
    if not name.endswith("always_on"):
        logger.warning("Unsupported OTEL_TRACES_SAMPLER %r; sampling every trace.", otel_sampler)
    return TraceRatioSampler(1.0)
