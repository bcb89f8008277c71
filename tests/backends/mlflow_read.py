"""Read traces back from an MLflow server with MLflow's own client; prints one JSON line.

Runs in the MLflow virtualenv (never the project's). Usage: mlflow_read.py URI EXPERIMENT [FILTER]
"""

import json
import sys
import warnings

warnings.filterwarnings("ignore")

import mlflow  # noqa: E402


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
                "state": str(info.state.value if hasattr(info.state, "value") else info.state),
                "tags": dict(info.tags),
                "metadata": dict(info.trace_metadata),
                "token_usage": info.token_usage if hasattr(info, "token_usage") else None,
                "spans": [
                    {
                        "name": s.name,
                        "span_id": s.span_id,
                        "parent_id": s.parent_id,
                        "span_type": s.span_type,
                        "status": s.status.status_code.value
                        if hasattr(s.status.status_code, "value")
                        else str(s.status.status_code),
                        "status_message": s.status.description,
                        "inputs": s.inputs,
                        "outputs": s.outputs,
                        "attributes": {k: v for k, v in s.attributes.items()},
                    }
                    for s in t.data.spans
                ],
            }
        )
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
