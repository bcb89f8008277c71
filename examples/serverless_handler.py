"""Serverless: flush each invocation's trace before the handler returns.

AWS Lambda, Cloud Functions and Cloud Run freeze (or kill) the process as soon as the handler
returns, so a background exporter may never get to run. Flush in `finally`, with a deadline shorter
than what you can spare: the trace is sent even when the handler fails, and a slow collector costs
at most the deadline, never the invocation.

    python examples/serverless_handler.py && mlflow-otel show -v
"""

import os

import mlflow_otel as mlflow
from mlflow_otel.entities import SpanType

FLUSH_DEADLINE_S = float(os.environ.get("TRACE_FLUSH_DEADLINE_S", "2"))


@mlflow.trace(span_type=SpanType.AGENT)
def handle(event: dict) -> dict:
    mlflow.update_current_trace(client_request_id=event.get("request_id"), tags={"runtime": "serverless"})
    if event.get("fail"):
        raise ValueError("bad event")
    return {"statusCode": 200, "body": f"hello {event.get('name', 'world')}"}


def lambda_handler(event: dict, context: object = None) -> dict:
    try:
        return handle(event)
    except ValueError as exc:
        return {"statusCode": 400, "body": str(exc)}
    finally:
        mlflow.flush_trace_async_logging(timeout_s=FLUSH_DEADLINE_S)


if __name__ == "__main__":
    print(lambda_handler({"request_id": "inv-1", "name": "ann"}))
    print(lambda_handler({"request_id": "inv-2", "fail": True}))
    # The platform freezes the process here; nothing after the handler is guaranteed to run.
    os._exit(0)
