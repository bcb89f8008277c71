"""Redaction: the OTel Collector redaction processor's schema and semantics, applied in the SDK.

``config`` reads the policy (the Collector's keys, verbatim), ``processor`` applies one policy to a
span (inside JSON values too), ``defaults`` is the built-in secret policy. See ``README.md``.
"""

from mlflow_otel.processors.redaction.config import RedactionConfigError, RedactionPolicy, load_policy
from mlflow_otel.processors.redaction.defaults import DefaultRedactor
from mlflow_otel.processors.redaction.processor import MASK, Redactor

__all__ = ["MASK", "DefaultRedactor", "RedactionConfigError", "RedactionPolicy", "Redactor", "load_policy"]
