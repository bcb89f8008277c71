"""Finished traces: MLflow's read-side entities (``model.py``) and how a trace's record is built
from its OTel spans (``from_spans.py``). Internal: the entities are public through
``mlflow_otel.entities``."""
