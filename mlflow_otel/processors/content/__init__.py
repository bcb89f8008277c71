"""Content capture switch: keep the shape of a trace, drop what was said in it.

With ``MLFLOW_OTEL_CAPTURE_CONTENT=false`` (or ``configure(capture_content=False)``) spans keep their
names, types, status, timings, model and token usage, but lose inputs, outputs, chat messages and
stream chunks (what mlflow#24163 asks for). Our own builders skip encoding payloads at all in this
mode; this processor also strips them from spans of other instrumentations sharing the pipeline.
"""

from __future__ import annotations

from mlflow_otel import semconv as conv
from mlflow_otel.processors.base import SpanView

#: Attribute keys that carry content: MLflow's, then every convention's (``semconv``).
CONTENT_KEYS = (
    frozenset(
        {conv.SPAN_INPUTS, conv.SPAN_OUTPUTS, conv.CHAT_TOOLS, conv.REQUEST_PREVIEW, conv.RESPONSE_PREVIEW}
    )
    | conv.OPENINFERENCE_CONTENT_KEYS
    | conv.GEN_AI_CONTENT_KEYS
    | conv.OPENLLMETRY_CONTENT_KEYS
    | conv.UNMAPPED_CONTENT_KEYS
)
#: Key prefixes that carry content (OpenInference flattens messages, tools, documents and
#: embeddings into numbered keys; OpenLLMetry its prompts, completions and functions).
CONTENT_PREFIXES = (
    conv.OPENINFERENCE_CONTENT_PREFIXES
    + conv.GEN_AI_CONTENT_PREFIXES
    + conv.OPENLLMETRY_CONTENT_PREFIXES
    + conv.UNMAPPED_CONTENT_PREFIXES
)
#: Event names that carry content (stream chunks, the GenAI content events, logs folded onto spans).
CONTENT_EVENT_PREFIXES = (
    "mlflow.chunk.item.",
    "gen_ai.content.",
    "gen_ai.user.message",
    "gen_ai.system.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
    "gen_ai.choice",
    "gen_ai.client.inference.operation.details",
)
#: Event names that are content as a whole (log records folded onto the span, with a body).
CONTENT_EVENT_NAMES = frozenset({"log"})


class ContentFilter:
    """Drops content attributes and events; keeps everything else untouched."""

    capture_content = False

    def __call__(self, span: SpanView) -> None:
        raw = span.raw_attributes
        doomed = [k for k in raw if k in CONTENT_KEYS or k.startswith(CONTENT_PREFIXES)]
        if doomed:
            attrs = span.writable_attributes()
            for key in doomed:
                del attrs[key]
        events = span.events
        if events and any(_is_content(e.name) for e in events):
            span.set_events([e for e in events if not _is_content(e.name)])


def _is_content(event_name: str) -> bool:
    return event_name in CONTENT_EVENT_NAMES or event_name.startswith(CONTENT_EVENT_PREFIXES)
