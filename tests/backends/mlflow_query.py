"""Read traces back from an MLflow server with MLflow's own client, every record field the tests
compare; prints one JSON line. Runs in an MLflow virtualenv (never the project's).

Usage: mlflow_query.py URI EXPERIMENT [FILTER]   (credentials from MLFLOW_TRACKING_* as MLflow reads them)
"""

import json
import sys
import warnings

warnings.filterwarnings("ignore")

import mlflow  # noqa: E402


def _assessment(a):
    value = getattr(a, "value", None)
    return {
        "name": a.name,
        "value": value,
        "source_type": a.source.source_type,
        "source_id": a.source.source_id,
        "rationale": getattr(a, "rationale", None),
        "valid": getattr(a, "valid", None),
        "kind": type(a).__name__,
    }


def main() -> None:
    uri, experiment = sys.argv[1], sys.argv[2]
    filter_string = sys.argv[3] if len(sys.argv) > 3 else None
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        print("[]")
        return
    traces = client.search_traces(
        experiment_ids=[exp.experiment_id], filter_string=filter_string, max_results=500
    )
    out = []
    for t in traces:
        info = t.info
        out.append(
            {
                "trace_id": info.trace_id,
                "client_request_id": info.client_request_id,
                "request_preview": info.request_preview,
                "response_preview": info.response_preview,
                "state": str(info.state.value if hasattr(info.state, "value") else info.state),
                "request_time": info.request_time,
                "execution_duration": info.execution_duration,
                "tags": dict(info.tags),
                "metadata": dict(info.trace_metadata),
                "token_usage": getattr(info, "token_usage", None),
                "assessments": [_assessment(a) for a in info.assessments],
                "spans": [
                    {
                        "name": s.name,
                        "span_id": s.span_id,
                        "parent_id": s.parent_id,
                        "span_type": s.span_type,
                        "status": str(getattr(s.status.status_code, "value", s.status.status_code)),
                        "status_message": s.status.description,
                        "inputs": s.inputs,
                        "outputs": s.outputs,
                        "log_level": int(s.attributes["mlflow.spanLogLevel"])
                        if "mlflow.spanLogLevel" in s.attributes
                        else None,
                        "attributes": dict(s.attributes.items()),
                    }
                    for s in t.data.spans
                ],
            }
        )
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
