"""``mlflow_otel.tracing.constant``: the public keys of MLflow's ``mlflow.tracing.constant``.

The values are MLflow's (checked against mlflow-tracing 3.17.2 and mlflow 3.18.0), so code that
reads spans or trace records with these names finds the same keys here. Only the keys that concern
traces this SDK writes or reads are listed; see docs/mlflow-compatibility.md.
"""

from __future__ import annotations

from mlflow_otel import semconv as conv

__all__ = [
    "STREAM_CHUNK_EVENT_NAME_FORMAT",
    "STREAM_CHUNK_EVENT_VALUE_KEY",
    "TRACE_REQUEST_ID_PREFIX",
    "SpanAttributeKey",
    "TokenUsageKey",
    "TraceMetadataKey",
    "TraceTagKey",
]

TRACE_REQUEST_ID_PREFIX = "tr-"
STREAM_CHUNK_EVENT_NAME_FORMAT = conv.CHUNK_EVENT_NAME_FORMAT
STREAM_CHUNK_EVENT_VALUE_KEY = conv.CHUNK_EVENT_VALUE_KEY


class SpanAttributeKey:
    """Span attribute keys."""

    EXPERIMENT_ID = "mlflow.experimentId"
    REQUEST_ID = conv.TRACE_REQUEST_ID
    INPUTS = conv.SPAN_INPUTS
    OUTPUTS = conv.SPAN_OUTPUTS
    SPAN_TYPE = conv.SPAN_TYPE
    LOG_LEVEL = conv.LOG_LEVEL
    FUNCTION_NAME = conv.FUNCTION_NAME
    DESCRIPTION = conv.SPAN_DESCRIPTION
    START_TIME_NS = "mlflow.spanStartTimeNs"
    CHAT_TOOLS = conv.CHAT_TOOLS
    CHAT_USAGE = conv.CHAT_TOKEN_USAGE
    LLM_COST = "mlflow.llm.cost"
    MODEL = conv.LLM_MODEL
    MODEL_PROVIDER = conv.LLM_PROVIDER
    MESSAGE_FORMAT = conv.MESSAGE_FORMAT
    INTERMEDIATE_OUTPUTS = "mlflow.trace.intermediate_outputs"
    LINKED_PROMPTS = "mlflow.linkedPrompts"
    USER_ID = conv.USER_ID
    SESSION_ID = conv.SESSION_ID
    TRACE_TAG_PREFIX = conv.TRACE_TAG_PREFIX


class TraceMetadataKey:
    """Trace metadata keys (in a trace record's ``trace_metadata``)."""

    INPUTS = "mlflow.traceInputs"
    OUTPUTS = "mlflow.traceOutputs"
    SOURCE_RUN = conv.SOURCE_RUN
    MODEL_ID = conv.MODEL_ID
    SIZE_STATS = "mlflow.trace.sizeStats"
    TOKEN_USAGE = "mlflow.trace.tokenUsage"
    TRACE_USER = conv.MLFLOW_USER_KEY
    TRACE_SESSION = conv.MLFLOW_SESSION_KEY
    SIZE_BYTES = "mlflow.trace.sizeBytes"


class TraceTagKey:
    """Trace tag keys (in a trace record's ``tags``)."""

    TRACE_NAME = conv.TRACE_NAME
    EVAL_REQUEST_ID = "mlflow.eval.requestId"
    SPANS_LOCATION = "mlflow.trace.spansLocation"


class TokenUsageKey:
    """Keys of ``mlflow.chat.tokenUsage`` and of a trace's token usage."""

    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"
    TOTAL_TOKENS = "total_tokens"
    CACHE_READ_INPUT_TOKENS = "cache_read_input_tokens"
    CACHE_CREATION_INPUT_TOKENS = "cache_creation_input_tokens"
