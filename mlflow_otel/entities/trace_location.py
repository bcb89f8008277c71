"""``mlflow.entities.trace_location``: where a trace is filed."""

from mlflow_otel.destinations import MlflowExperiment, MlflowExperimentLocation

__all__ = ["MlflowExperiment", "MlflowExperimentLocation"]
