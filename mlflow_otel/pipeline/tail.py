"""Tail sampling in the process: keep or drop a whole trace once its local root has ended.

The policies are the OpenTelemetry Collector ``tail_sampling`` processor's, in its own schema
(``processor/tailsamplingprocessor/config.go`` in opentelemetry-collector-contrib, v0.140), so one
policy file serves this SDK and a gateway Collector, as the redaction policy does. Accepted forms: a
bare list of policies, the processor's mapping (``policies:``), a ``tail_sampling:`` key, or a whole
Collector configuration (its first ``tail_sampling`` processor).

Policy types: ``always_sample``, ``latency`` (``threshold_ms``, ``upper_threshold_ms``),
``status_code`` (``status_codes``), ``probabilistic`` (``sampling_percentage``, ``hash_salt``),
``string_attribute`` (``key``, ``values``, ``enabled_regex_matching``, ``invert_match``),
``numeric_attribute`` (``key``, ``min_value``, ``max_value``, ``invert_match``),
``boolean_attribute`` (``key``, ``value``, ``invert_match``), ``span_count`` (``min_spans``,
``max_spans``), ``trace_state`` (``key``, ``values``), ``rate_limiting`` (``spans_per_second``),
``and`` (``and_sub_policy``) and ``drop`` (``drop_sub_policy``). The Collector has no ``not`` type:
its negations are ``drop`` (drop the traces all sub-policies match) and ``invert_match``. The final
decision follows the Collector's rules (README "Each policy will result in a decision"): a ``drop``
match or an inverted not-sampled decision drops the trace; otherwise any sampled decision keeps it,
as does an inverted sampled decision with no not-sampled one; otherwise it is dropped.

Where this SDK differs, on purpose:

* ``probabilistic`` without ``hash_salt`` uses the head sampler's rule (OTel ``TraceIdRatioBased``:
  the trace id's low 64 bits below ``ratio * 2**64``, trace/sdk.md#traceidratiobased), so every
  process of a distributed trace, and the head sampler, agree on which traces are in the share.
  With ``hash_salt`` set it uses the Collector's rule (FNV-1a 64 of salt + trace id): then the SDK and
  a gateway with the same salt agree instead.
* The decision is made when the trace's local root ends (no ``decision_wait``): this process holds
  the trace until then anyway (``pipeline/assembly.py``). ``decision_wait``, ``num_traces``,
  ``expected_new_traces_per_sec``, ``decision_cache`` and ``block_on_overflow`` are accepted and have
  nothing to do here. Spans that end after their local root follow the decision made for their trace.

A configuration that cannot be read is one ERROR line and no tail sampling (every trace kept): a
sampling mistake must not lose traces.
"""

from __future__ import annotations

import collections
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from mlflow_otel._log import logger
from mlflow_otel._telemetry import Counters
from mlflow_otel.processors.redaction.config import read_config_file
from mlflow_otel.spans.sampling import TraceRatioSampler

# Decisions, as the Collector's ``samplingpolicy.Decision``.
SAMPLED, NOT_SAMPLED, INVERT_SAMPLED, INVERT_NOT_SAMPLED, DROPPED = (
    "sampled",
    "not_sampled",
    "invert_sampled",
    "invert_not_sampled",
    "dropped",
)

_LOW_64 = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
#: Traces whose decision is remembered for spans that end after their local root.
DECISION_CACHE_SIZE = 65536

_IGNORED_KEYS = frozenset(
    {
        "decision_wait",
        "num_traces",
        "expected_new_traces_per_sec",
        "decision_cache",
        "block_on_overflow",
        "sample_on_first_match",
        "policies",
    }
)
_STATUS = {"OK": StatusCode.OK, "ERROR": StatusCode.ERROR, "UNSET": StatusCode.UNSET}


class TailSamplingConfigError(ValueError):
    """The tail-sampling configuration could not be read."""


class Trace:
    """The spans of one (local) trace, as the policies read them."""

    __slots__ = ("spans", "trace_id")

    def __init__(self, trace_id: int, spans: Sequence[ReadableSpan]) -> None:
        self.trace_id = trace_id
        self.spans = spans

    def attribute_values(self, key: str) -> list[Any]:
        """The values of ``key`` on the trace's resources and spans (the Collector checks both)."""
        values = []
        seen_resources: set[int] = set()
        for span in self.spans:
            resource = span.resource
            if resource is not None and id(resource) not in seen_resources:
                seen_resources.add(id(resource))
                attrs = resource.attributes
                if attrs and key in attrs:
                    values.append(attrs[key])
            attrs = span.attributes
            if attrs and key in attrs:
                values.append(attrs[key])
        return values


Evaluator = Callable[[Trace], str]


# --- probabilistic ---------------------------------------------------------------------------------
def fnv1a_64(data: bytes) -> int:
    """FNV-1a, 64 bits (Go's ``hash/fnv.New64a``), as the Collector's probabilistic policy hashes."""
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & _LOW_64
    return value


def _probabilistic(cfg: Mapping[str, Any]) -> Evaluator:
    percentage = _number(cfg, "sampling_percentage", 0.0)
    ratio = min(max(percentage / 100.0, 0.0), 1.0)
    salt = cfg.get("hash_salt")
    if salt:
        from fractions import Fraction

        threshold = int(Fraction(_LOW_64) * Fraction(ratio))
        prefix = str(salt).encode()

        def collector_rule(trace: Trace) -> str:
            hashed = fnv1a_64(prefix + trace.trace_id.to_bytes(16, "big"))
            return SAMPLED if hashed <= threshold else NOT_SAMPLED

        return collector_rule
    keep = TraceRatioSampler(ratio).sample_root  # the head sampler's own rule, not a copy of it

    def head_rule(trace: Trace) -> str:
        return SAMPLED if keep(trace.trace_id) else NOT_SAMPLED

    return head_rule


# --- trace-wide policies ---------------------------------------------------------------------------
def _always(cfg: Mapping[str, Any]) -> Evaluator:
    return lambda trace: SAMPLED


def _latency(cfg: Mapping[str, Any]) -> Evaluator:
    lower = int(_number(cfg, "threshold_ms", 0))
    upper = int(_number(cfg, "upper_threshold_ms", 0))

    def evaluate(trace: Trace) -> str:
        starts = [s.start_time for s in trace.spans if s.start_time is not None]
        ends = [s.end_time for s in trace.spans if s.end_time is not None]
        if not starts or not ends:
            return NOT_SAMPLED
        duration_ms = (max(ends) - min(starts)) // 1_000_000  # Go's Duration.Milliseconds truncates
        keep = duration_ms >= lower if upper == 0 else lower < duration_ms <= upper
        return SAMPLED if keep else NOT_SAMPLED

    return evaluate


def _status_code(cfg: Mapping[str, Any]) -> Evaluator:
    names = _strings(cfg, "status_codes")
    if not names:
        raise TailSamplingConfigError("status_code: expected at least one status code to filter on")
    unknown = [n for n in names if n not in _STATUS]
    if unknown:
        raise TailSamplingConfigError(f"status_code: unknown status code {unknown[0]!r} (OK, ERROR, UNSET)")
    codes = frozenset(_STATUS[n] for n in names)

    def evaluate(trace: Trace) -> str:
        for span in trace.spans:
            if span.status.status_code in codes:
                return SAMPLED
        return NOT_SAMPLED

    return evaluate


def _span_count(cfg: Mapping[str, Any]) -> Evaluator:
    low, high = int(_number(cfg, "min_spans", 0)), int(_number(cfg, "max_spans", 0))

    def evaluate(trace: Trace) -> str:
        n = len(trace.spans)
        return SAMPLED if (n >= low and (high == 0 or n <= high)) else NOT_SAMPLED

    return evaluate


def _trace_state(cfg: Mapping[str, Any]) -> Evaluator:
    key, values = str(cfg.get("key") or ""), frozenset(_strings(cfg, "values"))

    def evaluate(trace: Trace) -> str:
        for span in trace.spans:
            state = span.context.trace_state if span.context is not None else None
            if state is not None and state.get(key) in values:
                return SAMPLED
        return NOT_SAMPLED

    return evaluate


def _rate_limiting(cfg: Mapping[str, Any]) -> Evaluator:
    per_second = int(_number(cfg, "spans_per_second", 0))
    window = [0, 0]  # current second, spans kept in it
    lock = threading.Lock()

    def evaluate(trace: Trace) -> str:
        with lock:
            now = int(time.time())
            if window[0] != now:
                window[0], window[1] = now, 0
            if window[1] + len(trace.spans) < per_second:
                window[1] += len(trace.spans)
                return SAMPLED
            return NOT_SAMPLED

    return evaluate


# --- attribute policies ----------------------------------------------------------------------------
def _attribute_policy(matches: Callable[[Any], bool], invert: bool, key: str) -> Evaluator:
    """The Collector's ``hasResourceOrSpanWithCondition`` and its inverted form: sampled when any
    value of ``key`` matches; inverted, when none does (a missing key counts as not matching)."""

    def evaluate(trace: Trace) -> str:
        hit = any(matches(v) for v in trace.attribute_values(key))
        if invert:
            return INVERT_NOT_SAMPLED if hit else INVERT_SAMPLED
        return SAMPLED if hit else NOT_SAMPLED

    return evaluate


def _string_attribute(cfg: Mapping[str, Any]) -> Evaluator:
    key, values = str(cfg.get("key") or ""), _strings(cfg, "values")
    if cfg.get("enabled_regex_matching"):
        try:
            patterns = [re.compile(v) for v in values]  # Go's MatchString: a match anywhere
        except re.error as exc:
            raise TailSamplingConfigError(f"string_attribute: invalid regex: {exc}") from exc

        def matches(value: Any) -> bool:
            return isinstance(value, str) and value != "" and any(p.search(value) for p in patterns)

    else:
        exact = frozenset(v for v in values if v)

        def matches(value: Any) -> bool:
            return isinstance(value, str) and value in exact

    return _attribute_policy(matches, bool(cfg.get("invert_match")), key)


def _numeric_attribute(cfg: Mapping[str, Any]) -> Evaluator:
    key = str(cfg.get("key") or "")
    # As the Collector: 0 means "not set", and at least one bound is needed.
    low, high = int(_number(cfg, "min_value", 0)), int(_number(cfg, "max_value", 0))
    if low == 0 and high == 0:
        raise TailSamplingConfigError("numeric_attribute: at least one of min_value or max_value must be set")
    lo = low if low != 0 else -(1 << 63)
    hi = high if high != 0 else (1 << 63) - 1

    def matches(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi

    return _attribute_policy(matches, bool(cfg.get("invert_match")), key)


def _boolean_attribute(cfg: Mapping[str, Any]) -> Evaluator:
    key, wanted = str(cfg.get("key") or ""), bool(cfg.get("value", False))

    def matches(value: Any) -> bool:
        return isinstance(value, bool) and value is wanted

    return _attribute_policy(matches, bool(cfg.get("invert_match")), key)


# --- composition -----------------------------------------------------------------------------------
def _all_match(subs: list[Evaluator], on_match: str) -> Evaluator:
    """``and`` / ``drop``: ``on_match`` when every sub-policy samples, else not sampled."""

    def evaluate(trace: Trace) -> str:
        for sub in subs:
            if sub(trace) in (NOT_SAMPLED, INVERT_NOT_SAMPLED):
                return NOT_SAMPLED
        return on_match

    return evaluate


_LEAVES: dict[str, Callable[[Mapping[str, Any]], Evaluator]] = {
    "always_sample": _always,
    "latency": _latency,
    "status_code": _status_code,
    "probabilistic": _probabilistic,
    "string_attribute": _string_attribute,
    "numeric_attribute": _numeric_attribute,
    "boolean_attribute": _boolean_attribute,
    "span_count": _span_count,
    "trace_state": _trace_state,
    "rate_limiting": _rate_limiting,
}


def _policy(cfg: Any, nested: bool = False) -> tuple[str, Evaluator]:
    if not isinstance(cfg, Mapping):
        raise TailSamplingConfigError(f"a policy must be a mapping, not {cfg!r}")
    name, kind = str(cfg.get("name") or ""), str(cfg.get("type") or "")
    where = f"policy {name or kind!r}"
    if kind in _LEAVES:
        section = cfg.get(kind) or {}
        if not isinstance(section, Mapping):
            raise TailSamplingConfigError(f"{where}: {kind} must be a mapping")
        try:
            return name, _LEAVES[kind](section)
        except TailSamplingConfigError as exc:
            raise TailSamplingConfigError(f"{where}: {exc}") from None
    if kind in ("and", "drop") and not nested:
        key = f"{kind}_sub_policy"
        subs = (cfg.get(kind) or {}).get(key) if isinstance(cfg.get(kind), Mapping) else None
        if not subs:
            raise TailSamplingConfigError(f"{where}: {kind}.{key} needs at least one policy")
        evaluators = [_policy(sub, nested=True)[1] for sub in subs]
        return name, _all_match(evaluators, SAMPLED if kind == "and" else DROPPED)
    if kind == "not":
        raise TailSamplingConfigError(
            f"{where}: the Collector has no 'not' policy; use 'drop' (drop_sub_policy) or invert_match"
        )
    raise TailSamplingConfigError(f"{where}: unsupported policy type {kind!r}")


def _number(cfg: Mapping[str, Any], key: str, default: float) -> float:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TailSamplingConfigError(f"{key} must be a number, not {value!r}")
    return float(value)


def _strings(cfg: Mapping[str, Any], key: str) -> list[str]:
    value = cfg.get(key) or []
    return [str(v) for v in ([value] if isinstance(value, str) else value)]


def _find_processor(data: Any) -> tuple[list[Any], Mapping[str, Any]]:
    """(policies, processor options) from any of the accepted forms."""
    if isinstance(data, (list, tuple)):
        return list(data), {}
    if not isinstance(data, Mapping):
        raise TailSamplingConfigError("tail-sampling configuration must be a list of policies or a mapping")
    if "policies" in data:
        unknown = set(data) - _IGNORED_KEYS
        if unknown:
            raise TailSamplingConfigError(
                f"unknown tail_sampling settings: {', '.join(sorted(map(str, unknown)))}"
            )
        policies = data.get("policies")
        if not isinstance(policies, (list, tuple)) or not policies:
            raise TailSamplingConfigError("tail_sampling.policies must be a non-empty list")
        return list(policies), data
    if isinstance(data.get("tail_sampling"), Mapping):
        return _find_processor(data["tail_sampling"])
    processors = data.get("processors")
    if isinstance(processors, Mapping):
        for name, value in processors.items():
            if (name == "tail_sampling" or str(name).startswith("tail_sampling/")) and isinstance(
                value, Mapping
            ):
                return _find_processor(value)
    raise TailSamplingConfigError("no tail_sampling policies found")


class TailSampler:
    """The policies in force, and the decisions made for traces (remembered for late spans)."""

    def __init__(self, policies: Sequence[tuple[str, Evaluator]], first_match: bool = False) -> None:
        self._policies = list(policies)
        self._first_match = first_match
        self._decided: collections.OrderedDict[int, bool] = collections.OrderedDict()

    @classmethod
    def from_config(cls, data: Any) -> TailSampler:
        policies, options = _find_processor(data)
        named = []
        for i, cfg in enumerate(policies):
            name, evaluator = _policy(cfg)
            named.append((name or f"policy-{i + 1}", evaluator))
        return cls(named, bool(options.get("sample_on_first_match")))

    def decide(self, trace: Trace, counters: Optional[Counters] = None) -> tuple[bool, Optional[str]]:
        """(keep, the policy that kept it): the Collector's ``makeDecision``; a policy that fails
        is counted in ``counters`` (``tail_errors``)."""
        seen: dict[str, str] = {}
        for name, evaluator in self._policies:
            try:
                decision = evaluator(trace)
            except Exception as exc:  # an evaluation error counts as no decision, as in the Collector
                if counters is not None:
                    counters.add("tail_errors")
                logger.debug("Tail-sampling policy %s failed: %r", name, exc)
                continue
            seen.setdefault(decision, name)
            if decision == DROPPED or (self._first_match and decision == SAMPLED):
                break
        if DROPPED in seen or INVERT_NOT_SAMPLED in seen:
            return False, None
        if SAMPLED in seen:
            return True, seen[SAMPLED]
        if INVERT_SAMPLED in seen and NOT_SAMPLED not in seen:
            return True, seen[INVERT_SAMPLED]
        return False, None

    def filter(self, spans: Sequence[ReadableSpan], counters: Counters) -> Sequence[ReadableSpan]:
        """The spans to export: all of ``spans`` (one local trace) or none, counted either way.

        Runs on the process worker. A span whose trace was decided already (it ended after its
        local root) follows that decision; else ``spans`` are decided as one trace.
        """
        if not spans:
            return spans
        trace_id = spans[0].context.trace_id if spans[0].context is not None else 0
        keep = self._decided.get(trace_id)
        if keep is None:
            keep, policy = self.decide(Trace(trace_id, spans), counters)
            self._remember(trace_id, keep)
            counters.add("traces_tail_kept" if keep else "traces_tail_sampled_out")
            if policy:
                counters.add(f"tail_policy.{policy}")
        if keep:
            return spans
        counters.add("spans_tail_sampled_out", len(spans))
        return ()

    def _remember(self, trace_id: int, keep: bool) -> None:
        self._decided[trace_id] = keep
        if len(self._decided) > DECISION_CACHE_SIZE:
            self._decided.popitem(last=False)


def load_tail_sampler(source: Any) -> Optional[TailSampler]:
    """A sampler from a path (YAML/JSON), a list or mapping, a ``TailSampler``; None when ``source``
    is empty. Raises :class:`TailSamplingConfigError` (a file that cannot be read included)."""
    if source is None or source is False or (isinstance(source, (list, tuple, str)) and not source):
        return None
    if isinstance(source, TailSampler):
        return source
    if isinstance(source, (str, os.PathLike)):
        source = read_config_file(os.fspath(source), "tail-sampling configuration", TailSamplingConfigError)
    return TailSampler.from_config(source)
