"""The export pipeline's stages, one module each, declared in order by ``build.py``.

Internal: users extend the pipeline through ``mlflow_otel.tracing`` (processors, destinations),
never by importing these modules. docs/architecture.md describes the stages and their threads.
"""
