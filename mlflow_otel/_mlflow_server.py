"""Talking to an MLflow tracking server without importing mlflow: MLflow's REST API.

One client for every call this SDK makes to a tracking server other than OTLP: experiment lookup
(``set_experiment``, an experiment named in the settings), the trace records the MLflow destination
sends after the spans (``exporters/mlflow_record.py``), and the read / feedback API
(``records/rest.py``). Endpoints and bodies are MLflow's (``mlflow/server/handlers.py`` and
``mlflow/protos/service.proto`` in MLflow 3.18): JSON in the protobuf mapping MLflow's handlers parse.

Credentials and TLS follow MLflow's variables (``_settings.TrackingAuth``): HTTP basic auth from
``MLFLOW_TRACKING_USERNAME`` / ``PASSWORD``, else a bearer ``MLFLOW_TRACKING_TOKEN`` (MLflow's
``build_otlp_headers`` order); ``MLFLOW_TRACKING_INSECURE_TLS`` / ``MLFLOW_TRACKING_SERVER_CERT_PATH``
for certificate checks. Every failure is one ``MlflowException`` naming the server, the call and the
server's own message; the callers decide whether it reaches the user (reads) or becomes a counted,
rate-limited warning (export).

The HTTP client (``_http.HttpClient``, urllib3) is imported at the first call, not with the
package: ``import mlflow_otel`` stays cheap for processes that never read.
"""

from __future__ import annotations

import base64
import calendar
import json
import re
import time
import urllib.parse
from typing import Any, Optional

from mlflow_otel._http import HttpClient, HttpFailure
from mlflow_otel._log import masked_url
from mlflow_otel._settings import TrackingAuth
from mlflow_otel.exceptions import MlflowException

#: The header an MLflow server reads to file OTLP spans under an experiment.
EXPERIMENT_ID_HEADER = "x-mlflow-experiment-id"
DEFAULT_EXPERIMENT_ID = "0"
#: Seconds one REST call may take (connect + answer).
DEFAULT_TIMEOUT_S = 30.0

#: MLflow's error codes used here (``databricks.proto``'s ``ErrorCode`` names).
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
UNAUTHENTICATED = "UNAUTHENTICATED"
PERMISSION_DENIED = "PERMISSION_DENIED"
TEMPORARILY_UNAVAILABLE = "TEMPORARILY_UNAVAILABLE"


class MlflowServerError(MlflowException):
    """The tracking server could not be reached or refused the request (``status`` is the HTTP
    status, None when no answer came)."""

    def __init__(
        self, message: str, error_code: str = "INTERNAL_ERROR", status: Optional[int] = None
    ) -> None:
        super().__init__(message, error_code=error_code)
        self.status = status


def is_http_uri(uri: Optional[str]) -> bool:
    return bool(uri) and urllib.parse.urlparse(uri).scheme in ("http", "https")  # type: ignore[arg-type]


def traces_endpoint(tracking_uri: str) -> str:
    return tracking_uri.rstrip("/") + "/v1/traces"


def auth_headers(auth: TrackingAuth) -> dict[str, str]:
    """The ``Authorization`` header MLflow sends for these credentials (none without any)."""
    if auth.username and auth.password:
        token = base64.standard_b64encode(f"{auth.username}:{auth.password}".encode()).decode()
        return {"authorization": f"Basic {token}"}
    if auth.token:
        return {"authorization": f"Bearer {auth.token}"}
    return {}


def tls_verify(auth: TrackingAuth) -> Any:
    """The certificate check: False when insecure, the CA bundle when given, else True."""
    if auth.insecure_tls:
        return False
    return auth.server_cert_path or True


class Experiment:
    """An experiment of a tracking server (MLflow's ``mlflow.entities.Experiment``: the same
    constructor; ``tags`` read back as a dict)."""

    def __init__(
        self,
        experiment_id: str,
        name: str,
        artifact_location: Optional[str],
        lifecycle_stage: str,
        tags: Optional[Any] = None,
        creation_time: Optional[int] = None,
        last_update_time: Optional[int] = None,
        workspace: Optional[str] = None,
        trace_location: Optional[Any] = None,
        effective_trace_archival_retention: Optional[str] = None,
    ) -> None:
        self.experiment_id = experiment_id
        self.name = name
        self.artifact_location = artifact_location
        self.lifecycle_stage = lifecycle_stage
        self.tags: dict[str, str] = dict(tags or {})
        self.creation_time = creation_time
        self.last_update_time = last_update_time
        self.workspace = workspace
        self.trace_location = trace_location
        self.effective_trace_archival_retention = effective_trace_archival_retention

    def __repr__(self) -> str:
        return (
            f"<Experiment: experiment_id={self.experiment_id!r}, name={self.name!r}, "
            f"artifact_location={self.artifact_location!r}, lifecycle_stage={self.lifecycle_stage!r}>"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Experiment) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Experiment:
        tags = {t.get("key", ""): t.get("value", "") for t in data.get("tags") or ()}
        return cls(
            experiment_id=str(data.get("experiment_id", "")),
            name=str(data.get("name", "")),
            artifact_location=data.get("artifact_location"),
            lifecycle_stage=data.get("lifecycle_stage", "active"),
            tags=tags,
            creation_time=_int_or_none(data.get("creation_time")),
            last_update_time=_int_or_none(data.get("last_update_time")),
        )


def _int_or_none(value: Any) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class RestClient:
    """MLflow's REST API on one tracking server: keep-alive connections (``_http.HttpClient``:
    closed when idle, fresh after a fork), the credentials and TLS settings of ``auth`` on every
    request."""

    def __init__(
        self, tracking_uri: str, auth: Optional[TrackingAuth] = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ):
        self.tracking_uri = tracking_uri.rstrip("/")
        self.shown_uri = masked_url(self.tracking_uri)  # as messages may show it
        self.auth = auth if auth is not None else TrackingAuth()
        self.timeout_s = timeout_s
        self._headers = {
            "content-type": "application/json",
            "user-agent": "mlflow-otel",
            **auth_headers(self.auth),
        }
        self._client = HttpClient(verify=tls_verify(self.auth))

    def close_idle(self) -> None:
        """Close keep-alive connections no call is using (``_http.HttpClient``)."""
        self._client.close_idle()

    def call(
        self,
        method: str,
        path: str,
        body: Optional[dict[str, Any]] = None,
        params: Any = None,
        timeout_s: Optional[float] = None,
    ) -> dict[str, Any]:
        """One request; the decoded JSON answer, or ``MlflowServerError`` with the server's message.
        ``params`` go into the query string (a list value repeats its key, as MLflow's own client
        sends ``trace_ids``)."""
        url = self.tracking_uri + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        what = f"{method} {path}"
        try:
            response = self._client.request(
                method,
                url,
                body=None if body is None else json.dumps(body).encode(),
                headers=self._headers,
                timeout_s=timeout_s or self.timeout_s,
            )
        except HttpFailure as exc:
            if exc.tls:
                raise MlflowServerError(
                    f"TLS error talking to the MLflow server at {self.shown_uri} ({what}): {exc}. Set "
                    "MLFLOW_TRACKING_SERVER_CERT_PATH to its CA bundle, or MLFLOW_TRACKING_INSECURE_TLS=true "
                    "to skip the check.",
                    TEMPORARILY_UNAVAILABLE,
                ) from None
            raise MlflowServerError(
                f"Cannot reach the MLflow server at {self.shown_uri} ({what}): " + masked_url(str(exc)),
                TEMPORARILY_UNAVAILABLE,
            ) from None
        status = response.status
        try:
            data = json.loads(response.body) if response.body else {}
        except ValueError:
            if 200 <= status < 300:  # a web server, but not MLflow's REST API
                content_type = response.headers.get("Content-Type", "?")
                raise MlflowServerError(
                    f"{self.shown_uri} answered {what} with {content_type}, not MLflow's JSON: it "
                    "is not an MLflow tracking server (check set_tracking_uri / MLFLOW_TRACKING_URI)",
                    "INVALID_STATE",
                ) from None
            data = {}
        if 200 <= status < 300:
            return data if isinstance(data, dict) else {}
        raise self._error(what, status, data, response.text)

    def _error(self, what: str, status: int, data: Any, text: str) -> MlflowServerError:
        message = ""
        code = "INTERNAL_ERROR"
        if isinstance(data, dict):
            message = str(data.get("message") or "")
            code = str(data.get("error_code") or code)
        message = message or text.strip()[:500] or f"HTTP {status}"
        where = f"the MLflow server at {self.shown_uri} ({what})"
        if status == 401:
            return MlflowServerError(
                f"{where} asked for credentials (HTTP 401): {message}. Set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN.",
                UNAUTHENTICATED,
                status,
            )
        if status == 403:
            return MlflowServerError(
                f"{where} refused access (HTTP 403): {message}. The credentials in MLFLOW_TRACKING_* lack "
                "permission for this.",
                PERMISSION_DENIED,
                status,
            )
        return MlflowServerError(f"{where} answered HTTP {status}: {message}", code, status)

    # --- experiments ---------------------------------------------------------------------------
    def get_experiment_by_name(self, name: str) -> Optional[Experiment]:
        try:
            data = self.call(
                "GET", "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name}
            )
        except MlflowServerError as exc:
            if exc.error_code == RESOURCE_DOES_NOT_EXIST or exc.status == 404:
                return None
            raise
        return Experiment.from_json(data.get("experiment") or {})

    def get_experiment(self, experiment_id: str) -> Optional[Experiment]:
        try:
            data = self.call(
                "GET", "/api/2.0/mlflow/experiments/get", params={"experiment_id": experiment_id}
            )
        except MlflowServerError as exc:
            if exc.error_code in (RESOURCE_DOES_NOT_EXIST, "INVALID_PARAMETER_VALUE") or exc.status == 404:
                return None
            raise
        return Experiment.from_json(data.get("experiment") or {})

    def create_experiment(self, name: str) -> str:
        return str(self.call("POST", "/api/2.0/mlflow/experiments/create", {"name": name})["experiment_id"])


def client_for(tracking_uri: str, auth: Optional[TrackingAuth] = None) -> RestClient:
    """A client with ``auth``, or the credentials of the settings in force."""
    if auth is None:
        from mlflow_otel._state import STATE

        auth = STATE.settings().tracking_auth
    return RestClient(tracking_uri, auth)


def get_or_create_experiment(
    tracking_uri: str, name: str, timeout: float = 10.0, auth: Optional[TrackingAuth] = None
) -> str:
    """The id of experiment ``name``, created if it does not exist (as ``mlflow.set_experiment``)."""
    client = client_for(tracking_uri, auth)
    client.timeout_s = timeout
    shown = client.shown_uri
    for _ in range(2):  # a concurrent creator may win the race: look up again
        try:
            found = client.get_experiment_by_name(name)
            if found is not None:
                return found.experiment_id
        except MlflowServerError as exc:
            raise MlflowServerError(
                f"{shown}: looking up experiment {name!r} failed: {exc.message}",
                exc.error_code,
                exc.status,
            ) from None
        try:
            return client.create_experiment(name)
        except MlflowServerError as exc:
            # Created meanwhile by another process: MLflow answers RESOURCE_ALREADY_EXISTS (a 400
            # from older servers); any other refusal (an invalid name) keeps the server's message.
            if exc.error_code != "RESOURCE_ALREADY_EXISTS" and exc.status != 409:
                raise MlflowServerError(
                    f"{shown}: creating experiment {name!r} failed: {exc.message}",
                    exc.error_code,
                    exc.status,
                ) from None
        except (KeyError, ValueError) as exc:
            raise MlflowServerError(f"{shown}: creating experiment {name!r} failed: {exc}") from None
    raise MlflowServerError(f"{shown}: could not get or create experiment {name!r}")


# --- protobuf JSON values (google.protobuf.Timestamp / Duration as MLflow's handlers write them) ----
_RFC3339 = None


def timestamp_to_json(ms: int) -> str:
    """Milliseconds since the epoch as a protobuf ``Timestamp`` in JSON (``2026-01-02T03:04:05.678Z``)."""
    seconds, millis = divmod(int(ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def timestamp_from_json(value: Any) -> Optional[int]:
    """A protobuf ``Timestamp`` in JSON (RFC 3339, any fraction, ``Z`` or an offset), or a number of
    milliseconds, as milliseconds since the epoch."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return int(value)
    global _RFC3339
    if _RFC3339 is None:
        _RFC3339 = re.compile(
            r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:([Zz])|([+-])(\d\d):(\d\d))?$"
        )
    match = _RFC3339.match(str(value).strip())
    if match is None:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = (match.group(7) or "0")[:3].ljust(3, "0")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if match.group(9):
        offset = int(match.group(10)) * 3600 + int(match.group(11)) * 60
        seconds -= offset if match.group(9) == "+" else -offset
    return seconds * 1000 + int(fraction)


def duration_to_json(ms: int) -> str:
    """Milliseconds as a protobuf ``Duration`` in JSON (``1.234s``)."""
    seconds, millis = divmod(int(ms), 1000)
    return f"{seconds}.{millis:03d}s"


def duration_from_json(value: Any) -> Optional[int]:
    """A protobuf ``Duration`` in JSON (``"1.5s"``), or a number of milliseconds, as milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    try:
        return round(float(text[:-1]) * 1000) if text.endswith("s") else int(text)
    except ValueError:
        return None
