#!/usr/bin/env bash
# Installs the real backends the tests run against, into a cache outside the repository:
#   jaeger      Jaeger v2 (an OTel Collector distribution), built from the Go module proxy
#   mlflow-venv an MLflow tracking server in its own virtualenv (never the project's)
#   rotel-venv  rotel, a Rust OTLP collector from PyPI
# Re-running is cheap: what is already there is kept. Prints the cache directory on its last line.
set -euo pipefail

CACHE="${MLFLOW_OTEL_BACKENDS:-$HOME/.cache/mlflow-otel-backends}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$CACHE"
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"

# --- Jaeger v2 -----------------------------------------------------------------------------------
# DEVELOPERS.md names commit 798e4b0f (v2.20.0); the module proxy here refuses that version
# ("This module version is not available"), so we build the newest release it serves, module
# version v1.76.0 (Jaeger ships its v2 binary from the v1.x module tags). `go install pkg@version`
# rejects modules with replace directives, so a throwaway wrapper module mirrors Jaeger's one
# replace and builds cmd/jaeger. The checksum database has no entry for some collector-contrib
# modules this release pins, so only those two module trees skip it (GONOSUMDB); the module proxy
# still serves every byte.
JAEGER_MODULE_VERSION=v1.76.0
if [ ! -x "$CACHE/jaeger" ] || [ "$(cat "$CACHE/jaeger.version" 2>/dev/null)" != "$JAEGER_MODULE_VERSION" ]; then
  echo "== building Jaeger $JAEGER_MODULE_VERSION (first time: several minutes)" >&2
  work="$(mktemp -d)"
  cat > "$work/go.mod" <<GOMOD
module example.invalid/jaegerbuild

go 1.24.6

require github.com/jaegertracing/jaeger $JAEGER_MODULE_VERSION

replace github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0
GOMOD
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/jaegertracing/jaeger/cmd/jaeger"\n' > "$work/tools.go"
  (
    cd "$work"
    export GOTOOLCHAIN=local GOFLAGS=-mod=mod
    export GONOSUMDB=github.com/open-telemetry/opentelemetry-collector-contrib,go.opentelemetry.io/collector
    go mod tidy >&2
    go build -o "$CACHE/jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger >&2
  )
  mv "$CACHE/jaeger.tmp" "$CACHE/jaeger"
  echo "$JAEGER_MODULE_VERSION" > "$CACHE/jaeger.version"
  rm -rf "$work"
fi

# --- MLflow tracking server (own venv) -----------------------------------------------------------
if [ ! -x "$CACHE/mlflow-venv/bin/mlflow" ]; then
  echo "== installing MLflow into its own venv" >&2
  "$PYTHON" -m venv "$CACHE/mlflow-venv"
  "$CACHE/mlflow-venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$CACHE/mlflow-venv/bin/python" -m pip install --quiet mlflow >&2
fi

# --- rotel ---------------------------------------------------------------------------------------
if ! ls "$CACHE"/rotel-venv/lib/python*/site-packages/rotel/rotel-agent >/dev/null 2>&1; then
  echo "== installing rotel" >&2
  "$PYTHON" -m venv "$CACHE/rotel-venv"
  "$CACHE/rotel-venv/bin/python" -m pip install --quiet rotel >&2
fi

echo "$CACHE"
