"""MLflow's documented examples, written with ``import mlflow`` as the docs write them. The tests run
each one twice against the same MLflow server: with MLflow's own SDK, and with only the import
changed to ``import mlflow_otel as mlflow`` (``as_mlflow_otel``)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def as_mlflow_otel(source: str) -> str:
    """The same program with only the imports changed (``mlflow`` -> ``mlflow_otel as mlflow``)."""
    changed = source.replace("\nimport mlflow\n", "\nimport mlflow_otel as mlflow\n", 1)
    changed = changed.replace("from mlflow.entities import", "from mlflow_otel.entities import")
    assert changed != source
    return changed
