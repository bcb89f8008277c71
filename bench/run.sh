#!/usr/bin/env bash
# The benchmark on a fresh machine: the project (with its bench extra) in .venv, mlflow-tracing in
# its own venv, then bench/run.py with any arguments given here.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[bench]'
MLT="${MLFLOW_TRACING_VENV:-$HOME/.cache/mlflow-otel-backends/mlflow-tracing-venv}"
if [ ! -x "$MLT/bin/python" ] || ! "$MLT/bin/python" -c "import mlflow" 2>/dev/null; then
  "$PYTHON" -m venv "$MLT"
  "$MLT/bin/python" -m pip install --quiet --upgrade pip
  "$MLT/bin/python" -m pip install --quiet mlflow-tracing opentelemetry-exporter-otlp-proto-grpc opentelemetry-exporter-otlp-proto-http
fi
case "${1:-}" in
  # The read API over 100,000 traces beside MLflow's local store; the MLflow destination beside
  # mlflow-tracing on one MLflow 3.18 server. Both need the MLflow venv of tests/backends/install.sh.
  read) shift; bash tests/backends/install.sh >/dev/null; exec .venv/bin/python bench/read_store.py "$@" ;;
  # Each local sink's drain rate beside the request path's fill rate.
  sinks) shift; exec .venv/bin/python bench/sinks.py "$@" ;;
  # mlflow-otel push of 100,000 recorded spans beside their live export, to the bench's receiver.
  push) shift; exec .venv/bin/python bench/push.py "$@" ;;
  mlflow-destination) shift; bash tests/backends/install.sh >/dev/null; exec .venv/bin/python bench/mlflow_destination.py "$@" ;;
esac
.venv/bin/python bench/run.py --mlflow-python "$MLT/bin/python" "$@"
