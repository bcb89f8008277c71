"""Normalization: every GenAI span leaves in MLflow's span model, and ours in the others' too.

Third-party spans (the instrumentors ``autolog()`` binds, other instrumentations in joined mode)
describe a model call in their own convention: OpenInference (``openinference.span.kind``,
``input.value``, ``llm.token_count.*``), the OpenTelemetry GenAI semantic conventions
(``gen_ai.operation.name``, ``gen_ai.input.messages``, ``gen_ai.usage.*``, content in log events or
through the completion hook, ``integrations/genai_content.py``) or OpenLLMetry (``traceloop.*``,
``gen_ai.prompt.N.*``, ``llm.request.type``). MLflow's UI, its ``span.type`` filter, trace token
totals and previews read MLflow's keys (``semconv.py``), and only an MLflow 3.18 server translates
some conventions on ingest. This processor writes them, on the process worker, before the content
switch, redaction and trimming (so those apply to what it writes exactly as to our spans):
``mlflow.spanType``, ``mlflow.spanInputs`` / ``mlflow.spanOutputs``, ``mlflow.chat.tokenUsage``,
``mlflow.llm.model`` / ``mlflow.llm.provider``, ``mlflow.chat.tools``, ``mlflow.message.format``.
The full table is ``README.md`` beside this file.

Content travels once: after mapping, a third-party span's own content attributes are kept only
when their convention is asked for (``openinference`` in ``MLFLOW_OTEL_SEMCONV``; GenAI messages with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``), the rule our OpenAI integration follows.

The other way (``MLFLOW_OTEL_SEMCONV``): our own model, tool and agent spans get the GenAI keys
(``gen_ai.operation.name``, model, provider, ``gen_ai.usage.*``) and, with ``openinference``, the
OpenInference ones (kind, ``input.value`` / ``output.value``, ``llm.token_count.*``), so Jaeger,
Tempo, Phoenix and vendors render them.

Tokens are never counted twice: a third-party span whose descendant reported usage (a LangChain
chat model over an Anthropic call, DSPy's LM over LiteLLM) loses its own usage keys in every
convention, and an LLM / CHAT_MODEL one becomes CHAIN (``mlflow_otel.demoted_from`` says what it
was). Descendants reach this processor first: the process stage runs spans in the order they end,
and the pipeline head holds an autolog integration's spans with their trace
(``spans/adopt.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from mlflow_otel import semconv as conv
from mlflow_otel._serialize import dumps
from mlflow_otel._state import STATE
from mlflow_otel.otlp.protobuf import plain_span_class
from mlflow_otel.processors.base import SpanView
from mlflow_otel.processors.normalization.outward import (
    GEN_AI_OPERATION,
    OPENINFERENCE_KIND,
    OUTWARD_OPERATIONS,
    outward_attributes,
    trace_levels,
)
from mlflow_otel.spans.types import SpanType

TRACELOOP_KIND = "traceloop.span.kind"
LLM_REQUEST_TYPE = "llm.request.type"
DEMOTED_FROM = "mlflow_otel.demoted_from"
_NONE: dict[str, Any] = {}

#: OpenInference span kinds (openinference-semantic-conventions, ``OpenInferenceSpanKindValues``).
OPENINFERENCE_TYPES = {
    "LLM": SpanType.LLM,
    "CHAIN": SpanType.CHAIN,
    "TOOL": SpanType.TOOL,
    "RETRIEVER": SpanType.RETRIEVER,
    "EMBEDDING": SpanType.EMBEDDING,
    "AGENT": SpanType.AGENT,
    "RERANKER": SpanType.RERANKER,
    "GUARDRAIL": SpanType.GUARDRAIL,
    "EVALUATOR": SpanType.EVALUATOR,
    "PROMPT": SpanType.CHAIN,
    "UNKNOWN": SpanType.UNKNOWN,
}
#: GenAI ``gen_ai.operation.name`` values (semantic conventions, gen-ai-spans.md).
GEN_AI_TYPES = {
    "chat": SpanType.CHAT_MODEL,
    "generate_content": SpanType.CHAT_MODEL,
    "text_completion": SpanType.LLM,
    "embeddings": SpanType.EMBEDDING,
    "execute_tool": SpanType.TOOL,
    "invoke_agent": SpanType.AGENT,
    "create_agent": SpanType.AGENT,
    "retrieval": SpanType.RETRIEVER,
    "invoke_workflow": SpanType.WORKFLOW,
}
#: OpenLLMetry ``traceloop.span.kind`` and ``llm.request.type`` values.
OPENLLMETRY_TYPES = {
    "workflow": SpanType.WORKFLOW,
    "task": SpanType.TASK,
    "agent": SpanType.AGENT,
    "tool": SpanType.TOOL,
    "chat": SpanType.CHAT_MODEL,
    "completion": SpanType.LLM,
    "embedding": SpanType.EMBEDDING,
    "rerank": SpanType.RERANKER,
}
#: Instrumentation scopes of provider clients whose inputs are the client's own request shape,
#: and MLflow's message format for it (what MLflow's own autolog sets: ``mlflow/<flavor>/``).
MESSAGE_FORMATS = {
    "openinference.instrumentation.anthropic": "anthropic",
    "openinference.instrumentation.groq": "groq",
    "openinference.instrumentation.mistralai": "mistral",
    "openinference.instrumentation.google_genai": "gemini",
    "openinference.instrumentation.bedrock": "bedrock",
    "openinference.instrumentation.litellm": "openai",
}
MODEL_TYPES = frozenset({SpanType.LLM, SpanType.CHAT_MODEL})
#: Usage keys of every convention (a demoted span loses all of them: an MLflow server would
#: otherwise derive usage again from the ones left, mlflow/tracing/otel/translation).
USAGE_PREFIXES = ("llm.token_count.", "gen_ai.usage.", "llm.usage.")
#: How many "usage below" marks are kept (parents not yet seen); the oldest go first.
PENDING_LIMIT = 16384


def _json_value(value: Any) -> Any:
    """A JSON-carrying attribute decoded; anything else as it is."""
    if isinstance(value, str) and value[:1] in ("{", "[", '"'):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip().strip('"'))
        except ValueError:
            return None
    return None


def _usage(
    raw: Mapping[str, Any],
    prompt: tuple[str, ...],
    completion: tuple[str, ...],
    total: tuple[str, ...],
    cache_read: tuple[str, ...],
    cache_write: tuple[str, ...],
) -> Optional[dict[str, int]]:
    def first(keys: tuple[str, ...]) -> Optional[int]:
        for key in keys:
            value = _int(raw.get(key))
            if value is not None:
                return value
        return None

    tokens_in, tokens_out, tokens_total = first(prompt), first(completion), first(total)
    if tokens_in is None and tokens_out is None and tokens_total is None:
        return None
    usage: dict[str, int] = {}
    if tokens_in is not None:
        usage["input_tokens"] = tokens_in
    if tokens_out is not None:
        usage["output_tokens"] = tokens_out
    if tokens_total is None and tokens_in is not None and tokens_out is not None:
        tokens_total = tokens_in + tokens_out
    if tokens_total is not None:
        usage["total_tokens"] = tokens_total
    for name, keys in (("cache_read_input_tokens", cache_read), ("cache_creation_input_tokens", cache_write)):
        value = first(keys)
        if value:
            usage[name] = value
    return usage


def _numbered(raw: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """OpenInference / OpenLLMetry flattened lists (``prefix.<i>.<path>``) back as a list of dicts."""
    items: dict[int, dict[str, Any]] = {}
    cut = len(prefix)
    for key, value in raw.items():
        if not key.startswith(prefix):
            continue
        index, _, path = key[cut:].partition(".")
        if not index.isdigit() or not path:
            continue
        items.setdefault(int(index), {})[path] = value
    return [items[i] for i in sorted(items)]


def _documents(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """OpenInference ``retrieval.documents.<i>.document.*`` as MLflow's ``Document`` list
    (``page_content``, ``metadata``, ``id``: what MLflow's UI renders for a RETRIEVER span)."""
    out = []
    for item in _numbered(raw, "retrieval.documents."):
        document: dict[str, Any] = {"page_content": item.get("document.content", "")}
        metadata = _json_value(item.get("document.metadata"))
        document["metadata"] = metadata if isinstance(metadata, Mapping) else {}
        if "document.score" in item:
            document["metadata"] = {**document["metadata"], "score": item["document.score"]}
        if "document.id" in item:
            document["id"] = item["document.id"]
        out.append(document)
    return out


def _payload(raw: Mapping[str, Any], key: str, mime_key: str) -> Optional[str]:
    """OpenInference ``input.value`` / ``output.value`` as MLflow's JSON payload."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        if raw.get(mime_key) == "application/json":
            return value
        return dumps(value, STATE.capture_limit)
    return dumps(value, STATE.capture_limit)


class Normalizer:
    """The built-in normalization processor (see the module docstring and ``README.md``)."""

    def __init__(
        self, semconv: Optional[frozenset[str]] = None, capture_messages: Optional[bool] = None
    ) -> None:
        genai = STATE.settings().genai
        self.semconv = genai.semconv if semconv is None else semconv
        self.capture_messages = genai.capture_messages if capture_messages is None else capture_messages
        self.gen_ai_out = "gen_ai" in self.semconv
        self.openinference_out = "openinference" in self.semconv
        #: Span ids (hex) of spans a descendant of which reported token usage, not yet processed.
        self._usage_below: dict[str, bool] = {}
        #: The trace being processed: its root's trace-level keys (``screen`` sets it, once per trace).
        self._trace_attrs: dict[str, dict[str, Any]] = {}

    def __call__(self, span: SpanView) -> None:
        raw = span.raw_attributes
        ours = conv.SPAN_TYPE in raw
        if ours:
            if self.openinference_out or (self.gen_ai_out and raw[conv.SPAN_TYPE] in OUTWARD_OPERATIONS):
                self._outward(span, raw)
        elif OPENINFERENCE_KIND in raw:
            # One copy into a plain dict (the SDK's attribute mapping is slow to walk), read and
            # written from then on.
            self._openinference(span, span.writable_attributes())
        elif GEN_AI_OPERATION in raw or TRACELOOP_KIND in raw or LLM_REQUEST_TYPE in raw:
            self._gen_ai(span, span.writable_attributes())
        self._count_usage_once(span, third_party=not ours)

    def screen(self, spans: Sequence[Any]) -> bool:
        """True when this processor would change none of one trace's spans (``processors/base.py``):
        each is ours (typed), not mapped outward (no OpenInference out; no GenAI operation for its
        type), without token usage, and no usage is waiting for a parent. Then ``__call__`` would
        only find nothing to count."""
        if self.openinference_out:  # OpenInference maps every span of ours, with the trace's keys
            self._trace_attrs = trace_levels(spans)
            return False
        if self._usage_below:
            return False
        for span in spans:
            raw = (span._attributes or _NONE) if plain_span_class(span.__class__) else span.attributes
            span_type = raw.get(conv.SPAN_TYPE)
            if span_type is None or conv.CHAT_TOKEN_USAGE in raw:
                return False
            if self.gen_ai_out and span_type in OUTWARD_OPERATIONS:
                return False
        return True

    # --- third-party conventions -> MLflow --------------------------------------------------------------
    def _openinference(self, span: SpanView, raw: dict[str, Any]) -> None:
        kind = str(raw.get(OPENINFERENCE_KIND) or "UNKNOWN").upper()
        span_type = OPENINFERENCE_TYPES.get(kind, SpanType.UNKNOWN)
        chat = any(key.startswith("llm.input_messages.") for key in raw)
        if span_type == SpanType.LLM and chat:
            span_type = SpanType.CHAT_MODEL
        out: dict[str, Any] = {conv.SPAN_TYPE: span_type}
        if STATE.capture_content:
            inputs = _payload(raw, "input.value", "input.mime_type")
            outputs = _payload(raw, "output.value", "output.mime_type")
            if span_type == SpanType.RETRIEVER:
                documents = _documents(raw)
                if documents:
                    outputs = dumps(documents, STATE.capture_limit)
            if inputs is not None:
                out[conv.SPAN_INPUTS] = inputs
            if outputs is not None:
                out[conv.SPAN_OUTPUTS] = outputs
        usage = _usage(
            raw,
            ("llm.token_count.prompt",),
            ("llm.token_count.completion",),
            ("llm.token_count.total",),
            ("llm.token_count.prompt_details.cache_read",),
            ("llm.token_count.prompt_details.cache_write",),
        )
        if usage is not None:
            out[conv.CHAT_TOKEN_USAGE] = json.dumps(usage)
        model = (
            raw.get("llm.response.model_name")
            or raw.get("llm.model_name")
            or raw.get("llm.request.model_name")
            or raw.get("embedding.model_name")
        )
        if model:
            out[conv.LLM_MODEL] = str(model)
        provider = raw.get("llm.provider") or raw.get("llm.system")
        if provider:
            out[conv.LLM_PROVIDER] = str(provider)
        tools = [_json_value(t.get("tool.json_schema")) for t in _numbered(raw, "llm.tools.")]
        tools = [t for t in tools if t is not None]
        if tools:
            out[conv.CHAT_TOOLS] = dumps(tools, STATE.capture_limit)
        if span_type in MODEL_TYPES:
            scope = span.instrumentation_scope
            message_format = MESSAGE_FORMATS.get(scope.name) if scope is not None else None
            if message_format:
                out[conv.MESSAGE_FORMAT] = message_format
        attrs = raw
        if not self.openinference_out:
            for key in [
                k
                for k in attrs
                if k in conv.OPENINFERENCE_CONTENT_KEYS or k.startswith(conv.OPENINFERENCE_CONTENT_PREFIXES)
            ]:
                del attrs[key]
            attrs.pop("input.mime_type", None)
            attrs.pop("output.mime_type", None)
        attrs.update(out)

    def _gen_ai(self, span: SpanView, raw: dict[str, Any]) -> None:
        operation = raw.get(GEN_AI_OPERATION)
        span_type = GEN_AI_TYPES.get(str(operation)) if operation is not None else None
        if span_type is None:
            kind = raw.get(TRACELOOP_KIND) or raw.get(LLM_REQUEST_TYPE)
            span_type = (
                OPENLLMETRY_TYPES.get(str(kind).lower(), SpanType.UNKNOWN) if kind else SpanType.UNKNOWN
            )
        out: dict[str, Any] = {conv.SPAN_TYPE: span_type}
        events = span.events
        content_events = [e for e in events if e.name in conv.GEN_AI_CONTENT_EVENTS] if events else []
        if STATE.capture_content:
            inputs, outputs = self._gen_ai_content(raw, content_events)
            if inputs is not None:
                out[conv.SPAN_INPUTS] = dumps(inputs, STATE.capture_limit)
            if outputs is not None:
                out[conv.SPAN_OUTPUTS] = dumps(outputs, STATE.capture_limit)
        usage = _usage(
            raw,
            ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
            ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
            ("gen_ai.usage.total_tokens", "llm.usage.total_tokens"),
            ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"),
            (
                "gen_ai.usage.cache_creation.input_tokens",
                "gen_ai.usage.cache_write.input_tokens",
                "gen_ai.usage.cache_creation_input_tokens",
            ),
        )
        if usage is not None:
            out[conv.CHAT_TOKEN_USAGE] = json.dumps(usage)
        model = raw.get("gen_ai.response.model") or raw.get("gen_ai.request.model")
        if model:
            out[conv.LLM_MODEL] = str(model)
        provider = raw.get("gen_ai.provider.name") or raw.get("gen_ai.system")
        if provider:
            out[conv.LLM_PROVIDER] = str(provider)
        tools = _json_value(raw.get("gen_ai.tool.definitions"))
        if not tools:
            tools = [
                {k: _json_value(v) for k, v in item.items()}
                for item in _numbered(raw, "llm.request.functions.")
            ]
        if tools:
            out[conv.CHAT_TOOLS] = dumps(tools, STATE.capture_limit)
        attrs = raw
        # OpenLLMetry's own content keys are not GenAI's outward form: mapped, they always go.
        for key in [
            k
            for k in attrs
            if k in conv.OPENLLMETRY_CONTENT_KEYS or k.startswith(conv.OPENLLMETRY_CONTENT_PREFIXES)
        ]:
            del attrs[key]
        if not (self.gen_ai_out and self.capture_messages):
            for key in [
                k
                for k in attrs
                if k in conv.GEN_AI_CONTENT_KEYS or k.startswith(conv.GEN_AI_CONTENT_PREFIXES)
            ]:
                del attrs[key]
            if content_events:
                span.set_events([e for e in events if e.name not in conv.GEN_AI_CONTENT_EVENTS])
        attrs.update(out)

    @staticmethod
    def _gen_ai_content(raw: Mapping[str, Any], events: list[Any]) -> tuple[Any, Any]:
        """Inputs and outputs from GenAI attributes, content events, or OpenLLMetry's keys."""
        found: dict[str, Any] = {}
        for key in ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"):
            if key in raw:
                found[key] = _json_value(raw[key])
        asked: list[dict[str, Any]] = []
        answered: list[dict[str, Any]] = []
        for event in events:
            attributes = event.attributes or {}
            if event.name == "gen_ai.client.inference.operation.details":
                for key in ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"):
                    if key in attributes and key not in found:
                        found[key] = _json_value(attributes[key])
                continue
            body = _json_value(attributes.get("body"))
            if event.name == "gen_ai.choice":
                message = body.get("message", body) if isinstance(body, Mapping) else {"content": body}
                answered.append({"role": "assistant", **message} if isinstance(message, Mapping) else message)
            else:
                role = event.name[len("gen_ai.") : -len(".message")]
                asked.append(
                    {"role": role, **body} if isinstance(body, Mapping) else {"role": role, "content": body}
                )
        inputs = found.get("gen_ai.input.messages") or asked or None
        system = found.get("gen_ai.system_instructions")
        if inputs is not None and system:
            inputs = [{"role": "system", "parts": system}, *inputs]
        outputs = found.get("gen_ai.output.messages") or answered or None
        if inputs is None:
            prompts = _numbered(raw, "gen_ai.prompt.")
            inputs = [{k: _json_value(v) for k, v in p.items()} for p in prompts] or None
            if inputs is None and "traceloop.entity.input" in raw:
                inputs = _json_value(raw["traceloop.entity.input"])
            if inputs is None and "gen_ai.tool.call.arguments" in raw:
                inputs = _json_value(raw["gen_ai.tool.call.arguments"])
        if outputs is None:
            completions = _numbered(raw, "gen_ai.completion.")
            outputs = [{k: _json_value(v) for k, v in c.items()} for c in completions] or None
            if outputs is None and "traceloop.entity.output" in raw:
                outputs = _json_value(raw["traceloop.entity.output"])
            if outputs is None and "gen_ai.tool.call.result" in raw:
                outputs = _json_value(raw["gen_ai.tool.call.result"])
        return inputs, outputs

    # --- MLflow -> the other conventions (our own spans) -------------------------------------------------
    def _outward(self, span: SpanView, raw: Mapping[str, Any]) -> None:
        trace_attrs = self._trace_attrs.get(span.trace_id) if self._trace_attrs else None
        add = outward_attributes(raw, span.name, self.semconv, self.capture_messages, trace_attrs)
        if add:
            span.writable_attributes().update(add)

    # --- usage counted once ---------------------------------------------------------------------------------
    def _count_usage_once(self, span: SpanView, third_party: bool) -> None:
        has_usage = conv.CHAT_TOKEN_USAGE in span.raw_attributes
        below = self._usage_below
        usage_below = below.pop(span.span_id, False) if below else False
        if has_usage and usage_below and third_party:
            attrs = span.writable_attributes()
            for key in [k for k in attrs if k.startswith(USAGE_PREFIXES)]:
                del attrs[key]
            del attrs[conv.CHAT_TOKEN_USAGE]
            span_type = attrs.get(conv.SPAN_TYPE)
            if span_type in MODEL_TYPES:
                attrs[conv.SPAN_TYPE] = SpanType.CHAIN
                attrs[DEMOTED_FROM] = span_type
                if OPENINFERENCE_KIND in attrs:
                    attrs[OPENINFERENCE_KIND] = "CHAIN"
        if has_usage or usage_below:
            parent = span.parent_id
            if parent is not None:
                below[parent] = True
                if len(below) > PENDING_LIMIT:
                    del below[next(iter(below))]
