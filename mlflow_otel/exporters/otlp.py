"""OTLP exporters (HTTP/protobuf and gRPC): spec-exact requests, retries, size limits, deadlines.

The request bytes are ``ExportTraceServiceRequest`` protobuf written by ``otlp/protobuf.py`` (ours:
the OTel project's ``encode_spans`` builds message objects first, a third of a span's CPU; the
parsed bytes equal its message, tests/test_encoding.py). Around them, what the SDK's exporters do
not give us:

* **Retries per the spec**, by the one policy every sender uses (``retry.py``: the retryable tables
  per protocol, equal-jitter backoff, ``Retry-After`` / ``RetryInfo`` honoured, the retry timeout
  ``MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT``); a shutdown interrupts the backoff at once.
* **Size limits**: a batch whose request would exceed ``max_request_bytes`` (gRPC servers reject
  > 4 MiB by default, the Collector's HTTP receiver > 20 MiB) is split in halves until each fits; an
  HTTP 413 or a gRPC "message larger than max" answer splits it the same way. A single span that
  still does not fit is dropped and counted, never retried forever.
* **Non-retryable answers** (HTTP 400, gRPC INVALID_ARGUMENT, ...) drop the batch at once, counted.
* **Exit** (``begin_exit``, ``pipeline/export.py``'s ``ExitAware``): a refused connection is not
  retried; an endpoint that answers but asks to wait keeps retrying until the exit deadline, and no
  request outlives it. ``busy()`` tells the pipeline which destinations deserve the larger budget.
* **Spool** (opt-in, ``exporters/spool.py``): a request that runs out of retries, or is cut short by
  exit, is written to disk instead of dropped, and replayed after a later export succeeds.

Nothing here raises into the batch worker: every outcome is a ``SpanExportResult`` and counters.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mlflow_otel import _fork
from mlflow_otel._clock import REAL_CLOCK, Clock
from mlflow_otel._http import Cert, HttpClient, HttpFailure, Verify
from mlflow_otel._log import logger, masked_url, warn_limited
from mlflow_otel._settings import PROTOCOL_GRPC, OtlpSettings, valid_header
from mlflow_otel._telemetry import Counters
from mlflow_otel.exporters.retry import (
    OTLP_HTTP,
    RetryPolicy,
    grpc_retryable,
    parse_retry_after,
    retry_info_delay,
)
from mlflow_otel.exporters.spool import REPLAY_FILES_PER_EXPORT, SendResult, Spool
from mlflow_otel.otlp.protobuf import Overlay, encode_request
from mlflow_otel.processors.normalization.outward import Conventions

#: Content types an OTLP/HTTP receiver answers with (protocol/otlp.md, "OTLP/HTTP Response").
_OTLP_CONTENT_TYPES = frozenset({"application/x-protobuf", "application/protobuf", "application/json"})


def _mismatch(why: str) -> _Outcome:
    """The endpoint answers in another protocol than the one configured: permanent, not retried."""
    outcome = _Outcome(_Outcome.FAIL, why=why)
    outcome.reason = "protocol_mismatch"
    return outcome


class ExporterUnavailable(RuntimeError):
    """The package for the configured protocol is not installed."""


class _Outcome:
    """What one attempt to send a request came to."""

    __slots__ = ("delay", "kind", "reason", "rejected", "unreachable", "why")

    OK, RETRY, TOO_LARGE, FAIL = "ok", "retry", "too_large", "fail"

    def __init__(
        self,
        kind: str,
        delay: Optional[float] = None,
        rejected: int = 0,
        why: str = "",
        unreachable: bool = False,
    ) -> None:
        self.kind = kind
        self.delay = delay
        self.rejected = rejected
        self.why = why
        #: Nothing answered at all (connection refused, no route): at exit, not worth a retry.
        self.unreachable = unreachable
        #: Why a retryable request was given up, when not for the retry timeout (a counter name).
        self.reason = ""


class OtlpExporter(SpanExporter):
    """The transport-independent part: encoding, splitting, retrying, counting."""

    transport = "otlp"

    def __init__(
        self,
        otlp: OtlpSettings,
        max_request_bytes: int,
        retry_timeout_s: float,
        on_reachability: Optional[Callable[[bool], None]] = None,
        spool: Optional[Spool] = None,
        clock: Clock = REAL_CLOCK,
        *,
        counters: Counters,
        conventions: Optional[Conventions] = None,
    ) -> None:
        self.endpoint = otlp.endpoint
        #: This destination's own conventions, written on each span as it is encoded (no copy).
        self.conventions = conventions
        #: Where this exporter counts what became of each span (delivered, dropped by reason).
        self._counters = counters
        self.shown = masked_url(otlp.endpoint)  # as logs may show it
        self.compression = otlp.compression
        self._headers = {k: v for k, v in otlp.headers.items() if _usable_header(k, v)}
        self._timeout_s = otlp.timeout_s
        self._gzip = otlp.compression == "gzip"
        self._max_bytes = max_request_bytes
        self._retry = RetryPolicy(retry_timeout_s, clock)
        self._clock = clock
        self._stop = threading.Event()
        self._unreachable_at_exit = False
        #: Set by ``begin_exit``: while the process exits, an endpoint that refuses connections is
        #: not retried (its spans are counted as dropped) instead of holding the exit to its deadline.
        self._exiting = False
        #: Told whether the endpoint accepts connections, on each change (the batch stage keeps a
        #: smaller queue for a destination that does not: see ``BatchProcessor.set_reachable``).
        self._on_reachability = on_reachability
        self._reachable = True
        #: Wakes a retry backoff early: exit began, or shutdown.
        self._interrupt = threading.Event()
        #: While exiting: no retry and no request goes past this ``clock.now()`` value.
        self._exit_deadline = float("inf")
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self._spool = spool

    # --- SpanExporter ------------------------------------------------------------------------------
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._stop.is_set() or (self._unreachable_at_exit and self._exiting):
            # Shut down, or the process is exiting and this destination already refused to connect:
            # the rest of the queue goes to the spool, or is counted as dropped without encoding it.
            if self._spool is not None:
                self.salvage(spans)
            else:
                self._counters.add(
                    "dropped.destination_unavailable" if self._unreachable_at_exit else "dropped.shutdown",
                    len(spans),
                )
            return SpanExportResult.FAILURE
        with self._inflight_lock:
            self._inflight += 1
        try:
            delivered = self._export_part(list(spans), self._overlay(spans))
        except Exception as exc:  # encoding bugs, transport surprises: never into the worker
            self._counters.add("dropped.export_error", len(spans))
            warn_limited("otlp_error", "OTLP export to %s failed unexpectedly: %r", self.shown, exc)
            return SpanExportResult.FAILURE
        finally:
            with self._inflight_lock:
                self._inflight -= 1
        if delivered and self._spool is not None and self._spool.due():
            self._replay()  # the destination answers again: what was spooled goes next
        return SpanExportResult.SUCCESS if delivered == len(spans) else SpanExportResult.FAILURE

    def begin_exit(self, deadline: Optional[float] = None) -> None:
        """The process is exiting (``pipeline.export.ExitAware``): a refused endpoint is not retried,
        and retries end by ``deadline`` (a value of this exporter's clock: ``time.monotonic()``)."""
        if deadline is not None:
            self._exit_deadline = deadline
        self._exiting = True
        self._interrupt.set()

    def busy(self) -> bool:
        """An export in flight to an endpoint that answers (slow, or asking to wait)."""
        return self._inflight > 0 and self._reachable

    def salvage(self, spans: Sequence[ReadableSpan]) -> int:
        """Spool ``spans`` (encoded, split to the request limit); returns how many are accounted for
        (spooled, or counted as dropped by the spool), 0 without a spool."""
        if self._spool is None or not spans:
            return 0
        for body, part in self._bodies(list(spans), self._overlay(spans)):
            self._spool.write(body, len(part))
        return len(spans)

    def shutdown(self) -> None:
        """Stop at once: retries in progress give up (their spans go to the spool, or are counted as
        dropped)."""
        self._stop.set()
        self._interrupt.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # --- core ---------------------------------------------------------------------------------------
    def _overlay(self, spans: Sequence[ReadableSpan]) -> Optional[Overlay]:
        """What this destination's conventions add to ``spans`` (one export, so a trace's keys
        reach its spans in every request the export is split into)."""
        conventions = self.conventions
        return conventions.overlay(spans, self._counters, self.shown) if conventions else None

    def _export_part(self, spans: list[ReadableSpan], overlay: Optional[Overlay]) -> int:
        """Send ``spans`` in requests within the size limit; returns how many were delivered."""
        return sum(self._send_part(body, part, overlay) for body, part in self._bodies(spans, overlay))

    def _send_part(self, body: bytes, spans: list[ReadableSpan], overlay: Optional[Overlay]) -> int:
        """One request (``body``, the encoding of ``spans``) with retries; its spans delivered."""
        outcome = self._send_with_retries(body, len(spans))
        if outcome.kind == _Outcome.OK:
            delivered = len(spans) - outcome.rejected
            self._counters.add("spans_delivered", delivered)
            if outcome.rejected:
                self._counters.add("dropped.rejected", outcome.rejected)
                warn_limited(
                    "rejected", "%s rejected %d spans: %s", self.shown, outcome.rejected, outcome.why
                )
            return delivered
        if outcome.kind == _Outcome.TOO_LARGE:  # the receiver's limit is below ours: halve
            if len(spans) == 1:
                self._too_large(outcome.why)
                return 0
            middle = len(spans) // 2
            return self._export_part(spans[:middle], overlay) + self._export_part(spans[middle:], overlay)
        reason = outcome.reason or (
            "retry_timeout"
            if outcome.kind == _Outcome.RETRY
            else ("shutdown" if self._stop.is_set() else "rejected")
        )
        if reason != "rejected" and self._spool is not None:
            self._spool.write(body, len(spans))  # spooled, or counted by the spool
            return 0
        self._counters.add(f"dropped.{reason}", len(spans))
        warn_limited(f"otlp_{reason}", "Dropped %d spans for %s: %s", len(spans), self.shown, outcome.why)
        return 0

    def _too_large(self, why: str) -> None:
        self._counters.add("dropped.too_large", 1)
        warn_limited("too_large", "Dropped a span too large to export to %s (%s).", self.shown, why)

    def _bodies(
        self, spans: list[ReadableSpan], overlay: Optional[Overlay]
    ) -> Iterator[tuple[bytes, list[ReadableSpan]]]:
        """Encoded requests of ``spans`` with the spans of each, every one within the request
        limit (halved until it fits; a span that alone is too large is counted and skipped)."""
        for start in range(0, len(spans), 512):
            pending = [spans[start : start + 512]]
            while pending:
                part = pending.pop()
                body = encode_request(part, overlay)
                if len(body) <= self._max_bytes:
                    yield body, part
                elif len(part) == 1:
                    self._too_large(f"a request of {len(body)} bytes exceeds {self._max_bytes}")
                else:
                    middle = len(part) // 2
                    pending += [part[middle:], part[:middle]]

    def _exit_limit(self) -> float:
        return self._exit_deadline if self._exiting else float("inf")

    def _send_with_retries(self, body: bytes, count: int) -> _Outcome:
        retries = self._retry.start()
        clock = self._clock
        payload = gzip.compress(body, compresslevel=6) if self._gzip and self.transport == "http" else body
        while True:
            remaining = retries.remaining(self._exit_limit())
            outcome = self._send(payload, max(0.001, min(self._timeout_s, remaining)))
            self._note_reachable(not (outcome.kind == _Outcome.RETRY and outcome.unreachable))
            if outcome.kind == _Outcome.OK:
                self._counters.add("bytes_sent", len(payload))
            if outcome.kind != _Outcome.RETRY:
                return outcome
            if outcome.unreachable and self._exiting:
                return self._unreachable_at_exit_outcome(outcome)
            delay = retries.next_wait(outcome.delay, self._exit_limit())
            if delay is None:
                if self._exiting and self._exit_deadline < retries.deadline:
                    outcome.reason = "shutdown"
                    outcome.why += f" (gave up after {retries.attempts} attempts: the exit deadline)"
                else:
                    timeout = f"retry timeout {self._retry.timeout_s:g} s"
                    outcome.why += f" (gave up after {retries.attempts} attempts: {timeout})"
                return outcome
            resume_at = clock.now() + delay
            self._counters.add("retries")
            logger.debug("Retrying %d spans to %s in %.2f s: %s", count, self.shown, delay, outcome.why)
            waiter = self._stop if self._exiting else self._interrupt
            if clock.wait(waiter, delay):
                if self._stop.is_set():
                    return _Outcome(_Outcome.FAIL, why="shut down while retrying")
                # Exit began during the backoff: a refused endpoint is given up now; one that
                # answers waits out its delay if the exit deadline leaves room for it.
                if outcome.unreachable:
                    return self._unreachable_at_exit_outcome(outcome)
                if resume_at > retries.limit(self._exit_limit()):
                    outcome.reason = "shutdown"
                    outcome.why += " (the exit deadline)"
                    return outcome
                if clock.wait(self._stop, max(0.0, resume_at - clock.now())):
                    return _Outcome(_Outcome.FAIL, why="shut down while retrying")

    def _unreachable_at_exit_outcome(self, outcome: _Outcome) -> _Outcome:
        self._unreachable_at_exit = True
        outcome.reason = "destination_unavailable"
        outcome.why += " (not retried: the process is exiting, or a push gives up on refused connections)"
        return outcome

    def _replay(self) -> None:
        """Send spooled requests (``exporters/spool.py``) now that the destination answers."""
        spool = self._spool
        if spool is None:
            return

        def send(body: bytes) -> SendResult:
            payload = (
                gzip.compress(body, compresslevel=6) if self._gzip and self.transport == "http" else body
            )
            remaining = self._exit_limit() - self._clock.now()
            outcome = self._send(payload, max(0.001, min(self._timeout_s, remaining)))
            self._note_reachable(not (outcome.kind == _Outcome.RETRY and outcome.unreachable))
            if outcome.kind == _Outcome.OK:
                self._counters.add("bytes_sent", len(payload))
                return "ok", outcome.rejected
            return ("retry" if outcome.kind == _Outcome.RETRY else "fail"), 0

        try:
            spool.replay(send, self._stop.is_set, REPLAY_FILES_PER_EXPORT)
        except Exception as exc:  # never into the export worker
            warn_limited("spool_replay", "Replaying the spool for %s failed: %r", self.shown, exc)

    def _note_reachable(self, reachable: bool) -> None:
        if reachable != self._reachable:
            self._reachable = reachable
            listener = self._on_reachability
            if listener is not None:
                listener(reachable)

    def _send(self, payload: bytes, timeout_s: float) -> _Outcome:  # pragma: no cover
        raise NotImplementedError


class OtlpHttpExporter(OtlpExporter):
    """OTLP/HTTP with binary protobuf (``application/x-protobuf``), the spec's default protocol."""

    transport = "http"

    def __init__(
        self,
        otlp: OtlpSettings,
        max_request_bytes: int,
        retry_timeout_s: float,
        on_reachability: Optional[Callable[[bool], None]] = None,
        spool: Optional[Spool] = None,
        clock: Clock = REAL_CLOCK,
        verify: Optional[Verify] = None,
        *,
        counters: Counters,
        conventions: Optional[Conventions] = None,
    ) -> None:
        """``verify`` replaces the endpoint's certificate check (``OTEL_EXPORTER_OTLP_CERTIFICATE``,
        else the default bundle): MLflow's ``MLFLOW_TRACKING_INSECURE_TLS`` turns it off."""
        super().__init__(
            otlp, max_request_bytes, retry_timeout_s, on_reachability, spool, clock, counters=counters,
            conventions=conventions,
        )  # fmt: skip
        try:
            import urllib3  # noqa: F401  (installed with opentelemetry-exporter-otlp-proto-http)
        except ImportError as exc:
            raise ExporterUnavailable(
                f"OTLP/HTTP needs opentelemetry-exporter-otlp-proto-http ({exc})"
            ) from exc
        self._headers.setdefault("content-type", "application/x-protobuf")
        self._headers.setdefault("user-agent", "mlflow-otel")
        if self._gzip:
            self._headers["content-encoding"] = "gzip"
        cert: Cert = None
        if otlp.client_certificate_file:
            cert = (
                (otlp.client_certificate_file, otlp.client_key_file)
                if otlp.client_key_file
                else otlp.client_certificate_file
            )
        self._client = HttpClient(
            verify=(otlp.certificate_file or True) if verify is None else verify, cert=cert
        )

    def close_idle(self) -> None:
        """Close the keep-alive connections no request is using (the export pool found this
        destination idle, ``pipeline/batch.py``); the next export opens a new one."""
        self._client.close_idle()

    def _send(self, payload: bytes, timeout_s: float) -> _Outcome:
        try:
            response = self._client.request(
                "POST", self.endpoint, body=payload, headers=self._headers, timeout_s=timeout_s
            )
        except HttpFailure as exc:
            if exc.not_http:  # an answer, but not HTTP/1.1: an HTTP/2 (gRPC) server
                return _mismatch(
                    f"{masked_url(str(exc)):.120}: the endpoint does not speak OTLP/HTTP; it looks like an "
                    "OTLP/gRPC port (4317): set OTEL_EXPORTER_OTLP_PROTOCOL=grpc, or use the HTTP port (4318)"
                )
            return _Outcome(_Outcome.RETRY, why=masked_url(str(exc)), unreachable=exc.unreachable)
        status = response.status
        if 200 <= status < 300:
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type and content_type not in _OTLP_CONTENT_TYPES:
                outcome = _Outcome(
                    _Outcome.FAIL,
                    why=(
                        f"HTTP {status} with Content-Type {content_type}, not an OTLP answer: "
                        f"{self.shown} is not an OTLP receiver (for an MLflow server, set the tracking "
                        "URI instead of OTEL_EXPORTER_OTLP_ENDPOINT)"
                    ),
                )
                outcome.reason = "not_otlp"
                return outcome
            rejected, message = self._partial_success(response.body)
            return _Outcome(_Outcome.OK, rejected=rejected, why=message)
        why = f"HTTP {status} {response.text[:200]!r}"
        if status in OTLP_HTTP:
            return _Outcome(
                _Outcome.RETRY, delay=parse_retry_after(response.headers.get("Retry-After")), why=why
            )
        if status == 413:
            return _Outcome(_Outcome.TOO_LARGE, why=why)
        return _Outcome(_Outcome.FAIL, why=why)

    @staticmethod
    def _partial_success(content: bytes) -> tuple[int, str]:
        """Rejected spans and the collector's message (OTLP partial success, protocol/otlp.md)."""
        if not content:
            return 0, ""
        try:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

            response = ExportTraceServiceResponse()
            response.ParseFromString(content)
            rejected = int(response.partial_success.rejected_spans)
            return rejected, response.partial_success.error_message if rejected else ""
        except Exception:
            return 0, ""


class OtlpGrpcExporter(OtlpExporter):
    """OTLP/gRPC (``opentelemetry.proto.collector.trace.v1.TraceService/Export``)."""

    transport = "grpc"

    def __init__(
        self,
        otlp: OtlpSettings,
        max_request_bytes: int,
        retry_timeout_s: float,
        on_reachability: Optional[Callable[[bool], None]] = None,
        spool: Optional[Spool] = None,
        *,
        counters: Counters,
        conventions: Optional[Conventions] = None,
    ) -> None:
        super().__init__(
            otlp, max_request_bytes, retry_timeout_s, on_reachability, spool, counters=counters,
            conventions=conventions,
        )  # fmt: skip
        try:
            import grpc
            from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
        except ImportError as exc:
            raise ExporterUnavailable(
                f"OTLP/gRPC needs opentelemetry-exporter-otlp-proto-grpc ({exc})"
            ) from exc
        self._grpc = grpc
        self._response_cls = trace_service_pb2.ExportTraceServiceResponse
        endpoint = otlp.endpoint
        scheme, _, rest = endpoint.partition("://")
        if not rest:  # no scheme: OTEL_EXPORTER_OTLP_INSECURE decides (spec)
            scheme, rest = ("http" if otlp.insecure else "https"), endpoint
        self._target = rest.rstrip("/")
        self._secure = scheme == "https"
        self._otlp = otlp
        self._metadata = tuple(self._headers.items())
        self._compression = grpc.Compression.Gzip if self._gzip else grpc.Compression.NoCompression
        self._forget_channel()
        _fork.in_child(self._forget_channel)

    def _credentials(self) -> Any:
        def read(path: Optional[str]) -> Optional[bytes]:
            if not path:
                return None
            with open(path, "rb") as fh:
                return fh.read()

        return self._grpc.ssl_channel_credentials(
            root_certificates=read(self._otlp.certificate_file),
            private_key=read(self._otlp.client_key_file),
            certificate_chain=read(self._otlp.client_certificate_file),
        )

    def _get_stub(self) -> Any:
        with self._lock:
            if self._stub is None:
                options = [("grpc.max_send_message_length", -1)]
                if self._secure:
                    self._channel = self._grpc.secure_channel(
                        self._target, self._credentials(), options=options
                    )
                else:
                    self._channel = self._grpc.insecure_channel(self._target, options=options)
                # The request is already serialised (encode_request): send the bytes as they are.
                self._stub = self._channel.unary_unary(
                    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                    request_serializer=None,
                    response_deserializer=self._response_cls.FromString,
                )
            return self._stub

    def _send(self, payload: bytes, timeout_s: float) -> _Outcome:
        grpc = self._grpc
        try:
            response = self._get_stub()(
                payload, timeout=timeout_s, metadata=self._metadata, compression=self._compression
            )
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
            why = f"gRPC {code.name}: {err.details() if hasattr(err, 'details') else err}"
            retry_delay = retry_info_delay(err)
            lowered = why.lower()
            if "http1.x" in lowered or "parsing http/2" in lowered or "http2" in lowered.replace("/", ""):
                return _mismatch(
                    f"{why}: the endpoint does not speak gRPC; it looks like an OTLP/HTTP port (4318): "
                    "set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf, or use the gRPC port (4317)"
                )
            if grpc_retryable(code.name, retry_delay is not None):
                unreachable = code == grpc.StatusCode.UNAVAILABLE and "failed to connect" in why.lower()
                return _Outcome(_Outcome.RETRY, delay=retry_delay, why=why, unreachable=unreachable)
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:  # e.g. "Received message larger than max"
                return _Outcome(_Outcome.TOO_LARGE, why=why)
            return _Outcome(_Outcome.FAIL, why=why)
        rejected = int(response.partial_success.rejected_spans) if response.HasField("partial_success") else 0
        return _Outcome(
            _Outcome.OK, rejected=rejected, why=response.partial_success.error_message if rejected else ""
        )

    def close_idle(self) -> None:
        """Close the channel (its socket) when no export is in flight (the export pool found this
        destination idle, ``pipeline/batch.py``); the next export opens a new one."""
        with self._inflight_lock:
            if self._inflight:
                return
            with self._lock:
                self._close_channel()

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = self._stub = None

    def _forget_channel(self) -> None:
        """No channel (at construction, and in a forked child: a channel made before the fork is
        the parent's and gRPC forbids using it, and the parent's lock may have been held at the fork;
        ``_fork.py``)."""
        self._lock = threading.Lock()
        self._channel: Any = None
        self._stub: Any = None

    def shutdown(self) -> None:
        super().shutdown()
        with self._lock:
            self._close_channel()


def _usable_header(key: str, value: str) -> bool:
    """Headers given in code (``OtlpDestination(headers=...)``) are checked as the environment's
    are (``_settings.parse_headers``): one with control characters is one error here, not a
    failure of every request retried until the deadline."""
    if valid_header(key, value):
        return True
    logger.error(
        "Skipping header %r: a header name or value cannot hold control characters (CR, LF, ...).", key
    )
    return False


def build_otlp_exporter(
    otlp: OtlpSettings,
    max_request_bytes: int,
    retry_timeout_s: float,
    on_reachability: Optional[Callable[[bool], None]] = None,
    spool: Optional[Spool] = None,
    *,
    counters: Counters,
    conventions: Optional[Conventions] = None,
) -> OtlpExporter:
    """The exporter for ``otlp.protocol``; ``on_reachability`` hears when the endpoint starts or
    stops accepting connections; ``spool`` keeps what cannot be delivered (opt-in); ``conventions``
    are what this destination adds to each span."""
    cls = OtlpGrpcExporter if otlp.protocol == PROTOCOL_GRPC else OtlpHttpExporter
    return cls(
        otlp, max_request_bytes, retry_timeout_s, on_reachability, spool, counters=counters,
        conventions=conventions,
    )  # fmt: skip
