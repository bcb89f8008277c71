"""Building spans on the application's thread: the fluent API, live spans, the tracer, sampling and
the registry of open traces.

Internal: the public names are re-exported by ``mlflow_otel`` and ``mlflow_otel.entities``.
"""
