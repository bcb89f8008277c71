"""A production chat endpoint: FastAPI + the OpenAI client, traced with MLflow's API.

Each request becomes one trace: the handler's span (AGENT) with the OpenAI call (CHAT_MODEL) under
it. The request's own headers give the trace its context, as MLflow's production-tracing guide does:
X-Request-ID -> client_request_id (find the trace from a support ticket), X-Session-ID / X-User-ID
-> the trace's session and user (``session.id`` / ``user.id`` on the wire), plus tags for the
environment and app version. Export runs on a background thread; the response never waits for it.

    pip install 'mlflow-otel[openai]' fastapi uvicorn
    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 OPENAI_API_KEY=... python examples/fastapi_app.py
    curl -s localhost:8000/chat -H 'X-Session-ID: s1' -H 'X-User-ID: ann' \\
         -H 'content-type: application/json' -d '{"message": "hello"}'
"""

from __future__ import annotations

import os
from typing import Optional

from fastapi import FastAPI, Header
from openai import AsyncOpenAI
from pydantic import BaseModel

import mlflow_otel as mlflow
from mlflow_otel.entities import SpanType

mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", "chat-app"))
mlflow.openai.autolog()

MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
ENVIRONMENT = os.environ.get("APP_ENV", "production")
VERSION = os.environ.get("APP_VERSION", "1.0.0")

app = FastAPI(title="chat")
client = AsyncOpenAI()


class ChatRequest(BaseModel):
    message: str


class ChatResponse(BaseModel):
    reply: str
    trace_id: Optional[str]


@mlflow.trace(name="chat", span_type=SpanType.AGENT)
async def answer(
    message: str, session_id: Optional[str], user_id: Optional[str], request_id: Optional[str]
) -> str:
    mlflow.update_current_trace(
        client_request_id=request_id,
        tags={
            "environment": ENVIRONMENT,
            "app_version": VERSION,
            **({"mlflow.trace.session": session_id} if session_id else {}),
            **({"mlflow.trace.user": user_id} if user_id else {}),
        },
    )
    completion = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": message}],
    )
    return completion.choices[0].message.content or ""


@app.post("/chat", response_model=ChatResponse)
async def chat(
    body: ChatRequest,
    x_request_id: Optional[str] = Header(default=None),
    x_session_id: Optional[str] = Header(default=None),
    x_user_id: Optional[str] = Header(default=None),
) -> ChatResponse:
    reply = await answer(body.message, x_session_id, x_user_id, x_request_id)
    return ChatResponse(reply=reply, trace_id=mlflow.get_last_active_trace_id())


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
