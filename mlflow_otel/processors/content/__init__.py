"""Content capture switch: keep the shape of a trace, drop what was said in it.

With ``MLFLOW_OTEL_CAPTURE_CONTENT=false`` (or ``configure(capture_content=False)``) spans keep their
names, types, status, timings, model and token usage, but lose inputs, outputs, chat messages and
stream chunks (what mlflow#24163 asks for). Our own builders skip encoding payloads at all in this
mode; this processor also strips them from spans of other instrumentations sharing the pipeline.
"""

from __future__ import annotations

from mlflow_otel import semconv as conv
from mlflow_otel.processors.base import SpanView

#: Attribute keys that carry content, by convention (MLflow, OTel GenAI, OpenInference).
CONTENT_KEYS = frozenset(
    {
        conv.SPAN_INPUTS,
        conv.SPAN_OUTPUTS,
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.prompt",
        "gen_ai.completion",
        "input.value",
        "output.value",
        "mlflow.trace.requestPreview",
        "mlflow.trace.responsePreview",
    }
)
#: Key prefixes that carry content (OpenInference flattens messages into numbered keys).
CONTENT_PREFIXES = ("llm.input_messages.", "llm.output_messages.", "gen_ai.prompt.", "gen_ai.completion.")
#: Event names that carry content.
CONTENT_EVENT_PREFIXES = ("mlflow.chunk.item.", "gen_ai.content.", "gen_ai.user.message", "gen_ai.choice")


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
        if events and any(e.name.startswith(CONTENT_EVENT_PREFIXES) for e in events):
            span.set_events([e for e in events if not e.name.startswith(CONTENT_EVENT_PREFIXES)])
