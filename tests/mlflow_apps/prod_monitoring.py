"""MLflow's production-monitoring example, as its docs write it: a FastAPI chat endpoint that files
each request's context on the trace (client request id, session, user, environment), and a feedback
endpoint that finds the trace by its client request id and logs the user's feedback on it.

Environment: APP_EXPERIMENT (the tracking URI comes from MLFLOW_TRACKING_URI).
"""

import os
from typing import Optional

import mlflow
from fastapi import FastAPI, Request
from mlflow.entities import AssessmentSource, AssessmentSourceType
from pydantic import BaseModel

mlflow.set_experiment(os.environ["APP_EXPERIMENT"])

app = FastAPI()


class ChatRequest(BaseModel):
    message: str


class FeedbackRequest(BaseModel):
    is_correct: bool
    comment: Optional[str] = None


@app.post("/chat")
@mlflow.trace
def handle_chat(request: Request, chat_request: ChatRequest):
    client_request_id = request.headers.get("X-Request-ID")
    session_id = request.headers.get("X-Session-ID")
    user_id = request.headers.get("X-User-ID")

    mlflow.update_current_trace(
        client_request_id=client_request_id,
        metadata={
            "mlflow.trace.session": session_id,
            "mlflow.trace.user": user_id,
        },
        tags={
            "environment": "production",
            "app_version": os.getenv("APP_VERSION", "1.0.0"),
            "deployment_id": os.getenv("DEPLOYMENT_ID", "deployment-1"),
            "region": os.getenv("REGION", "us-east-1"),
        },
    )
    if chat_request.message == "crash":
        raise RuntimeError("the model is down")
    response_text = f"Processed message: '{chat_request.message}'"
    return {"response": response_text}


@app.post("/feedback")
def handle_feedback(request: Request, feedback: FeedbackRequest):
    client_request_id = request.headers.get("X-Request-ID")
    traces = mlflow.search_traces(
        filter_string=f"attributes.client_request_id = '{client_request_id}'", max_results=1
    )
    if traces.empty:
        return {
            "status": "error",
            "message": f"Unable to find data for client request ID: {client_request_id}",
        }
    trace_id = traces.iloc[0]["trace_id"]
    mlflow.log_feedback(
        trace_id=trace_id,
        name="response_is_correct",
        value=feedback.is_correct,
        source=AssessmentSource(
            source_type=AssessmentSourceType.HUMAN, source_id=request.headers.get("X-End-User-ID")
        ),
        rationale=feedback.comment,
    )
    return {"status": "success", "trace_id": trace_id}
