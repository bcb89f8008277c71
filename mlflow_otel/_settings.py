"""The one module that reads the environment.

Every variable mlflow-otel honours is declared here once, with its parser and default. Precedence
(docs/architecture.md, "Settings"): values set in code beat ``MLFLOW_*`` variables, which beat ``OTEL_*``
variables, which beat defaults. Code-level overrides are applied by the caller on top of the
:class:`Settings` returned by :func:`load` (``_state.settings()``).

An invalid value never raises: it logs one warning naming the variable and the default is used,
as the OpenTelemetry SDK does for its own variables.
"""

from __future__ import annotations

import difflib
import getpass
import logging
import os
import re
import tempfile
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Optional, TypeVar

from mlflow_otel._log import ensure_visible

_logger = logging.getLogger("mlflow_otel")

T = TypeVar("T")

# --- variable names (each documented in the README's table) -------------------------------------

#: "false" switches span creation off entirely (MLflow's variable).
MLFLOW_TRACING_ENABLED = "MLFLOW_TRACING_ENABLED"
#: Seconds after which a still-open trace is ended with status ERROR and exported (MLflow's variable).
MLFLOW_TRACE_TIMEOUT_SECONDS = "MLFLOW_TRACE_TIMEOUT_SECONDS"
#: How often the timeout watcher looks for expired traces (MLflow's variable).
MLFLOW_TRACE_TIMEOUT_CHECK_INTERVAL_SECONDS = "MLFLOW_TRACE_TIMEOUT_CHECK_INTERVAL_SECONDS"
#: Where the embedded default sink writes OTLP JSON lines.
MLFLOW_OTEL_TRACES_FILE = "MLFLOW_OTEL_TRACES_FILE"
#: Upper bound, in seconds, on the flush performed at interpreter exit.
MLFLOW_OTEL_EXIT_TIMEOUT_SECONDS = "MLFLOW_OTEL_EXIT_TIMEOUT_SECONDS"
#: The larger exit budget, in seconds, of a destination that answers but asks to wait (429/503 with
#: ``Retry-After``, a slow answer); a destination that refuses connections gets none of it.
MLFLOW_OTEL_EXIT_BUSY_TIMEOUT_SECONDS = "MLFLOW_OTEL_EXIT_BUSY_TIMEOUT_SECONDS"
#: "false": leave SIGTERM alone (by default, with no handler of the application's, a SIGTERM flushes
#: within the exit budget, then the process dies of SIGTERM as before).
MLFLOW_OTEL_HANDLE_SIGTERM = "MLFLOW_OTEL_HANDLE_SIGTERM"
#: A directory for the opt-in on-disk spool: requests that exhaust their retries, or are still queued
#: at exit, are written there and replayed when the destination answers again.
MLFLOW_OTEL_SPOOL_DIR = "MLFLOW_OTEL_SPOOL_DIR"
#: Size cap of the spool directory in bytes; over it the oldest requests are dropped (counted).
MLFLOW_OTEL_SPOOL_MAX_BYTES = "MLFLOW_OTEL_SPOOL_MAX_BYTES"
#: Tail-sampling policies in the OTel Collector ``tail_sampling`` processor's schema (YAML or JSON).
MLFLOW_OTEL_TAIL_SAMPLING_CONFIG = "MLFLOW_OTEL_TAIL_SAMPLING_CONFIG"

#: Trace-level sampling ratio in [0, 1]; beats OTEL_TRACES_SAMPLER (MLflow's variable).
MLFLOW_TRACE_SAMPLING_RATIO = "MLFLOW_TRACE_SAMPLING_RATIO"
OTEL_TRACES_SAMPLER = "OTEL_TRACES_SAMPLER"
OTEL_TRACES_SAMPLER_ARG = "OTEL_TRACES_SAMPLER_ARG"
#: Read by the OTel SDK's ``Resource.create``; here only to tell the user's resource attributes
#: from the SDK's defaults (the MLflow destination leaves the defaults out: ``Settings.resource_keys``).
OTEL_RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"
OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
#: Seconds a batch may spend in retries before it is dropped (MLflow's variable).
MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT = "MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT"
#: Parallel export workers per destination (MLflow's variable).
MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS = "MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS"
#: Largest request body, in bytes; bigger batches are split.
MLFLOW_OTEL_MAX_REQUEST_BYTES = "MLFLOW_OTEL_MAX_REQUEST_BYTES"
#: An MLflow tracking server (http/https) to send traces to, and the experiment (MLflow's variables).
MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
MLFLOW_EXPERIMENT_NAME = "MLFLOW_EXPERIMENT_NAME"
MLFLOW_EXPERIMENT_ID = "MLFLOW_EXPERIMENT_ID"
#: MLflow's credentials for a tracking server: a bearer token, or HTTP basic auth (username and
#: password win over the token, as in MLflow's ``build_otlp_headers``). Sent with every request to the
#: server: OTLP spans, trace records, reads and feedback.
MLFLOW_TRACKING_TOKEN = "MLFLOW_TRACKING_TOKEN"
MLFLOW_TRACKING_USERNAME = "MLFLOW_TRACKING_USERNAME"
MLFLOW_TRACKING_PASSWORD = "MLFLOW_TRACKING_PASSWORD"
#: "true": do not verify the tracking server's TLS certificate (MLflow's variable).
MLFLOW_TRACKING_INSECURE_TLS = "MLFLOW_TRACKING_INSECURE_TLS"
#: A CA bundle to verify the tracking server's TLS certificate with (MLflow's variable).
MLFLOW_TRACKING_SERVER_CERT_PATH = "MLFLOW_TRACKING_SERVER_CERT_PATH"
#: MLflow's switches for an OTLP endpoint beside a tracking server: "false" ignores the OTLP endpoint
#: (``OTEL_EXPORTER_OTLP_*``); with both a tracking URI and an OTLP endpoint, OTLP replaces the MLflow
#: server unless ``MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT`` is "true" (then both get every trace).
MLFLOW_ENABLE_OTLP_EXPORTER = "MLFLOW_ENABLE_OTLP_EXPORTER"
MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT = "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT"
#: "false": MLflow's blocking mode: a trace is exported before the call that ended its root returns
#: (within MLFLOW_OTEL_FLUSH_TIMEOUT_SECONDS), for scripts and tests (MLflow's variable).
MLFLOW_ENABLE_ASYNC_TRACE_LOGGING = "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"
#: Seconds ``flush_trace_async_logging()`` waits by default (and the blocking mode per trace).
MLFLOW_OTEL_FLUSH_TIMEOUT_SECONDS = "MLFLOW_OTEL_FLUSH_TIMEOUT_SECONDS"
#: What of a trace travels to downstream services as W3C baggage, comma-separated: session, user,
#: tags. Off by default: baggage crosses trust boundaries (docs: "Across services").
MLFLOW_OTEL_PROPAGATE = "MLFLOW_OTEL_PROPAGATE"
#: "false": join the application's global OTel TracerProvider instead of using our own.
MLFLOW_USE_DEFAULT_TRACER_PROVIDER = "MLFLOW_USE_DEFAULT_TRACER_PROVIDER"
#: Size cap, in bytes on disk, of the local trace store beside the embedded sink's file (the read
#: side of get_trace / search_traces with no server); over it the oldest traces are deleted.
MLFLOW_OTEL_TRACE_STORE_MAX_BYTES = "MLFLOW_OTEL_TRACE_STORE_MAX_BYTES"
#: Where self-telemetry counters are written (default: beside the embedded sink's file).
MLFLOW_OTEL_STATS_FILE = "MLFLOW_OTEL_STATS_FILE"

#: "false": drop inputs, outputs, messages and stream chunks; keep the trace's shape and usage.
MLFLOW_OTEL_CAPTURE_CONTENT = "MLFLOW_OTEL_CAPTURE_CONTENT"
#: Which attribute conventions model-call spans carry, comma-separated: mlflow, gen_ai, openinference.
MLFLOW_OTEL_SEMCONV = "MLFLOW_OTEL_SEMCONV"
MLFLOW_OTEL_OTLP_SEMCONV = "MLFLOW_OTEL_OTLP_SEMCONV"
#: The OTel GenAI instrumentations' switch for chat messages as ``gen_ai.*.messages`` attributes.
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
#: A redaction policy file in the OTel Collector redaction processor's schema (YAML or JSON).
MLFLOW_OTEL_REDACTION_CONFIG = "MLFLOW_OTEL_REDACTION_CONFIG"
#: "false": switch the built-in secret patterns off.
MLFLOW_OTEL_REDACTION_DEFAULTS = "MLFLOW_OTEL_REDACTION_DEFAULTS"
#: Trimming budgets in bytes.
MLFLOW_OTEL_MAX_ATTRIBUTE_BYTES = "MLFLOW_OTEL_MAX_ATTRIBUTE_BYTES"
MLFLOW_OTEL_MAX_SPAN_BYTES = "MLFLOW_OTEL_MAX_SPAN_BYTES"
#: The OTel SDK's limit on attribute string length (characters); trimming honours it, JSON-aware.
OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT = "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"
OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT = "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"

#: Batch span processor variables (OTel spec, "Batch Span Processor" section of sdk-environment-variables).
OTEL_BSP_SCHEDULE_DELAY = "OTEL_BSP_SCHEDULE_DELAY"
OTEL_BSP_MAX_QUEUE_SIZE = "OTEL_BSP_MAX_QUEUE_SIZE"
OTEL_BSP_MAX_EXPORT_BATCH_SIZE = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
#: MLflow's name for the queue bound; it beats OTEL_BSP_MAX_QUEUE_SIZE.
MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE = "MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE"

# OTLP exporter variables, as named by the OTel specification
# (https://opentelemetry.io/docs/specs/otel/protocol/exporter/). The signal-specific variable always
# beats the generic one.
OTEL_EXPORTER_OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTEL_EXPORTER_OTLP_HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
OTEL_EXPORTER_OTLP_TRACES_HEADERS = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
OTEL_EXPORTER_OTLP_TIMEOUT = "OTEL_EXPORTER_OTLP_TIMEOUT"
OTEL_EXPORTER_OTLP_TRACES_TIMEOUT = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
OTEL_EXPORTER_OTLP_INSECURE = "OTEL_EXPORTER_OTLP_INSECURE"
OTEL_EXPORTER_OTLP_TRACES_INSECURE = "OTEL_EXPORTER_OTLP_TRACES_INSECURE"
OTEL_EXPORTER_OTLP_CERTIFICATE = "OTEL_EXPORTER_OTLP_CERTIFICATE"
OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"
OTEL_EXPORTER_OTLP_CLIENT_KEY = "OTEL_EXPORTER_OTLP_CLIENT_KEY"
OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"
OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE"
OTEL_EXPORTER_OTLP_COMPRESSION = "OTEL_EXPORTER_OTLP_COMPRESSION"
OTEL_EXPORTER_OTLP_TRACES_COMPRESSION = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"

PROTOCOL_HTTP = "http/protobuf"
PROTOCOL_GRPC = "grpc"
_PROTOCOLS = (PROTOCOL_HTTP, PROTOCOL_GRPC)

#: The spec's default ports: 4318 for OTLP/HTTP, 4317 for OTLP/gRPC.
_DEFAULT_ENDPOINTS = {PROTOCOL_HTTP: "http://localhost:4318", PROTOCOL_GRPC: "http://localhost:4317"}

DEFAULT_TRACES_FILE = "mlflow-otel-traces.jsonl"

#: Spans queued per destination while it answers. Far larger than the OTel spec's 2048, so that a
#: burst from one process (20,000 traces of 3 spans as fast as Python makes them) is buffered, not
#: dropped, while the export threads catch up; a small queued span takes about 1.2 KB of memory, so a
#: full queue is about 60 MB. While the destination refuses connections the queue keeps a quarter of
#: that (``BatchProcessor.set_reachable``): a dead collector costs at most about 15 MB.
DEFAULT_MAX_QUEUE_SIZE = 49152

#: The exit budget of a destination that answers but is busy: room for a few ``Retry-After: 1``
#: answers, inside ``docker stop``'s 10 s grace period and Kubernetes' 30 s.
DEFAULT_EXIT_BUSY_TIMEOUT_S = 6.0
#: The spool's default size cap: 256 MiB of encoded requests (about 250,000 small spans).
DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024


#: (variable, value) pairs already reported: the environment is read again after ``tracing.reset()``,
#: and the same mistake is worth one warning.
_reported: set[tuple[str, str]] = set()


def forget_reported() -> None:
    """Report every invalid value again (tests)."""
    _reported.clear()


def _warn_invalid(name: str, raw: str, default: object, why: str = "") -> None:
    if (name, raw) in _reported:
        return
    _reported.add((name, raw))
    ensure_visible()  # the first warnings of a process look like every later one
    _logger.warning(
        "Invalid value %r for environment variable %s%s; using the default %r.",
        raw,
        name,
        f" ({why})" if why else "",
        default,
    )


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _parse_positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:  # also rejects NaN
        raise ValueError("expected a positive number")
    return value


def _read(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw)
    except (ValueError, TypeError) as exc:
        _warn_invalid(name, raw, default, str(exc))
        return default


def variable_value(name: str, kind: Callable[[str], T], default: T) -> T:
    """The environment variable ``name`` as ``kind`` (``bool``: MLflow's "true"/"false"), else
    ``default`` when unset, empty or invalid (then a warning names it); what
    ``environment_variables``' objects answer: the environment is read here only."""
    return _read(os.environ, name, _parse_bool if kind is bool else kind, default)  # type: ignore[arg-type]


def variable_is_set(name: str) -> bool:
    return name in os.environ


def _first(env: Mapping[str, str], *names: str) -> tuple[Optional[str], Optional[str]]:
    """The first of ``names`` that is set to a non-empty value, with its name."""
    for name in names:
        raw = env.get(name)
        if raw is not None and raw.strip() != "":
            return name, raw.strip()
    return None, None


def parse_headers(raw: str, variable: str = OTEL_EXPORTER_OTLP_HEADERS) -> dict[str, str]:
    """Parse an ``OTEL_EXPORTER_OTLP_HEADERS`` value.

    The spec's format is the W3C Baggage list format: ``key=value`` pairs separated by commas, each
    value URL-decoded and split on the *first* ``=`` (a value may contain ``=``, e.g. base64). Header
    names are lower-cased as HTTP/2 and gRPC metadata require. A malformed pair is skipped with a
    warning rather than dropping the rest.
    """
    headers: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = urllib.parse.unquote(key.strip()).strip().lower()
        if not sep or not key:
            _logger.warning("Skipping malformed header %r in %s (expected key=value).", key, variable)
            continue
        value = urllib.parse.unquote(value.strip())
        if not valid_header(key, value):
            # No HTTP client would send it (every request would fail, and be retried until the
            # deadline): one error now, naming the header but not its value (a credential).
            if (variable, key) in _reported:
                continue
            _reported.add((variable, key))
            _logger.error(
                "Skipping header %r in %s: a header name or value cannot hold control characters "
                "(CR, LF, ...).",
                key,
                variable,
            )
            continue
        headers[key] = value
    return headers


_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def valid_header(key: str, value: str) -> bool:
    """A header HTTP/1.1 and gRPC metadata can carry: no control characters (RFC 9110 field
    values allow HTAB, not CR or LF), a token for a name."""
    return not _HEADER_CONTROL.search(key + value) and " " not in key and ":" not in key


def _parse_protocol(raw: str) -> str:
    value = raw.strip().lower()
    if value not in _PROTOCOLS:
        raise ValueError(f"supported protocols are {', '.join(_PROTOCOLS)}")
    return value


def _parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("expected a positive integer")
    return value


def _parse_ratio(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError("expected a number between 0 and 1")
    return value


def _parse_compression(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("gzip", "none"):
        raise ValueError("expected gzip or none")
    return value


def _parse_timeout_ms(raw: str) -> float:
    # The spec states OTEL_EXPORTER_OTLP_TIMEOUT in milliseconds; we keep seconds internally.
    value = float(raw)
    if not value > 0:
        raise ValueError("expected a positive number of milliseconds")
    return value / 1000.0


@dataclass(frozen=True)
class OtlpSettings:
    """Where and how spans leave over OTLP, resolved per the spec's endpoint rules."""

    protocol: str
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    compression: str = "none"
    insecure: bool = False
    certificate_file: Optional[str] = None
    client_key_file: Optional[str] = None
    client_certificate_file: Optional[str] = None


def resolve_http_traces_endpoint(generic: str) -> str:
    """Append ``v1/traces`` to the generic endpoint, as the OTLP/HTTP spec requires.

    Per https://opentelemetry.io/docs/specs/otel/protocol/exporter/#endpoint-urls-for-otlphttp the
    signal path is appended to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (respecting an existing base path),
    while ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used exactly as given.
    """
    return generic.rstrip("/") + "/v1/traces"


def http_url_problem(url: str) -> Optional[str]:
    """Why ``url`` cannot be an http(s) endpoint (no scheme, another scheme, no host), or None."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        host = parts.hostname
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return (
            "it needs a scheme: http:// or https://"
            if not parts.scheme or "//" not in url
            else (f"the scheme {parts.scheme!r} is not http or https")
        )
    if not host:
        return "it has no host"
    return None


def _report_bad_url(variable: str, url: str, problem: str, fix: str) -> None:
    if (variable, url) in _reported:
        return
    _reported.add((variable, url))
    ensure_visible()
    _logger.warning("%s=%r cannot be used: %s. %s", variable, url, problem, fix)


def _resolve_otlp(env: Mapping[str, str]) -> Optional[OtlpSettings]:
    """OTLP settings when an endpoint or protocol is configured, else None (embedded default)."""
    protocol_var, protocol_raw = _first(env, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL)
    _, traces_endpoint = _first(env, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    _, generic_endpoint = _first(env, OTEL_EXPORTER_OTLP_ENDPOINT)
    if protocol_raw is None and traces_endpoint is None and generic_endpoint is None:
        return None

    protocol = PROTOCOL_HTTP  # the spec's default protocol
    if protocol_raw is not None:
        try:
            protocol = _parse_protocol(protocol_raw)
        except ValueError as exc:
            _warn_invalid(protocol_var or OTEL_EXPORTER_OTLP_PROTOCOL, protocol_raw, PROTOCOL_HTTP, str(exc))

    if traces_endpoint is not None:
        endpoint = traces_endpoint
    elif generic_endpoint is not None:
        endpoint = (
            resolve_http_traces_endpoint(generic_endpoint) if protocol == PROTOCOL_HTTP else generic_endpoint
        )
    else:
        default = _DEFAULT_ENDPOINTS[protocol]
        endpoint = resolve_http_traces_endpoint(default) if protocol == PROTOCOL_HTTP else default

    if traces_endpoint is not None:
        source, given = OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, traces_endpoint
    else:
        source, given = OTEL_EXPORTER_OTLP_ENDPOINT, generic_endpoint or endpoint
    # gRPC endpoints may be host:port (OTEL_EXPORTER_OTLP_INSECURE says plaintext); HTTP needs a URL.
    grpc_bare = protocol == PROTOCOL_GRPC and "://" not in endpoint and ":" in endpoint
    problem = None if grpc_bare else http_url_problem(endpoint)
    if problem is not None:
        _report_bad_url(
            source,
            given,
            problem,
            "Write it as http://host:4318 (OTLP/HTTP) or set OTEL_EXPORTER_OTLP_PROTOCOL=grpc for a "
            "host:4317 gRPC endpoint; until then traces go to the default destination.",
        )
        return None

    headers: dict[str, str] = {}
    for name in (OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TRACES_HEADERS):
        raw = env.get(name)
        if raw:
            headers.update(parse_headers(raw, name))  # signal-specific entries win

    timeout_s = _read(env, OTEL_EXPORTER_OTLP_TIMEOUT, _parse_timeout_ms, 10.0)
    timeout_s = _read(env, OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, _parse_timeout_ms, timeout_s)
    compression = _read(env, OTEL_EXPORTER_OTLP_COMPRESSION, _parse_compression, "none")
    compression = _read(env, OTEL_EXPORTER_OTLP_TRACES_COMPRESSION, _parse_compression, compression)
    insecure = _read(env, OTEL_EXPORTER_OTLP_INSECURE, _parse_bool, False)
    insecure = _read(env, OTEL_EXPORTER_OTLP_TRACES_INSECURE, _parse_bool, insecure)
    _, certificate = _first(env, OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE, OTEL_EXPORTER_OTLP_CERTIFICATE)
    _, client_key = _first(env, OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY, OTEL_EXPORTER_OTLP_CLIENT_KEY)
    _, client_cert = _first(
        env, OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE
    )
    return OtlpSettings(
        protocol, endpoint, headers, timeout_s, compression, insecure, certificate, client_key, client_cert
    )


def default_traces_file() -> str:
    """The embedded sink's file: ``./mlflow-otel-traces.jsonl``, or a private folder of this user's
    in the temporary directory when cwd is read-only.

    Serverless runtimes often mount the code directory read-only, so we fall back to the system
    temporary directory there rather than failing to record anything; a folder per user (0700,
    ``_files.py``), since a fixed name in a shared directory would let other users read the
    traces, or plant the file first.
    """
    cwd = os.getcwd()
    if os.access(cwd, os.W_OK):
        return os.path.join(cwd, DEFAULT_TRACES_FILE)
    user = str(os.getuid()) if hasattr(os, "getuid") else getpass.getuser()
    return os.path.join(tempfile.gettempdir(), f"mlflow-otel-{user}", DEFAULT_TRACES_FILE)


@dataclass(frozen=True)
class ProcessorSettings:
    """The processor chain's settings (code-level ``tracing.configure`` beats them)."""

    capture_content: bool = True
    redaction_config: Optional[str] = None
    redaction_defaults: bool = True
    max_attribute_bytes: int = 1024 * 1024
    max_span_bytes: int = 3 * 1024 * 1024
    tail_sampling_config: Optional[str] = None


def _load_processor_settings(env: Mapping[str, str]) -> ProcessorSettings:
    max_attribute = _read(env, MLFLOW_OTEL_MAX_ATTRIBUTE_BYTES, _parse_positive_int, 1024 * 1024)
    # The OTel limit counts characters; a character is at most 4 UTF-8 bytes, but cutting by the
    # same number of bytes keeps every string within the character limit, which is what it promises.
    for name in (OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT, OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT):
        limit = _read(env, name, _parse_positive_int, None)
        if limit is not None:
            max_attribute = min(max_attribute, limit)
    return ProcessorSettings(
        capture_content=_read(env, MLFLOW_OTEL_CAPTURE_CONTENT, _parse_bool, True),
        redaction_config=env.get(MLFLOW_OTEL_REDACTION_CONFIG) or None,
        redaction_defaults=_read(env, MLFLOW_OTEL_REDACTION_DEFAULTS, _parse_bool, True),
        max_attribute_bytes=max_attribute,
        max_span_bytes=_read(env, MLFLOW_OTEL_MAX_SPAN_BYTES, _parse_positive_int, 3 * 1024 * 1024),
        tail_sampling_config=env.get(MLFLOW_OTEL_TAIL_SAMPLING_CONFIG) or None,
    )


SEMCONV_MLFLOW = "mlflow"
SEMCONV_GEN_AI = "gen_ai"
SEMCONV_OPENINFERENCE = "openinference"
_SEMCONVS = (SEMCONV_MLFLOW, SEMCONV_GEN_AI, SEMCONV_OPENINFERENCE)


def _parse_semconv(raw: str) -> frozenset[str]:
    names = frozenset(n.strip().lower() for n in raw.split(",") if n.strip())
    unknown = names - set(_SEMCONVS)
    if unknown or not names:
        raise ValueError(f"expected a comma-separated subset of {', '.join(_SEMCONVS)}")
    return names


@dataclass(frozen=True)
class GenAiSettings:
    """How model-call spans (``mlflow_otel.openai.autolog``) are described on the wire.

    MLflow's keys and the OTel GenAI keys are on by default; OpenInference (what Phoenix renders) is
    asked for. Chat messages as ``gen_ai.input.messages`` / ``gen_ai.output.messages`` would repeat
    ``mlflow.spanInputs`` / ``mlflow.spanOutputs``, so they follow the GenAI instrumentations' own
    opt-in switch: big payloads are never duplicated unless asked for.
    """

    semconv: frozenset[str] = frozenset({SEMCONV_MLFLOW, SEMCONV_GEN_AI})
    capture_messages: bool = False
    #: Conventions of OTLP destinations (the endpoint of ``OTEL_EXPORTER_OTLP_*`` and an
    #: ``OtlpDestination`` without its own ``semconv``), written per destination on the export
    #: worker as it encodes (``outward.Conventions``); MLflow servers and the local file get
    #: ``semconv`` only. ``MLFLOW_OTEL_OTLP_SEMCONV``; else ``MLFLOW_OTEL_SEMCONV`` when set (the
    #: user chose for every destination); else all three, so Phoenix (OpenInference), GenAI
    #: backends and an MLflow server behind a collector each find what they read.
    otlp_semconv: frozenset[str] = frozenset(_SEMCONVS)


def _load_genai_settings(env: Mapping[str, str]) -> GenAiSettings:
    semconv = _read(env, MLFLOW_OTEL_SEMCONV, _parse_semconv, GenAiSettings.semconv)
    otlp_default = semconv if env.get(MLFLOW_OTEL_SEMCONV) else GenAiSettings.otlp_semconv
    return GenAiSettings(
        semconv=semconv,
        capture_messages=_read(env, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, _parse_bool, False),
        otlp_semconv=_read(env, MLFLOW_OTEL_OTLP_SEMCONV, _parse_semconv, otlp_default),
    )


@dataclass(frozen=True)
class HttpEnvironment:
    """What ``requests`` would take from the environment for an HTTP client (read once per client,
    ``_http.HttpClient``): proxies by scheme (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, lower
    case first), ``NO_PROXY``, and the CA bundle of ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``."""

    proxies: Mapping[str, str] = field(default_factory=dict)
    no_proxy: str = ""
    ca_bundle: Optional[str] = None


def http_environment() -> HttpEnvironment:
    """The HTTP client environment now (the proxy variables as ``requests`` and ``urllib`` read
    them: ``urllib.request.getproxies_environment``)."""
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    no_proxy = proxies.pop("no", "")
    env = os.environ
    return HttpEnvironment(
        proxies=proxies,
        no_proxy=no_proxy,
        ca_bundle=env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or None,
    )


@dataclass(frozen=True)
class TrackingAuth:
    """How to authenticate to an MLflow tracking server and verify its TLS certificate (MLflow's
    ``MLFLOW_TRACKING_*`` variables)."""

    token: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = None
    insecure_tls: bool = False
    server_cert_path: Optional[str] = None

    def __repr__(self) -> str:  # never print credentials
        return (
            f"TrackingAuth(token={'***' if self.token else None}, username={self.username!r}, "
            f"password={'***' if self.password else None}, insecure_tls={self.insecure_tls}, "
            f"server_cert_path={self.server_cert_path!r})"
        )


def _load_tracking_auth(env: Mapping[str, str]) -> TrackingAuth:
    return TrackingAuth(
        token=env.get(MLFLOW_TRACKING_TOKEN) or None,
        username=env.get(MLFLOW_TRACKING_USERNAME) or None,
        password=env.get(MLFLOW_TRACKING_PASSWORD) or None,
        insecure_tls=_read(env, MLFLOW_TRACKING_INSECURE_TLS, _parse_bool, False),
        server_cert_path=env.get(MLFLOW_TRACKING_SERVER_CERT_PATH) or None,
    )


@dataclass(frozen=True)
class Settings:
    """Everything the SDK reads from the environment, parsed once."""

    tracing_enabled: bool = True
    trace_timeout_s: Optional[float] = None
    trace_timeout_check_interval_s: float = 1.0
    otlp: Optional[OtlpSettings] = None
    traces_file: str = ""
    exit_timeout_s: float = 2.0
    exit_busy_timeout_s: float = DEFAULT_EXIT_BUSY_TIMEOUT_S
    handle_sigterm: bool = True
    spool_dir: Optional[str] = None
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    schedule_delay_s: float = 5.0
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
    max_export_batch_size: int = 512
    max_workers: int = 2
    retry_timeout_s: float = 120.0
    max_request_bytes: Optional[int] = None
    sampling_ratio: Optional[float] = None
    otel_sampler: Optional[str] = None
    otel_sampler_arg: Optional[str] = None
    tracking_uri: Optional[str] = None
    experiment_name: Optional[str] = None
    experiment_id: Optional[str] = None
    use_default_tracer_provider: bool = True
    stats_file: Optional[str] = None
    trace_store_max_bytes: int = 512 * 1024 * 1024
    tracking_auth: TrackingAuth = field(default_factory=lambda: TrackingAuth())
    #: ``MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT``: an OTLP endpoint and a tracking server both get traces.
    otlp_dual_export: bool = False
    processors: ProcessorSettings = field(default_factory=lambda: ProcessorSettings())
    genai: GenAiSettings = field(default_factory=lambda: GenAiSettings())
    #: ``MLFLOW_OTEL_PROPAGATE``: what travels as baggage (and is accepted from it).
    propagate: frozenset[str] = frozenset()
    #: ``MLFLOW_ENABLE_ASYNC_TRACE_LOGGING``: False blocks at each trace's end until it is exported.
    async_logging: bool = True
    #: ``MLFLOW_OTEL_FLUSH_TIMEOUT_SECONDS``: the default deadline of a flush.
    flush_timeout_s: float = 5.0
    #: Resource attribute keys the user set (``OTEL_RESOURCE_ATTRIBUTES``; ``service.name`` with
    #: ``OTEL_SERVICE_NAME``), as opposed to the OTel SDK's defaults.
    resource_keys: frozenset[str] = frozenset()


def _resource_keys(env: Mapping[str, str]) -> frozenset[str]:
    """Keys of ``OTEL_RESOURCE_ATTRIBUTES`` (``key=value`` pairs separated by commas, as the OTel
    SDK's ``OTELResourceDetector`` parses them) and ``service.name`` if ``OTEL_SERVICE_NAME`` is set."""
    keys = {
        pair.split("=", 1)[0].strip()
        for pair in env.get(OTEL_RESOURCE_ATTRIBUTES, "").split(",")
        if "=" in pair and pair.split("=", 1)[0].strip()
    }
    if env.get(OTEL_SERVICE_NAME):
        keys.add("service.name")
    return frozenset(keys)


_PROPAGATABLE = ("session", "user", "tags")


def _parse_propagate(raw: str) -> frozenset[str]:
    names = frozenset(n.strip().lower() for n in raw.split(",") if n.strip())
    if names - set(_PROPAGATABLE):
        raise ValueError(f"expected a comma-separated subset of {', '.join(_PROPAGATABLE)}")
    return names


def check_tracking_uri(uri: str, variable: str = MLFLOW_TRACKING_URI) -> Optional[str]:
    """The URI if an MLflow server can be reached by it (http/https with a host), else None with one
    warning naming ``variable`` and the fix. Other schemes (``file:``, ``databricks``) are MLflow
    stores this SDK does not send to; they are reported by the routing stage."""
    if "://" not in uri or uri.split("://", 1)[0] not in ("http", "https"):
        return uri
    problem = http_url_problem(uri)
    if problem is None:
        return uri
    _report_bad_url(
        variable,
        uri,
        problem,
        "Write it as http://host:5000 (the MLflow server's address); until then traces go to the "
        "default destination.",
    )
    return None


def _tracking_uri(env: Mapping[str, str]) -> Optional[str]:
    raw = env.get(MLFLOW_TRACKING_URI) or None
    return check_tracking_uri(raw) if raw else None


#: Prefixes of the variables that concern tracing: an unknown name with one of them is likely a typo.
_OUR_PREFIXES = ("MLFLOW_TRACE", "MLFLOW_OTEL_", "MLFLOW_ASYNC_TRACE", "MLFLOW_ENABLE_", "OTEL_")


def _known_variables() -> frozenset[str]:
    return frozenset(
        value
        for name, value in globals().items()
        if name.isupper() and isinstance(value, str) and name == value
    )


def _suggest_for_unknown(env: Mapping[str, str]) -> None:
    """One "did you mean" warning per misspelled tracing variable (``MLFLOW_TRACE_SAMPLNG_RATIO``)."""
    known = _known_variables()
    for name in env:
        if not name.startswith(_OUR_PREFIXES) or name in known or (name, "?") in _reported:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
        if close:
            _reported.add((name, "?"))
            ensure_visible()
            _logger.warning("Unknown environment variable %s (ignored); did you mean %s?", name, close[0])


def load(env: Optional[Mapping[str, str]] = None) -> Settings:
    """Parse every variable once (``_state.settings()`` caches the result; ``tracing.reset()``
    reads the environment again). Each invalid value is reported once, here."""
    env = os.environ if env is None else env
    _suggest_for_unknown(env)
    return Settings(
        tracing_enabled=_read(env, MLFLOW_TRACING_ENABLED, _parse_bool, True),
        trace_timeout_s=_read(env, MLFLOW_TRACE_TIMEOUT_SECONDS, _parse_positive_float, None),
        trace_timeout_check_interval_s=_read(
            env, MLFLOW_TRACE_TIMEOUT_CHECK_INTERVAL_SECONDS, _parse_positive_float, 1.0
        ),
        otlp=_resolve_otlp(env) if _read(env, MLFLOW_ENABLE_OTLP_EXPORTER, _parse_bool, True) else None,
        traces_file=env.get(MLFLOW_OTEL_TRACES_FILE) or default_traces_file(),
        exit_timeout_s=_read(env, MLFLOW_OTEL_EXIT_TIMEOUT_SECONDS, _parse_positive_float, 2.0),
        exit_busy_timeout_s=_read(
            env, MLFLOW_OTEL_EXIT_BUSY_TIMEOUT_SECONDS, _parse_positive_float, DEFAULT_EXIT_BUSY_TIMEOUT_S
        ),
        handle_sigterm=_read(env, MLFLOW_OTEL_HANDLE_SIGTERM, _parse_bool, True),
        spool_dir=env.get(MLFLOW_OTEL_SPOOL_DIR) or None,
        spool_max_bytes=_read(env, MLFLOW_OTEL_SPOOL_MAX_BYTES, _parse_positive_int, DEFAULT_SPOOL_MAX_BYTES),
        schedule_delay_s=_read(env, OTEL_BSP_SCHEDULE_DELAY, _parse_positive_float, 5000.0) / 1000.0,
        max_queue_size=_read(
            env,
            MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE,
            _parse_positive_int,
            _read(env, OTEL_BSP_MAX_QUEUE_SIZE, _parse_positive_int, DEFAULT_MAX_QUEUE_SIZE),
        ),
        max_export_batch_size=_read(env, OTEL_BSP_MAX_EXPORT_BATCH_SIZE, _parse_positive_int, 512),
        max_workers=_read(env, MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS, _parse_positive_int, 2),
        retry_timeout_s=_read(env, MLFLOW_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT, _parse_positive_float, 120.0),
        max_request_bytes=_read(env, MLFLOW_OTEL_MAX_REQUEST_BYTES, _parse_positive_int, None),
        sampling_ratio=_read(env, MLFLOW_TRACE_SAMPLING_RATIO, _parse_ratio, None),
        otel_sampler=env.get(OTEL_TRACES_SAMPLER) or None,
        otel_sampler_arg=env.get(OTEL_TRACES_SAMPLER_ARG) or None,
        tracking_uri=_tracking_uri(env),
        experiment_name=env.get(MLFLOW_EXPERIMENT_NAME) or None,
        experiment_id=env.get(MLFLOW_EXPERIMENT_ID) or None,
        use_default_tracer_provider=_read(env, MLFLOW_USE_DEFAULT_TRACER_PROVIDER, _parse_bool, True),
        stats_file=env.get(MLFLOW_OTEL_STATS_FILE) or None,
        trace_store_max_bytes=_read(
            env, MLFLOW_OTEL_TRACE_STORE_MAX_BYTES, _parse_positive_int, Settings.trace_store_max_bytes
        ),
        tracking_auth=_load_tracking_auth(env),
        otlp_dual_export=_read(env, MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT, _parse_bool, False),
        processors=_load_processor_settings(env),
        genai=_load_genai_settings(env),
        propagate=_read(env, MLFLOW_OTEL_PROPAGATE, _parse_propagate, frozenset()),
        async_logging=_read(env, MLFLOW_ENABLE_ASYNC_TRACE_LOGGING, _parse_bool, True),
        flush_timeout_s=_read(env, MLFLOW_OTEL_FLUSH_TIMEOUT_SECONDS, _parse_positive_float, 5.0),
        resource_keys=_resource_keys(env),
    )


def otlp_for(endpoint: str, protocol: str, env: Optional[Mapping[str, str]] = None) -> Optional[OtlpSettings]:
    """OTLP settings for an endpoint given outright (``mlflow-otel push --to``): the endpoint used
    as given (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``'s rule), with the headers, timeout,
    compression and TLS files of the ``OTEL_EXPORTER_OTLP_*`` variables. None (and one warning)
    if the endpoint cannot be used."""
    env = os.environ if env is None else env
    given = {OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: protocol}
    return _resolve_otlp({**env, **given})
