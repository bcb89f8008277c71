"""What an OpenAI request and its response say, as span attributes (MLflow, GenAI, OpenInference).

Pure functions over plain data: the request body (``FinalRequestOptions.json_data``, the JSON the
client sends) and the response as a dict, so one code path serves every ``openai`` version, raw
responses and OpenAI-compatible servers. Token usage is taken only as the API reports it, never
estimated. Key names: MLflow ``mlflow/tracing/constant.py`` (``SpanAttributeKey``, ``TokenUsageKey``);
OTel GenAI semantic conventions (``gen_ai.*``, registry "gen-ai"); OpenInference
``openinference-semantic-conventions`` (``llm.*``, ``input.value``...).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

from mlflow_otel import semconv as conv
from mlflow_otel._serialize import dumps
from mlflow_otel.spans.types import SpanType

# --- endpoints ------------------------------------------------------------------------------------


#: A request's content arguments; the rest are OpenInference's ``llm.invocation_parameters``.
REQUEST_CONTENT = frozenset({"messages", "input", "prompt", "tools", "instructions"})


@dataclass(frozen=True)
class Endpoint:
    """One kind of call: MLflow's span name and type, and the GenAI operation name."""

    kind: str  # chat | responses | embeddings | completions | other
    name: str
    span_type: str
    operation: Optional[str]


_KNOWN = {
    "chat/completions": Endpoint("chat", "Completions", SpanType.CHAT_MODEL, "chat"),
    "responses": Endpoint("responses", "Responses", SpanType.CHAT_MODEL, "chat"),
    "embeddings": Endpoint("embeddings", "Embeddings", SpanType.EMBEDDING, "embeddings"),
    "completions": Endpoint("completions", "Completions", SpanType.LLM, "text_completion"),
    "images/generations": Endpoint("other", "Images", SpanType.TOOL, None),
}


def _path(url: str) -> str:
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    path = path.strip("/")
    # An absolute URL or a base URL ending in /v1 leaves the version in front of the resource.
    if path.startswith("v1/"):
        path = path[3:]
    return path


def classify(method: str, url: str) -> Endpoint:
    """The endpoint from the request's path: known model calls by their resource, any other call
    named after its last plain word (``/vector_stores/vs_1/files`` -> ``Files``), so an endpoint
    added to the API tomorrow still gets a span with a stable name."""
    path = _path(url)
    for suffix, endpoint in _KNOWN.items():
        if (path == suffix or path.endswith("/" + suffix)) and method.lower() == "post":
            return endpoint
    words = [w for w in path.split("/") if w and w.replace("_", "").replace("-", "").isalpha()]
    last = words[-1] if words else "request"
    name = "".join(part[:1].upper() + part[1:] for part in last.replace("-", "_").split("_"))
    return Endpoint("other", name or "Request", SpanType.UNKNOWN, None)


# --- provider ---------------------------------------------------------------------------------------

#: Hosts of OpenAI-compatible APIs -> ``gen_ai.provider.name`` (the spec's well-known values where it
#: has one: openai, azure.ai.openai, gcp.gemini, groq, deepseek, mistral_ai, x_ai, perplexity, ...).
_HOSTS = (
    ("api.openai.com", "openai"),
    (".openai.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.anthropic.com", "anthropic"),
    ("api.cohere.com", "cohere"),
    ("api.cohere.ai", "cohere"),
    ("bedrock-runtime.", "aws.bedrock"),
    ("api.together.xyz", "together_ai"),
    ("api.fireworks.ai", "fireworks_ai"),
    ("openrouter.ai", "openrouter"),
    ("cloud.databricks.com", "databricks"),
    ("azuredatabricks.net", "databricks"),
)
#: Default ports of local OpenAI-compatible servers.
_LOCAL_PORTS = {11434: "ollama", 1234: "lm_studio"}


def provider_for(base_url: str, client_class: str = "") -> str:
    """``gen_ai.provider.name`` for a client: Azure clients by class, others by their base URL.

    An unknown domain names itself by its registrable label (``api.acme-llm.com`` -> ``acme-llm``);
    an unknown loopback or IP server is ``openai_compatible`` rather than a guess.
    """
    if client_class.startswith(("AzureOpenAI", "AsyncAzureOpenAI")):
        return "azure.ai.openai"
    try:
        parts = urlsplit(base_url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return "openai_compatible"
    for pattern, name in _HOSTS:
        if (
            host == pattern
            or (pattern.startswith(".") and host.endswith(pattern))
            or host.startswith(pattern)
        ):
            return name
    local = host in ("localhost", "") or host.endswith(".local")
    if not local:
        try:
            ipaddress.ip_address(host)
            local = True
        except ValueError:
            pass
    if local:
        return _LOCAL_PORTS.get(port or 0, "openai_compatible")
    labels = [label for label in host.split(".") if label not in ("api", "www")]
    return labels[-2] if len(labels) >= 2 else (labels[0] if labels else "openai_compatible")


# --- plain data -------------------------------------------------------------------------------------


def plain(obj: Any) -> Any:
    """A response object as the JSON the API sent: openai models by ``to_dict()`` (unset fields
    left out, API field names), other pydantic models by ``model_dump``; dicts as they are."""
    if obj is None or isinstance(obj, (dict, list, str, int, float, bool)):
        return obj
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        try:
            return to_dict()
        except TypeError:
            pass
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(exclude_unset=True)
    return obj


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return None


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- request ----------------------------------------------------------------------------------------

#: Request parameters -> GenAI ``gen_ai.request.*`` keys.
_REQUEST_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_output_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
    "dimensions": "gen_ai.embeddings.dimension.count",
}
#: Built-in tools of the Responses API, named like MLflow's ``_RESPONSE_API_BUILT_IN_TOOLS``.
_BUILT_IN_TOOLS = frozenset(
    {
        "file_search",
        "computer_use_preview",
        "web_search_preview",
        "web_search",
        "local_shell",
        "mcp",
        "code_interpreter",
        "image_generation",
    }
)


def chat_tools(body: Mapping[str, Any]) -> Optional[list[dict[str, Any]]]:
    """The requested tools in MLflow's ``ChatTool`` shape (``mlflow.chat.tools``), for both the Chat
    Completions shape (``{"type": "function", "function": {...}}``) and the Responses shape
    (``{"type": "function", "name": ...}``, plus built-in tools named by their type)."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    out = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        kind = tool.get("type", "function")
        if kind == "function" and isinstance(tool.get("function"), Mapping):
            out.append({"type": "function", "function": dict(tool["function"])})
        elif kind == "function":
            out.append({"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}})
        else:
            name = kind if kind in _BUILT_IN_TOOLS else str(tool.get("name") or kind)
            out.append({"type": "function", "function": {"name": name}})
    return out or None


def request_attributes(
    endpoint: Endpoint, body: Mapping[str, Any], provider: str, server: str, semconv: frozenset[str]
) -> dict[str, Any]:
    """Attributes known before the call: what was asked of which model where."""
    attrs: dict[str, Any] = {}
    model = body.get("model")
    if "mlflow" in semconv:
        attrs[conv.LLM_PROVIDER] = provider
        if endpoint.span_type in (SpanType.CHAT_MODEL, SpanType.LLM):
            attrs[conv.MESSAGE_FORMAT] = "openai"
        tools = chat_tools(body)
        if tools:
            attrs[conv.CHAT_TOOLS] = tools
        if isinstance(model, str):
            attrs[conv.LLM_MODEL] = model
    if "gen_ai" in semconv:
        if endpoint.operation:
            attrs["gen_ai.operation.name"] = endpoint.operation
        attrs["gen_ai.provider.name"] = provider
        if isinstance(model, str):
            attrs["gen_ai.request.model"] = model
        for param, key in _REQUEST_PARAMS.items():
            value = body.get(param)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attrs[key] = value
        stop = body.get("stop")
        if isinstance(stop, str):
            attrs["gen_ai.request.stop_sequences"] = [stop]
        elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and stop:
            attrs["gen_ai.request.stop_sequences"] = stop
        fmt = body.get("response_format")
        if isinstance(fmt, Mapping) and isinstance(fmt.get("type"), str):
            attrs["gen_ai.output.type"] = "json" if fmt["type"].startswith("json") else fmt["type"]
        if server:
            host, _, port = server.rpartition(":")
            attrs["server.address"] = host or server
            if port.isdigit():
                attrs["server.port"] = int(port)
    if "openinference" in semconv:
        attrs["openinference.span.kind"] = "EMBEDDING" if endpoint.kind == "embeddings" else "LLM"
        if endpoint.kind == "other":
            attrs["openinference.span.kind"] = "UNKNOWN"
        attrs["llm.provider"] = provider
        attrs["llm.system"] = "openai"
        if isinstance(model, str):
            attrs["embedding.model_name" if endpoint.kind == "embeddings" else "llm.model_name"] = model
        params = {k: v for k, v in body.items() if k not in REQUEST_CONTENT}
        if params:
            attrs["llm.invocation_parameters"] = dumps(params)
    return attrs


# --- response ---------------------------------------------------------------------------------------


def token_usage(endpoint: Endpoint, response: Any) -> Optional[dict[str, int]]:
    """MLflow's ``{"input_tokens", "output_tokens", "total_tokens"}`` from the reported usage.

    Chat/completions report ``prompt_tokens``/``completion_tokens``; the Responses API
    ``input_tokens``/``output_tokens``; embeddings only ``prompt_tokens`` and ``total_tokens``. Only
    what is reported is recorded, and cached input tokens as MLflow's ``cache_read_input_tokens``.
    """
    usage = _get(response, "usage")
    if not isinstance(usage, Mapping):
        return None
    out: dict[str, int] = {}
    input_tokens = _int(usage.get("input_tokens", usage.get("prompt_tokens")))
    output_tokens = _int(usage.get("output_tokens", usage.get("completion_tokens")))
    total = _int(usage.get("total_tokens"))
    if input_tokens is not None:
        out["input_tokens"] = input_tokens
    if output_tokens is not None:
        out["output_tokens"] = output_tokens
    if total is not None:
        out["total_tokens"] = total
    details = usage.get("input_tokens_details") or usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, Mapping) else None
    if cached is not None:
        out["cache_read_input_tokens"] = cached
    return out or None


def finish_reasons(endpoint: Endpoint, response: Any) -> Optional[list[str]]:
    """Chat/completions: each choice's ``finish_reason``. Responses API (no such field): its status
    mapped to the GenAI values (``incomplete`` -> the reason given, ``failed`` -> ``error``,
    ``completed`` -> ``tool_calls`` when it asked for a function call, else ``stop``)."""
    if endpoint.kind == "responses":
        status = _get(response, "status")
        if status == "incomplete":
            details = _get(response, "incomplete_details")
            return [str(_get(details, "reason") or "incomplete")]
        if status == "failed":
            return ["error"]
        if status == "completed":
            output = _get(response, "output") or []
            calls = any(_get(item, "type") == "function_call" for item in output)
            return ["tool_calls" if calls else "stop"]
        return None
    choices = _get(response, "choices")
    if not isinstance(choices, list):
        return None
    reasons = [c.get("finish_reason") for c in choices if isinstance(c, Mapping)]
    reasons = [r for r in reasons if isinstance(r, str)]
    return reasons or None


def response_attributes(endpoint: Endpoint, response: Any, semconv: frozenset[str]) -> dict[str, Any]:
    """Attributes known after the call: the model that answered, usage, ids, finish reasons."""
    attrs: dict[str, Any] = {}
    if not isinstance(response, Mapping):
        return attrs
    model = response.get("model")
    usage = token_usage(endpoint, response)
    if "mlflow" in semconv:
        if isinstance(model, str) and model:
            # The response's model, as MLflow prefers it: Azure's request names a deployment.
            attrs[conv.LLM_MODEL] = model
        if usage:
            attrs[conv.CHAT_TOKEN_USAGE] = usage
    if "gen_ai" in semconv:
        if isinstance(model, str) and model:
            attrs["gen_ai.response.model"] = model
        if isinstance(response.get("id"), str):
            attrs["gen_ai.response.id"] = response["id"]
        reasons = finish_reasons(endpoint, response)
        if reasons:
            attrs["gen_ai.response.finish_reasons"] = reasons
        if usage:
            if "input_tokens" in usage:
                attrs["gen_ai.usage.input_tokens"] = usage["input_tokens"]
            if "output_tokens" in usage:
                attrs["gen_ai.usage.output_tokens"] = usage["output_tokens"]
            if "cache_read_input_tokens" in usage:
                attrs["gen_ai.usage.cache_read.input_tokens"] = usage["cache_read_input_tokens"]
        tier = response.get("service_tier")
        if isinstance(tier, str):
            attrs["openai.response.service_tier"] = tier
        fingerprint = response.get("system_fingerprint")
        if isinstance(fingerprint, str):
            attrs["openai.response.system_fingerprint"] = fingerprint
    if "openinference" in semconv and usage:
        for ours, theirs in (
            ("input_tokens", "prompt"),
            ("output_tokens", "completion"),
            ("total_tokens", "total"),
        ):
            if ours in usage:
                attrs[f"llm.token_count.{theirs}"] = usage[ours]
        if "cache_read_input_tokens" in usage:
            attrs["llm.token_count.prompt_details.cache_read"] = usage["cache_read_input_tokens"]
    return attrs
