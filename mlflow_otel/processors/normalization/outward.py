"""MLflow's span model written in the other conventions: OpenInference (what Arize Phoenix reads)
and the OTel GenAI semantic conventions.

One function, :func:`outward_attributes`, used in two places, both off the request path:

* the normalization processor (process worker), for every destination, with the conventions of
  ``MLFLOW_OTEL_SEMCONV`` (the process-wide setting);
* :class:`Conventions` (an OTLP exporter, as it encodes), for one destination,
  with that destination's conventions (``OtlpDestination(semconv=...)``,
  ``MLFLOW_OTEL_OTLP_SEMCONV``), so Phoenix can get OpenInference while an MLflow server gets
  exactly MLflow's keys.

What Phoenix reads is OpenInference's span attributes (openinference ``spec/semantic_conventions.md``):
``openinference.span.kind`` (Phoenix shows ``unknown`` without it), ``input.value`` /
``output.value`` with ``input.mime_type`` / ``output.mime_type`` (``text/plain`` is shown as text,
``application/json`` as JSON: a string sent as JSON shows quoted), ``retrieval.documents.<i>.document.*``
(the documents pane and count), ``llm.*``, ``tool.*``, ``metadata`` (one JSON object), ``tag.tags``
(a list of strings), ``session.id`` / ``user.id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from mlflow_otel import semconv as conv
from mlflow_otel._log import warn_limited
from mlflow_otel._serialize import dumps, loads_or_raw
from mlflow_otel._telemetry import Counters
from mlflow_otel.otlp.ids import mlflow_trace_id
from mlflow_otel.otlp.protobuf import plain_span_class
from mlflow_otel.processors.normalization.openai_extract import REQUEST_CONTENT, Endpoint
from mlflow_otel.processors.normalization.openai_messages import openinference_attributes
from mlflow_otel.spans.types import SpanType

OPENINFERENCE_KIND = "openinference.span.kind"
GEN_AI_OPERATION = "gen_ai.operation.name"
TEXT = "text/plain"
JSON_MIME = "application/json"

#: MLflow's span types -> GenAI ``gen_ai.operation.name`` (gen-ai-spans.md); the other types have
#: no GenAI operation.
OUTWARD_OPERATIONS = {
    SpanType.CHAT_MODEL: "chat",
    SpanType.LLM: "text_completion",
    SpanType.EMBEDDING: "embeddings",
    SpanType.TOOL: "execute_tool",
    SpanType.AGENT: "invoke_agent",
    SpanType.RETRIEVER: "retrieval",
}
#: MLflow's span types -> OpenInference kinds (``OpenInferenceSpanKindValues``). Types OpenInference
#: has no kind for (CHAIN, PARSER, MEMORY, WORKFLOW, TASK, UNKNOWN, a user's own) are CHAIN, the
#: kind OpenInference's own ``@tracer.chain`` and framework instrumentors give a generic step, so
#: Phoenix never shows ``unknown``.
OUTWARD_KINDS = {
    SpanType.CHAT_MODEL: "LLM",
    SpanType.LLM: "LLM",
    SpanType.EMBEDDING: "EMBEDDING",
    SpanType.TOOL: "TOOL",
    SpanType.AGENT: "AGENT",
    SpanType.RETRIEVER: "RETRIEVER",
    SpanType.RERANKER: "RERANKER",
    SpanType.GUARDRAIL: "GUARDRAIL",
    SpanType.EVALUATOR: "EVALUATOR",
}
DEFAULT_KIND = "CHAIN"
MODEL_TYPES = frozenset({SpanType.LLM, SpanType.CHAT_MODEL})
_DOCUMENT_TYPES = frozenset({SpanType.RETRIEVER, SpanType.RERANKER})
_ABSENT = object()
#: MLflow's own trace metadata keys (``mlflow.*``) are MLflow's bookkeeping, not the user's metadata.
_RESERVED = "mlflow."


#: What JSON decodes to besides strings and objects: neither text nor a mapping (no ABC check).
_NOT_TEXT = frozenset({list, int, float, bool, type(None)})


def _payload(encoded: str, decoded: Any) -> tuple[str, str]:
    """An MLflow JSON payload as OpenInference's value and mime type: a string as ``text/plain``
    (Phoenix shows ``"42"`` for a JSON string), and a call's one string argument (``{"question":
    "..."}``) as that text, which is what OpenInference's ``@tracer.chain`` records for a function
    of one argument; anything else as the JSON it is."""
    kind = decoded.__class__
    if kind is str or (kind not in _NOT_TEXT and isinstance(decoded, str)):
        return decoded, TEXT
    if (kind is dict or (kind not in _NOT_TEXT and isinstance(decoded, Mapping))) and len(decoded) == 1:
        (only,) = decoded.values()
        if isinstance(only, str):
            return only, TEXT
    return encoded, JSON_MIME


_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"))


def _parameters(name: str, arguments: Mapping[str, Any]) -> str:
    """OpenInference's ``tool.parameters`` ("the parameters definition for invoking the tool") as the
    JSON Schema object OpenInference's own ``@tracer.tool`` writes (``type``, ``title``,
    ``properties``): the function itself is not at hand off the request path, its arguments' names
    and JSON types are (so no ``required``: which arguments had defaults is not recorded)."""
    properties = {
        arg: {"type": next((t for kind, t in _JSON_TYPES if isinstance(value, kind)), "object")}
        for arg, value in arguments.items()
    }
    return dumps({"type": "object", "title": name, "properties": properties})


def _documents(decoded: Any, out: dict[str, Any]) -> bool:
    """MLflow's ``Document`` list (``page_content``, ``metadata``, ``id``: what a RETRIEVER returns
    in MLflow) as ``retrieval.documents.<i>.document.{id,content,score,metadata}``; False if the
    output is not a document list."""
    if not _is_documents(decoded):
        return False
    for i, document in enumerate(decoded):
        base = f"retrieval.documents.{i}.document."
        out[base + "content"] = str(document.get("page_content") or "")
        if document.get("id") is not None:
            out[base + "id"] = str(document["id"])
        metadata = document.get("metadata")
        if isinstance(metadata, Mapping) and metadata:
            score = metadata.get("score")
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                out[base + "score"] = float(score)
            out[base + "metadata"] = dumps(dict(metadata))
    return True


def _messages(span_type: str, inputs: Any, outputs: Any, out: dict[str, Any]) -> None:
    """``llm.input_messages.*`` / ``llm.output_messages.*`` / ``llm.tools.*`` from an OpenAI-shaped
    request and response (what MLflow's and our OpenAI autolog record as inputs and outputs)."""
    if not isinstance(inputs, Mapping):
        return
    kind = "chat" if "messages" in inputs else "responses" if "input" in inputs else None
    if kind is None and "prompt" in inputs:
        kind = "completions"
    if kind is None:
        return
    endpoint = Endpoint(kind, "", span_type, None)
    attrs = openinference_attributes(
        endpoint, inputs, outputs if isinstance(outputs, Mapping) else None, None, None
    )
    out.update(attrs)
    params = {k: v for k, v in inputs.items() if k not in REQUEST_CONTENT}
    if params:
        out["llm.invocation_parameters"] = dumps(params)


def _is_documents(decoded: Any) -> bool:
    """MLflow's ``Document`` list (``page_content``, ``metadata``, ``id``: what a RETRIEVER returns)."""
    return (
        bool(decoded)
        and isinstance(decoded, list)
        and all(isinstance(d, Mapping) and "page_content" in d for d in decoded)
    )


def _genai_documents(documents: list[Mapping[str, Any]]) -> str:
    """GenAI's ``gen_ai.retrieval.documents`` (semantic conventions v1.40+, retrieval span, Opt-In):
    a list following ``gen-ai-retrieval-documents.json``, ``id`` and ``score`` its required
    properties, more allowed (``additionalProperties``), so the content and metadata go too; a JSON
    string, which the spec allows on spans where structured values are not supported (OTel Python's
    attributes hold no maps)."""
    out = []
    for document in documents:
        metadata = document.get("metadata") if isinstance(document.get("metadata"), Mapping) else {}
        entry: dict[str, Any] = {}
        if document.get("id") is not None:
            entry["id"] = str(document["id"])
        score = metadata.get("score")
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            entry["score"] = float(score)
        entry["content"] = str(document.get("page_content") or "")
        if metadata:
            entry["metadata"] = dict(metadata)
        out.append(entry)
    return dumps(out)


_TRACE_KEYS = (conv.TRACE_METADATA_PREFIX, conv.TRACE_TAG_PREFIX)


def trace_level(raw: Mapping[str, Any]) -> dict[str, Any]:
    """OpenInference's ``metadata`` (a JSON object) and ``tag.tags`` (strings ``key:value``) from the
    trace's tags and metadata on its root (``mlflow.traceTag.*`` / ``mlflow.traceMetadata.*``, MLflow's
    own ``mlflow.*`` keys left out), and ``session.id`` / ``user.id`` from MLflow's reserved keys."""
    for key in raw:  # most spans have no trace tag or metadata: one cheap pass says so
        if key.startswith(_TRACE_KEYS):
            break
    else:
        return {}
    metadata: dict[str, Any] = {}
    tags: list[str] = []
    add: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith(conv.TRACE_METADATA_PREFIX):
            name = key[len(conv.TRACE_METADATA_PREFIX) :]
            if name == conv.MLFLOW_SESSION_KEY:
                add.setdefault(conv.SESSION_ID, str(value))
            elif name == conv.MLFLOW_USER_KEY:
                add.setdefault(conv.USER_ID, str(value))
            elif not name.startswith(_RESERVED):
                metadata[name] = value
        elif key.startswith(conv.TRACE_TAG_PREFIX):
            name = key[len(conv.TRACE_TAG_PREFIX) :]
            if not name.startswith(_RESERVED):
                tags.append(f"{name}:{value}" if value not in ("", None) else name)
    if metadata:
        add["metadata"] = dumps(metadata)
    if tags:
        add["tag.tags"] = tuple(sorted(tags))
    return add


def trace_levels(spans: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """``trace_level`` of each local root among ``spans`` (OTel spans: one trace, or a batch of
    several), by MLflow's trace id. A trace whose root is not among them is absent."""
    out: dict[str, dict[str, Any]] = {}
    for span in spans:
        plain = plain_span_class(span.__class__)  # its fields, without a property call each
        parent = span._parent if plain else span.parent
        if parent is None or parent.is_remote:
            level = trace_level((span._attributes if plain else span.attributes) or {})
            if level:  # several local roots of one trace (a callee called twice): the first's keys win
                merged = out.setdefault(mlflow_trace_id(span.context.trace_id), {})
                for key, value in level.items():
                    merged.setdefault(key, value)
    return out


def outward_attributes(
    raw: Mapping[str, Any],
    name: str,
    semconv: frozenset[str],
    capture_messages: bool = False,
    trace_attrs: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
    """The attributes ``semconv`` (``gen_ai``, ``openinference``) adds to a span in MLflow's model
    (``raw`` holds ``mlflow.spanType``); keys the span already has are never replaced (our OpenAI
    integration and third-party instrumentors write their own). ``capture_messages``
    (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``) is the user's opt-in to GenAI's Opt-In
    content attributes: here a retriever's ``gen_ai.retrieval.query.text`` and
    ``gen_ai.retrieval.documents``. ``trace_attrs``: the trace's ``trace_level`` (from its local
    root), written on every span of it as OpenInference's ``using_session`` / ``using_metadata`` /
    ``using_tags`` helpers do, so a span filter in Phoenix matches children too; None: the span's
    own (only a root has them)."""
    span_type = raw.get(conv.SPAN_TYPE)
    if not isinstance(span_type, str):
        return {}
    add: dict[str, Any] = {}
    usage: Any = None
    if "gen_ai" in semconv and GEN_AI_OPERATION not in raw and span_type in OUTWARD_OPERATIONS:
        usage = loads_or_raw(raw.get(conv.CHAT_TOKEN_USAGE))
        add[GEN_AI_OPERATION] = OUTWARD_OPERATIONS[span_type]
        if conv.LLM_MODEL in raw:
            add["gen_ai.request.model"] = raw[conv.LLM_MODEL]
        if conv.LLM_PROVIDER in raw:
            add["gen_ai.provider.name"] = raw[conv.LLM_PROVIDER]
        if span_type == SpanType.TOOL:
            add["gen_ai.tool.name"] = name
        if isinstance(usage, Mapping):
            for key in ("input_tokens", "output_tokens"):
                if isinstance(usage.get(key), int):
                    add[f"gen_ai.usage.{key}"] = usage[key]
        if span_type == SpanType.RETRIEVER and capture_messages:
            encoded = raw.get(conv.SPAN_INPUTS)
            query, mime = _payload(encoded, loads_or_raw(encoded)) if isinstance(encoded, str) else ("", "")
            if mime == TEXT:  # the query string (or the retriever's one string argument)
                add["gen_ai.retrieval.query.text"] = query
            documents = loads_or_raw(raw.get(conv.SPAN_OUTPUTS))
            if _is_documents(documents):
                add["gen_ai.retrieval.documents"] = _genai_documents(documents)
    if "openinference" in semconv and OPENINFERENCE_KIND not in raw:
        add[OPENINFERENCE_KIND] = OUTWARD_KINDS.get(span_type, DEFAULT_KIND)
        inputs = outputs = None
        encoded = raw.get(conv.SPAN_INPUTS, _ABSENT)
        if encoded is not _ABSENT:
            inputs = loads_or_raw(encoded)
            add["input.value"], add["input.mime_type"] = _payload(encoded, inputs)
        encoded = raw.get(conv.SPAN_OUTPUTS, _ABSENT)
        if encoded is not _ABSENT:
            outputs = loads_or_raw(encoded)
            if span_type in _DOCUMENT_TYPES and _documents(outputs, add):
                pass  # the documents are the output (Phoenix's Documents pane); sent once
            else:
                add["output.value"], add["output.mime_type"] = _payload(encoded, outputs)
        if span_type in MODEL_TYPES:
            _messages(span_type, inputs, outputs, add)
        if usage is None and conv.CHAT_TOKEN_USAGE in raw:
            usage = loads_or_raw(raw[conv.CHAT_TOKEN_USAGE])
        if usage is not None and isinstance(usage, Mapping):
            for key, count in (
                ("input_tokens", "prompt"),
                ("output_tokens", "completion"),
                ("total_tokens", "total"),
            ):
                if isinstance(usage.get(key), int):
                    add[f"llm.token_count.{count}"] = usage[key]
            if isinstance(usage.get("cache_read_input_tokens"), int):
                add["llm.token_count.prompt_details.cache_read"] = usage["cache_read_input_tokens"]
        # The model that answered (the response's), as OpenInference instrumentors record it.
        model = raw.get("gen_ai.response.model") or raw.get(conv.LLM_MODEL)
        if model:
            add["llm.model_name"] = str(model)
        if conv.LLM_PROVIDER in raw:
            add["llm.provider"] = raw[conv.LLM_PROVIDER]
        if span_type == SpanType.TOOL:
            add["tool.name"] = name
            if conv.SPAN_DESCRIPTION in raw:
                add["tool.description"] = raw[conv.SPAN_DESCRIPTION]
            if isinstance(inputs, Mapping):
                add["tool.parameters"] = _parameters(name, inputs)
        for key, value in (trace_level(raw) if trace_attrs is None else trace_attrs).items():
            if key not in raw:
                add[key] = value
    if not raw.keys().isdisjoint(add):
        for key in [k for k in add if k in raw]:
            del add[key]
    return add


_CONTENT_KEYS = (conv.SPAN_INPUTS, conv.SPAN_OUTPUTS)
_EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True)
class Conventions:
    """One OTLP destination's own conventions (``OtlpDestination(semconv=...)``,
    ``MLFLOW_OTEL_OTLP_SEMCONV``), written as its exporter encodes each span: the processor chain
    has run once for every destination, so this is the one place a destination can differ
    (docs/architecture.md, "Conventions per destination"). ``add`` are the conventions the chain
    did not already write; without ``mlflow`` in the destination's conventions MLflow's content keys
    (``mlflow.spanInputs`` / ``mlflow.spanOutputs``) are left out, so a payload travels once."""

    add: frozenset[str]
    keep_mlflow: bool
    capture_messages: bool = False

    def overlay(
        self, spans: Sequence[Any], counters: Counters, destination: str
    ) -> Callable[[Any, Mapping[str, Any], str], Optional[tuple[Mapping[str, Any], Mapping[str, Any]]]]:
        """What the encoder adds to each of ``spans`` (one export; ``otlp/protobuf.Overlay``): the
        span's attributes and this destination's keys, or None for a span that goes as it is (not
        ours, or nothing to add). A span the mapping cannot read goes as it is, counted in
        ``processor_errors``."""
        add, keep, capture = self.add, self.keep_mlflow, self.capture_messages
        # Each trace's keys from its root, for its other spans (a trace split across exports: those
        # without their root go without them).
        levels: dict[str, dict[str, Any]] = {}
        if "openinference" in add:
            try:
                levels = trace_levels(spans)
            except Exception as exc:
                counters.add("processor_errors")
                warn_limited("conventions", "Writing %s's conventions failed: %r", destination, exc)

        def overlay(
            span: Any, raw: Mapping[str, Any], name: str
        ) -> Optional[tuple[Mapping[str, Any], Mapping[str, Any]]]:
            if conv.SPAN_TYPE not in raw:
                return None
            try:
                trace_attrs = levels.get(mlflow_trace_id(span.context.trace_id), _EMPTY) if levels else _EMPTY
                extra = outward_attributes(raw, name, add, capture, trace_attrs) if add else _EMPTY
                if keep or (conv.SPAN_INPUTS not in raw and conv.SPAN_OUTPUTS not in raw):
                    return (raw, extra) if extra else None
                return {k: v for k, v in raw.items() if k not in _CONTENT_KEYS}, extra
            except Exception as exc:
                counters.add("processor_errors")
                warn_limited("conventions", "Writing %s's conventions failed: %r", destination, exc)
                return None

        return overlay
