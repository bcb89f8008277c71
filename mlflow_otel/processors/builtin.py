"""The built-in processors, in their stated order: content switch -> redaction -> trimming.

Built from settings (``MLFLOW_OTEL_*``) with ``tracing.configure(...)`` arguments on top. A policy
that cannot be read is one clear warning, and the other processors still run (the default secret
patterns included): a typo in a policy file must not turn redaction off silently.
"""

from __future__ import annotations

from typing import Any

from mlflow_otel._log import logger
from mlflow_otel._settings import load_processor_settings
from mlflow_otel.processors import Processor
from mlflow_otel.processors.content import ContentFilter
from mlflow_otel.processors.redaction import DefaultRedactor, RedactionConfigError, Redactor, load_policy
from mlflow_otel.processors.trimming import Trimmer


def build_builtins(overrides: dict[str, Any]) -> tuple[tuple[Processor, ...], bool]:
    """The built-in processors and whether content is captured."""
    settings = load_processor_settings()
    capture = overrides.get("capture_content", settings.capture_content)
    processors: list[Processor] = []
    if not capture:
        processors.append(ContentFilter())
    if overrides.get("redaction_defaults", settings.redaction_defaults):
        processors.append(DefaultRedactor())
    source = overrides.get("redaction", settings.redaction_config)
    try:
        policy = load_policy(source)
    except (OSError, ValueError, RedactionConfigError) as exc:
        logger.warning("Redaction policy %r not loaded (%s); only the default patterns apply.", source, exc)
        policy = None
    if policy is not None:
        processors.append(Redactor(policy))
    processors.append(
        Trimmer(
            overrides.get("max_attribute_bytes", settings.max_attribute_bytes),
            overrides.get("max_span_bytes", settings.max_span_bytes),
        )
    )
    return tuple(processors), bool(capture)
