"""``mlflow.entities.experiment``: what ``MlflowClient().get_experiment_by_name`` returns."""

from mlflow_otel._mlflow_server import Experiment

__all__ = ["Experiment"]
