"""One retry policy for every sender: which answers are retried, how long to wait, and until when.

Used by the OTLP exporters (HTTP and gRPC, ``otlp.py``), the MLflow record sender
(``mlflow_record.py``) and the fragment merger (``mlflow_merge.py``). The spool has no loop of its
own: it replays through the OTLP exporter's classification and keeps a refused request for the next
successful export. A leaf: it imports nothing of this package but the clock.

**Retryable answers**, per protocol:

* OTLP/HTTP (OTel spec, protocol/otlp.md, "Failures", "Retryable Response Codes"): 429, 502, 503,
  504; every other 4xx or 5xx MUST NOT be retried. No answer at all (refused, reset, timed out) is
  retried. ``Retry-After`` is honoured ("OTLP/HTTP Throttling").
* OTLP/gRPC (same section): CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE,
  DATA_LOSS; RESOURCE_EXHAUSTED only when the status carries ``RetryInfo`` (the server says it can
  recover), whose delay is honoured ("OTLP/gRPC Throttling").
* MLflow's REST API (``StartTraceV3``, ``GetTraceInfoV3``, ``SetTraceTag``): what MLflow's own client
  retries (``mlflow/utils/request_utils.py``, ``_TRANSIENT_FAILURE_RESPONSE_CODES``: 408, 429, 500,
  502, 503, 504), and no answer. These calls are an upsert, a read and a tag set, so a repeat is
  harmless, and MLflow's server (or the proxy before it) answers 408 and 500 for transient failures
  the OTLP table does not list.

**Backoff**: exponential from ``INITIAL_BACKOFF_S``, doubling per attempt, capped at
``MAX_BACKOFF_S``, with *equal jitter*: the n-th wait is uniform in ``[c/2, c]`` where
``c = min(MAX_BACKOFF_S, INITIAL_BACKOFF_S * 2**n)``. The fixed half keeps clients from retrying at
once against a server that is recovering; the random half spreads them out.

**Budget**: a request's retries end ``timeout_s`` after its first attempt
(``MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT``) and, while the process exits, at the exit deadline. A
wait that would end past that limit is not begun: the request is given up at once.

**Server hints**: a ``Retry-After`` or ``RetryInfo`` delay replaces the backoff (never sooner than
the server asked), capped by the budget like any wait: one that does not fit gives up at once rather
than sleeping toward a deadline it would not reach.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Optional

from mlflow_otel._clock import REAL_CLOCK, Clock

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0

#: OTLP/HTTP statuses the spec marks retryable.
OTLP_HTTP = frozenset({429, 502, 503, 504})
#: OTLP/gRPC status codes (by name, so this module loads no gRPC) the spec marks retryable.
OTLP_GRPC = frozenset(
    {"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"}
)
#: MLflow REST statuses worth another try (MLflow's client's transient codes).
MLFLOW_REST = frozenset({408, 429, 500, 502, 503, 504})


def grpc_retryable(code: str, retry_info: bool) -> bool:
    """``code`` (a ``grpc.StatusCode`` name) is retried; RESOURCE_EXHAUSTED only with ``RetryInfo``."""
    return code in OTLP_GRPC or (code == "RESOURCE_EXHAUSTED" and retry_info)


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """The wait after the ``attempt``-th failure (0-based): equal jitter under the capped curve."""
    ceiling = min(MAX_BACKOFF_S, INITIAL_BACKOFF_S * 2 ** min(attempt, 32))
    return ceiling / 2 + rng() * ceiling / 2


def parse_retry_after(value: Optional[str], wall: Callable[[], float] = time.time) -> Optional[float]:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - wall())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def retry_info_delay(err: Any) -> Optional[float]:
    """The server's ``google.rpc.RetryInfo`` delay from a gRPC error's ``grpc-status-details-bin``."""
    try:
        trailers = err.trailing_metadata() or ()
        raw = next((v for k, v in trailers if k == "grpc-status-details-bin"), None)
        if raw is None:
            return None
        from google.rpc import error_details_pb2, status_pb2

        status = status_pb2.Status.FromString(raw)
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    except Exception:
        return None
    return None


class Retries:
    """One request's retries: its budget, the attempts so far, the next wait."""

    __slots__ = ("_rng", "attempts", "clock", "deadline")

    def __init__(self, timeout_s: float, clock: Clock, rng: Callable[[], float]) -> None:
        self.clock = clock
        self._rng = rng
        self.deadline = clock.now() + timeout_s
        self.attempts = 0

    def limit(self, exit_deadline: float = float("inf")) -> float:
        """When the retries must end: the budget, or the exit deadline if sooner."""
        return min(self.deadline, exit_deadline)

    def remaining(self, exit_deadline: float = float("inf")) -> float:
        return self.limit(exit_deadline) - self.clock.now()

    def next_wait(self, hint: Optional[float] = None, exit_deadline: float = float("inf")) -> Optional[float]:
        """Count a failed attempt; the wait before the next one (the server's ``hint`` if it gave
        one, else the backoff), or None when that wait would end past the limit: give up now."""
        wait = max(0.0, hint) if hint is not None else backoff(self.attempts, self._rng)
        self.attempts += 1
        return None if self.clock.now() + wait > self.limit(exit_deadline) else wait


class RetryPolicy:
    """The policy of one sender: its budget per request, the clock it reads and waits on."""

    __slots__ = ("clock", "rng", "timeout_s")

    def __init__(
        self, timeout_s: float, clock: Clock = REAL_CLOCK, rng: Callable[[], float] = random.random
    ) -> None:
        self.timeout_s = timeout_s
        self.clock = clock
        self.rng = rng

    def start(self) -> Retries:
        """A request's first attempt begins now."""
        return Retries(self.timeout_s, self.clock, self.rng)
