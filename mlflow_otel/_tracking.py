"""``set_tracking_uri`` / ``set_experiment``: an MLflow server as a destination, without mlflow.

As in MLflow, these are setup calls. ``set_experiment`` looks the experiment up (creating it if
needed) over MLflow's REST API right away; if the server is unreachable it warns and the lookup is
retried by the export thread, so an app never fails to start because its tracking server is down.
"""

from __future__ import annotations

from typing import Any, Optional

from mlflow_otel import _mlflow_server, _runtime
from mlflow_otel._log import logger, masked_url, warn_limited
from mlflow_otel._mlflow_server import Experiment
from mlflow_otel._settings import check_tracking_uri
from mlflow_otel._state import STATE

__all__ = ["get_tracking_uri", "set_experiment", "set_tracking_uri"]


def _experiment(experiment_id: Optional[str], name: Optional[str]) -> Experiment:
    """MLflow's entity (``mlflow.entities.Experiment``, as ``mlflow.set_experiment`` returns it);
    ``experiment_id`` is None until the server could resolve the name."""
    return Experiment(experiment_id, name, None, "active")  # type: ignore[arg-type]


def set_tracking_uri(uri: str) -> None:
    """Send traces to the MLflow server at ``uri`` (http/https) over OTLP/HTTP at ``{uri}/v1/traces``.

    A URI that cannot reach a server (``https://:5000``: no host) is refused with one warning
    saying how to write it; the destination stays what it was."""
    checked = check_tracking_uri(str(uri), "set_tracking_uri")
    if checked is not None:
        _override(tracking_uri=checked)


def get_tracking_uri() -> Optional[str]:
    return STATE.settings().tracking_uri


def set_experiment(
    experiment_name: Optional[str] = None, experiment_id: Optional[str] = None, trace_location: Any = None
) -> Experiment:
    """File traces under an experiment of the tracking server, by name (created if missing) or id.
    ``trace_location`` (MLflow's Unity Catalog location, Databricks only) is accepted and ignored."""
    if trace_location is not None:
        logger.warning("set_experiment(trace_location=...) is Databricks-only; ignored.")
    if experiment_id is not None:
        _override(experiment_id=str(experiment_id), experiment_name=experiment_name)
        return _experiment(str(experiment_id), experiment_name)
    if not experiment_name:
        logger.warning("set_experiment() needs experiment_name or experiment_id; ignored.")
        settings = STATE.settings()
        return _experiment(settings.experiment_id, settings.experiment_name)
    uri = get_tracking_uri()
    resolved: Optional[str] = None
    if not uri:
        settings = STATE.settings()
        where = (
            f"the OTLP endpoint {masked_url(settings.otlp.endpoint)}"
            if settings.otlp is not None
            else f"the local file {settings.traces_file}"
        )
        warn_limited(
            "set_experiment",
            "set_experiment(%r): no tracking URI is set (set_tracking_uri or MLFLOW_TRACKING_URI), so "
            "traces go to %s; the experiment applies once a tracking URI is set.",
            experiment_name,
            where,
        )
    if _mlflow_server.is_http_uri(uri):
        try:
            resolved = _mlflow_server.get_or_create_experiment(uri, experiment_name)  # type: ignore[arg-type]
        except _mlflow_server.MlflowServerError as exc:
            logger.warning("%s; the export thread will retry.", exc)
    _override(experiment_name=experiment_name, experiment_id=resolved)
    return _experiment(resolved, experiment_name)


def _override(**values: object) -> None:
    """Settings made in code beat the environment; the running pipeline is replaced."""
    _runtime.replace(lambda: STATE.override(**values))
