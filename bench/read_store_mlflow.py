"""MLflow's side of bench/read_store.py, run in MLflow 3.18's venv: write the traces our store holds into
MLflow's default local store (``sqlite:///mlflow.db``) with MLflow's own ``log_spans`` (the path its
OTLP ingest takes), then time ``mlflow.get_trace`` and ``mlflow.search_traces`` as MLflow users call
them. Prints one JSON line.

Usage: read_store_mlflow.py DUMP.jsonl MLFLOW_DB LATEST_TRACE_ID TRACES
"""

import json
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")

import mlflow  # noqa: E402
from mlflow.entities import Span  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags  # noqa: E402

JSON_KEYS = {"mlflow.spanInputs", "mlflow.spanOutputs", "mlflow.chat.tokenUsage", "mlflow.chat.tools"}
CODES = {"OK": StatusCode.OK, "ERROR": StatusCode.ERROR, "UNSET": StatusCode.UNSET}


def mlflow_span(data):
    """One span of our dump as MLflow's ``Span`` (attributes JSON-encoded, as MLflow keeps them)."""
    trace_id = int(data["trace_id"][3:], 16)
    context = SpanContext(trace_id, int(data["span_id"], 16), False, TraceFlags(1))
    parent = (
        SpanContext(trace_id, int(data["parent_id"], 16), False, TraceFlags(1)) if data["parent_id"] else None
    )
    attributes = {
        key: value if key in JSON_KEYS and isinstance(value, str) else json.dumps(value)
        for key, value in data["attributes"].items()
    }
    attributes["mlflow.traceRequestId"] = json.dumps(data["trace_id"])
    status = data.get("status") or {}
    otel = ReadableSpan(
        name=data["name"],
        context=context,
        parent=parent,
        attributes=attributes,
        start_time=int(data["start_time_ns"]),
        end_time=int(data["end_time_ns"]),
        status=Status(
            CODES.get(status.get("status_code"), StatusCode.UNSET), status.get("description") or None
        ),
    )
    return Span(otel)


def timed(call, runs):
    values = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        values.append((time.perf_counter() - started) * 1000)
    return statistics.median(values), result


def main():
    dump, db, latest, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    uri = f"sqlite:///{db}"
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.set_experiment("bench-read-store").experiment_id
    from mlflow.tracking._tracking_service.utils import _get_store

    store = _get_store()
    loaded = 0
    started = time.perf_counter()
    if not mlflow.search_traces(locations=[experiment_id], max_results=1, return_type="list"):
        batch = []
        with open(dump) as fh:
            for line in fh:
                batch.extend(mlflow_span(s) for s in json.loads(line)["data"]["spans"])
                loaded += 1
                if len(batch) >= 3000:
                    store.log_spans(experiment_id, batch)
                    batch = []
        if batch:
            store.log_spans(experiment_id, batch)
    load_s = time.perf_counter() - started

    out = {"load_traces_per_s": round(loaded / load_s) if loaded else None}
    started = time.perf_counter()
    trace = mlflow.get_trace(latest)
    out["first_get_trace_ms"] = (time.perf_counter() - started) * 1000
    assert trace is not None and len(trace.data.spans) == 3, trace
    out["get_trace_ms"], _ = timed(lambda: mlflow.get_trace(latest), 20)
    query = "tags.customer = 'c-42'"
    out["tag_search_ms"], found = timed(
        lambda: mlflow.search_traces(filter_string=query, locations=[experiment_id], return_type="list"), 5
    )
    assert len(found) == total // 1000, len(found)
    out["tag_search_hits"] = len(found)
    out["tag_search_dataframe_ms"], _ = timed(
        lambda: mlflow.search_traces(filter_string=query, locations=[experiment_id]), 5
    )
    out["newest_100_ms"], _ = timed(
        lambda: mlflow.search_traces(locations=[experiment_id], max_results=100, return_type="list"), 5
    )
    out["user_and_status_100_ms"], _ = timed(
        lambda: mlflow.search_traces(
            filter_string="metadata.`mlflow.trace.user` = 'u-7' AND trace.status = 'OK'",
            locations=[experiment_id],
            max_results=100,
            return_type="list",
        ),
        5,
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
