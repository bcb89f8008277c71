"""Auto-tracing integrations, one package per library, each on ``base.Integration``.

Internal: users call ``mlflow_otel.<library>.autolog()``.
"""
