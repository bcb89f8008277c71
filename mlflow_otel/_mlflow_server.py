"""Talking to an MLflow tracking server without importing mlflow: experiment lookup over REST.

Uses MLflow's stable REST API (``/api/2.0/mlflow/experiments/get-by-name`` and ``/create``), so the
SDK stays free of MLflow's dependency tree. Called from setup code (``set_experiment``), never on the
request path.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

#: The header an MLflow server reads to file OTLP spans under an experiment.
EXPERIMENT_ID_HEADER = "x-mlflow-experiment-id"
DEFAULT_EXPERIMENT_ID = "0"


class MlflowServerError(RuntimeError):
    """The tracking server could not be reached or refused the request."""


def is_http_uri(uri: Optional[str]) -> bool:
    return bool(uri) and urllib.parse.urlparse(uri).scheme in ("http", "https")  # type: ignore[arg-type]


def traces_endpoint(tracking_uri: str) -> str:
    return tracking_uri.rstrip("/") + "/v1/traces"


def _call(url: str, data: Optional[dict[str, Any]] = None, timeout: float = 10.0) -> dict[str, Any]:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def get_or_create_experiment(tracking_uri: str, name: str, timeout: float = 10.0) -> str:
    """The id of experiment ``name``, created if it does not exist (as ``mlflow.set_experiment``)."""
    base = tracking_uri.rstrip("/") + "/api/2.0/mlflow/experiments"
    query = urllib.parse.urlencode({"experiment_name": name})
    for _ in range(2):  # a concurrent creator may win the race: look up again
        try:
            return str(_call(f"{base}/get-by-name?{query}", timeout=timeout)["experiment"]["experiment_id"])
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise MlflowServerError(
                    f"{tracking_uri}: looking up experiment {name!r} failed: HTTP {exc.code}"
                ) from exc
        except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
            raise MlflowServerError(f"{tracking_uri}: looking up experiment {name!r} failed: {exc}") from exc
        try:
            return str(_call(f"{base}/create", {"name": name}, timeout=timeout)["experiment_id"])
        except urllib.error.HTTPError as exc:
            if exc.code not in (400, 409):  # RESOURCE_ALREADY_EXISTS: created meanwhile
                raise MlflowServerError(
                    f"{tracking_uri}: creating experiment {name!r} failed: HTTP {exc.code}"
                ) from exc
        except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
            raise MlflowServerError(f"{tracking_uri}: creating experiment {name!r} failed: {exc}") from exc
    raise MlflowServerError(f"{tracking_uri}: could not get or create experiment {name!r}")
