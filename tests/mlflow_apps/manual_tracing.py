"""MLflow's manual-tracing guide and tracing FAQ, as written there: the decorator with a span type and
attributes, the current span, a context-manager span, ``update_current_trace`` (tags, metadata,
``client_request_id``, previews, session and user), an error, the client API (``start_trace`` /
``start_span`` / ``end_span`` / ``end_trace``); then the FAQ's reads: the last trace, searches by tag,
status, span type and client request id. Prints what it read as one JSON line.

Environment: APP_TRACKING_URI, APP_EXPERIMENT.
"""

import json
import os

import mlflow
from mlflow.entities import SpanType

mlflow.set_tracking_uri(os.environ["APP_TRACKING_URI"])
mlflow.set_experiment(os.environ["APP_EXPERIMENT"])


@mlflow.trace(span_type=SpanType.CHAIN, attributes={"key": "value"})
def add_one(x):
    return x + 1


@mlflow.trace(name="doubled")
def double(x):
    span = mlflow.get_current_active_span()
    span.set_attributes({"factor": 2})
    return x * 2


def ask_model():
    with mlflow.start_span(name="ask_model", span_type=SpanType.LLM) as span:
        span.set_inputs({"messages": [{"role": "user", "content": "What is MLflow?"}]})
        span.set_attribute("model", "gpt-4o-mini")
        span.set_outputs({"choices": [{"message": {"role": "assistant", "content": "An ML platform."}}]})


@mlflow.trace
def support_request(question):
    mlflow.update_current_trace(
        tags={"environment": "production", "escalated": True},
        client_request_id="req-manual-1",
        request_preview="customer asks about refunds",
        response_preview="refund policy explained",
        metadata={"ticket": "T-1", "mlflow.trace.session": "session-7", "mlflow.trace.user": "ann"},
    )
    return {"answer": f"About {question}: 30 days."}


@mlflow.trace(span_type=SpanType.TOOL)
def broken_tool(path):
    raise ValueError(f"cannot read {path}")


client = mlflow.MlflowClient()
root = client.start_trace(name="client_root", inputs={"q": "hi"}, tags={"via": "client"})
child = client.start_span(
    name="client_child",
    trace_id=root.trace_id,
    parent_id=root.span_id,
    span_type=SpanType.RETRIEVER,
    inputs={"k": 3},
)
client.end_span(trace_id=root.trace_id, span_id=child.span_id, outputs=["doc-1", "doc-2"])
client.end_trace(trace_id=root.trace_id, outputs={"answer": 42})

add_one(1)
double(21)
ask_model()
support_request("refunds")
try:
    broken_tool("/missing.csv")
except ValueError:
    pass

mlflow.flush_trace_async_logging()
last = mlflow.get_trace(mlflow.get_last_active_trace_id())


def names(traces):
    return sorted(t.info.tags.get("mlflow.traceName") for t in traces)


out = {
    "last": {
        "state": str(getattr(last.info.state, "value", last.info.state)),
        "spans": [s.name for s in last.data.spans],
        "name": last.info.tags.get("mlflow.traceName"),
    },
    "by_tag": names(
        mlflow.search_traces(filter_string="tags.environment = 'production'", return_type="list")
    ),
    "by_status": names(mlflow.search_traces(filter_string="trace.status = 'ERROR'", return_type="list")),
    "by_span_type": names(mlflow.search_traces(filter_string="span.type = 'LLM'", return_type="list")),
    "by_request_id": names(
        mlflow.search_traces(filter_string="trace.client_request_id = 'req-manual-1'", return_type="list")
    ),
    "by_user": names(
        mlflow.search_traces(filter_string="metadata.`mlflow.trace.user` = 'ann'", return_type="list")
    ),
    "all": len(mlflow.search_traces(return_type="list")),
}
print(json.dumps(out, sort_keys=True))
