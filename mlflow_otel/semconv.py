"""Attribute keys on the wire, by convention (docs/architecture.md).

The ``mlflow.*`` keys are the ones MLflow's own SDK writes and an MLflow tracking server ingests from
OTLP (``mlflow/tracing/constant.py`` in MLflow: ``SpanAttributeKey``, ``TraceTagKey``,
``TraceMetadataKey``). ``session.id`` / ``user.id`` are OTel semantic-convention keys that Phoenix and
most vendors also render.
"""

from __future__ import annotations

SPAN_TYPE = "mlflow.spanType"  # plain string, so MLflow's ``span.type`` filter matches
LOG_LEVEL = "mlflow.spanLogLevel"  # an int (MLflow 3.18's SpanLogLevel), the UI's verbosity filter
SPAN_DESCRIPTION = "mlflow.spanDescription"
SPAN_INPUTS = "mlflow.spanInputs"  # JSON, encoded exactly once
SPAN_OUTPUTS = "mlflow.spanOutputs"  # JSON, encoded exactly once
INTERMEDIATE_OUTPUTS = "mlflow.trace.intermediate_outputs"  # log_trace(intermediate_outputs=), on the root
FUNCTION_NAME = "mlflow.spanFunctionName"
TRACE_REQUEST_ID = "mlflow.traceRequestId"
CHAT_TOKEN_USAGE = "mlflow.chat.tokenUsage"
CHAT_TOOLS = "mlflow.chat.tools"
LLM_MODEL = "mlflow.llm.model"
LLM_PROVIDER = "mlflow.llm.provider"
MESSAGE_FORMAT = "mlflow.message.format"

#: Trace tags and metadata travel on the local root span, one attribute per key.
TRACE_TAG_PREFIX = "mlflow.traceTag."
TRACE_METADATA_PREFIX = "mlflow.traceMetadata."
CLIENT_REQUEST_ID = "mlflow.trace.clientRequestId"
REQUEST_PREVIEW = "mlflow.trace.requestPreview"
RESPONSE_PREVIEW = "mlflow.trace.responsePreview"
#: ``update_current_trace(state=...)``: the trace's state as the user set it (OK or ERROR).
TRACE_STATE = "mlflow.trace.state"
#: Trace metadata keys MLflow reserves (``TraceMetadataKey`` in MLflow's ``tracing/constant.py``).
SOURCE_RUN = "mlflow.sourceRun"
MODEL_ID = "mlflow.modelId"
#: The trace tag MLflow sets to the root span's name (``TraceTagKey.TRACE_NAME``).
TRACE_NAME = "mlflow.traceName"

#: MLflow's reserved tag/metadata keys for sessions and users, mapped to the semconv keys below.
MLFLOW_SESSION_KEY = "mlflow.trace.session"
MLFLOW_USER_KEY = "mlflow.trace.user"
SESSION_ID = "session.id"
USER_ID = "user.id"

#: Keys whose values we always JSON-encode; read back decoded by ``LiveSpan.attributes``.
JSON_KEYS = frozenset({SPAN_INPUTS, SPAN_OUTPUTS, CHAT_TOKEN_USAGE, CHAT_TOOLS})

#: Streaming chunks, recorded as span events like MLflow's ``STREAM_CHUNK_EVENT_*`` constants.
CHUNK_EVENT_NAME_FORMAT = "mlflow.chunk.item.{index}"
CHUNK_EVENT_VALUE_KEY = "mlflow.chunk.value"

# --- Content other instrumentations record, by convention: normalization maps the first three
# groups to MLflow's keys and then drops them (content travels once); the content switch drops
# every group. One definition, so the two cannot drift apart.
#: OpenInference (mapped to inputs, outputs and tools).
OPENINFERENCE_CONTENT_KEYS = frozenset({"input.value", "output.value", "llm.prompts"})
OPENINFERENCE_CONTENT_PREFIXES = (
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts.",
    "llm.tools.",
    "retrieval.documents.",
)
#: OpenTelemetry GenAI, current and older attribute forms (mapped to inputs, outputs and tools).
GEN_AI_CONTENT_KEYS = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "gen_ai.prompt",
        "gen_ai.completion",
        "gen_ai.retrieval.query.text",
        "gen_ai.retrieval.documents",
    }
)
GEN_AI_CONTENT_PREFIXES = ("gen_ai.prompt.", "gen_ai.completion.")
#: Span events that carry GenAI content (gen-ai-events.md, and older per-message events).
GEN_AI_CONTENT_EVENTS = frozenset(
    {
        "gen_ai.client.inference.operation.details",
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
        "gen_ai.choice",
    }
)
#: OpenLLMetry's own keys beside the GenAI ones (mapped to inputs, outputs and tools).
OPENLLMETRY_CONTENT_KEYS = frozenset({"traceloop.entity.input", "traceloop.entity.output"})
OPENLLMETRY_CONTENT_PREFIXES = ("llm.request.functions.",)
#: Content no mapping reads (kept as recorded unless content capture is off).
UNMAPPED_CONTENT_KEYS = frozenset({"tool.parameters", INTERMEDIATE_OUTPUTS})
UNMAPPED_CONTENT_PREFIXES = ("reranker.", "embedding.embeddings.", "embedding.text")

#: Instrumentation scope of every span this SDK builds.
SCOPE_NAME = "mlflow_otel"
