"""MLflow's OpenAI quickstart, with only the import changed.

    import mlflow_otel as mlflow   # was: import mlflow

`mlflow.openai.autolog()` traces every OpenAI client call. The client reads OPENAI_API_KEY and
OPENAI_BASE_URL as usual, so any OpenAI-compatible server works (Ollama, vLLM, a gateway).
Traces go where MLflow's would: MLFLOW_TRACKING_URI (an MLflow server) and MLFLOW_EXPERIMENT_NAME,
or OTEL_EXPORTER_OTLP_ENDPOINT (a collector), else ./mlflow-otel-traces.jsonl (`mlflow-otel show`).

    pip install 'mlflow-otel[openai]'
    python examples/openai_quickstart.py
"""

import os

from openai import OpenAI

import mlflow_otel as mlflow

mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", "OpenAI quickstart"))
mlflow.openai.autolog()

client = OpenAI()
response = client.chat.completions.create(
    model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
    messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is MLflow Tracing?"},
    ],
)
print(response.choices[0].message.content)
