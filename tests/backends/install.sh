#!/usr/bin/env bash
# Installs the real backends the tests run against, into a cache outside the repository:
#   jaeger          Jaeger v2 (an OTel Collector distribution), built from the Go module proxy
#   otelcol-mlflow  the collector of collector-config/, built by ocb from the Go module proxy
#   mlflow-venv     an MLflow 3.18 tracking server in its own virtualenv (never the project's)
#   mlflow317-venv  MLflow 3.17.2, the previous release, for the tests that run on both
#   mlflow-tracing-venv  mlflow-tracing 3.17.2, MLflow's production SDK (signatures, benchmarks)
#   rotel-venv      rotel, a Rust OTLP collector from PyPI
#   crewai-venv     CrewAI and its OpenInference instrumentor (their pins on openai and mcp conflict
#                   with the project's test extra; tests/test_autolog_crewai.py runs there)
#   phoenix-venv    Arize Phoenix 20 (`phoenix serve`), an OpenInference backend, in its own virtualenv
#   chromium        headless Chromium and its driver from Debian's packages (the MLflow UI and the
#                   trace page are checked in a real browser)
# The installs are independent, so they run side by side (the Go builds take most of the time on a
# fresh machine). Re-running is cheap: what is already there is kept. Prints the cache directory on
# its last line.
set -euo pipefail

CACHE="${MLFLOW_OTEL_BACKENDS:-$HOME/.cache/mlflow-otel-backends}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$CACHE"
# One install at a time (CI starts one early, the test command runs it again): a second run waits
# for the first, then finds everything in place.
exec 9>"$CACHE/.install.lock"
flock 9
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
build_jaeger() {
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
}

# --- otelcol-mlflow: the collector collector-config/builder-config.yaml describes -----------------
# Built the way its users build custom collectors: the OTel Collector Builder (ocb) from the module
# proxy, then `go build`. Rebuilt when the manifest changes. Two departures from a plain
# `builder --config`, both forced by this machine's module proxy and checksum database:
# ocb's own `go mod tidy` fails on test-only dependencies of the file exporter that the proxy refuses
# (otlpencodingextension v0.140.1: "This module version is not available"), so sources are generated
# with --skip-get-modules and tidied with `-e` (test imports are not built); and sum.golang.org has no
# entry for several pinned modules (404), so this throwaway build module does not consult it.
OCB_VERSION=v0.140.0
MANIFEST="$(cd "$(dirname "$0")/../.." && pwd)/collector-config/builder-config.yaml"
STAMP="$OCB_VERSION $(sha256sum "$MANIFEST" | cut -c1-16)"
build_otelcol() {
if [ ! -x "$CACHE/otelcol-mlflow" ] || [ "$(cat "$CACHE/otelcol-mlflow.version" 2>/dev/null)" != "$STAMP" ]; then
  echo "== building otelcol-mlflow with ocb $OCB_VERSION (first time: a few minutes)" >&2
  work="$(mktemp -d)"
  (
    export GOTOOLCHAIN=local GOFLAGS=-mod=mod GOSUMDB=off
    GOBIN="$CACHE/bin" go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION" >&2
    "$CACHE/bin/builder" --config "$MANIFEST" --output-path "$work" --skip-get-modules --skip-compilation >&2
    cd "$work"
    go mod tidy -e >&2
    go build -trimpath -o "$CACHE/otelcol-mlflow.tmp" . >&2
  )
  mv "$CACHE/otelcol-mlflow.tmp" "$CACHE/otelcol-mlflow"
  echo "$STAMP" > "$CACHE/otelcol-mlflow.version"
  rm -rf "$work"
fi
}

# --- MLflow tracking servers (own venvs) ------------------------------------------------------------
# The package index serves mlflow 3.18.0 but mlflow-skinny only up to 3.17.2 (which mlflow 3.18.0
# pins), so 3.18 is installed over 3.17.2's dependency set: every module of mlflow/ is then 3.18.0
# (pip warns about the skinny/tracing pins; the server does not use them).
MLFLOW_VERSION=3.18.0
MLFLOW_PREVIOUS=3.17.2
install_mlflow() {
  local venv="$1" version="$2"
  if [ ! -x "$venv/bin/mlflow" ] || [ "$(cat "$venv/.mlflow-version" 2>/dev/null)" != "$version" ]; then
    echo "== installing MLflow $version into $venv" >&2
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet "mlflow==$MLFLOW_PREVIOUS" >&2
    if [ "$version" != "$MLFLOW_PREVIOUS" ]; then
      "$venv/bin/python" -m pip install --quiet --no-deps --force-reinstall "mlflow==$version" >&2 2>/dev/null
    fi
    "$venv/bin/python" -c "import mlflow, sys; sys.exit(mlflow.__version__ != '$version')"
    echo "$version" > "$venv/.mlflow-version"
  fi
  # MLflow's basic-auth app (`mlflow server --app-name basic-auth`, the credentials tests of
  # tests/test_mlflow_server.py) needs the `auth` extra.
  "$venv/bin/python" -c "import flask_wtf" 2>/dev/null || "$venv/bin/python" -m pip install --quiet "Flask-WTF<2" >&2
}

# --- mlflow-tracing: MLflow's production SDK (tests/test_signatures.py compares our signatures with
# its own; bench/run.sh measures it), in a venv of its own ---------------------------------------
MLFLOW_TRACING_VERSION=3.17.2
install_mlflow_tracing() {
  local venv="$CACHE/mlflow-tracing-venv"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import mlflow" 2>/dev/null; then
    echo "== installing mlflow-tracing $MLFLOW_TRACING_VERSION into $venv" >&2
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet "mlflow-tracing==$MLFLOW_TRACING_VERSION" \
      opentelemetry-exporter-otlp-proto-grpc opentelemetry-exporter-otlp-proto-http >&2
  fi
}

# --- rotel ---------------------------------------------------------------------------------------
install_rotel() {
  if ! ls "$CACHE"/rotel-venv/lib/python*/site-packages/rotel/rotel-agent >/dev/null 2>&1; then
    echo "== installing rotel" >&2
    "$PYTHON" -m venv "$CACHE/rotel-venv"
    "$CACHE/rotel-venv/bin/python" -m pip install --quiet rotel >&2
  fi
}

# --- CrewAI (own venv: crewai 1.15 pins openai 2.x and mcp 1.x, openai-agents needs mcp 2.x) -------
CREWAI_VERSION=1.15.30
CREWAI_INSTRUMENTOR_VERSION=1.1.21
install_crewai() {
  local venv="$CACHE/crewai-venv"
  if [ "$(cat "$venv/.crewai-version" 2>/dev/null)" != "$CREWAI_VERSION/$CREWAI_INSTRUMENTOR_VERSION" ]; then
    echo "== installing CrewAI $CREWAI_VERSION into $venv" >&2
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet "crewai==$CREWAI_VERSION" \
      "openinference-instrumentation-crewai==$CREWAI_INSTRUMENTOR_VERSION" >&2
    echo "$CREWAI_VERSION/$CREWAI_INSTRUMENTOR_VERSION" > "$venv/.crewai-version"
  fi
}

# --- Arize Phoenix (own venv: its server pins its own OpenTelemetry, SQLAlchemy and GraphQL stack) -----
# `phoenix serve` keeps its SQLite database under PHOENIX_WORKING_DIR; tests/backends.Phoenix starts it.
# The same venv runs tests/phoenix_reference_app.py, the app traced Phoenix's own way (its OTel
# wrapper, OpenInference's OpenAI instrumentor and span helpers, the OpenAI client): pinned, so the
# reference tests/test_phoenix.py compares against does not move. The marker holds both, so a cached
# venv from before is rebuilt.
PHOENIX_VERSION='>=20,<21'
PHOENIX_REFERENCE='arize-phoenix-otel==0.17.2 openinference-instrumentation-openai==0.1.66 openinference-semantic-conventions==0.1.42 openai==3.63.0'
install_phoenix() {
  local venv="$CACHE/phoenix-venv" marker="$PHOENIX_VERSION $PHOENIX_REFERENCE"
  if [ ! -x "$venv/bin/phoenix" ] || [ "$(cat "$venv/.phoenix-version" 2>/dev/null)" != "$marker" ]; then
    echo "== installing arize-phoenix $PHOENIX_VERSION and the reference app's packages into $venv" >&2
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    # shellcheck disable=SC2086  # the pins are separate words
    "$venv/bin/python" -m pip install --quiet "arize-phoenix$PHOENIX_VERSION" $PHOENIX_REFERENCE >&2
    "$venv/bin/python" -c "import phoenix, phoenix.otel, openinference.instrumentation.openai, openai" >&2
    echo "$marker" > "$venv/.phoenix-version"
  fi
}

# --- Chromium (Debian's packages; the package index's own browser downloads are unreachable) -----
install_chromium() {
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "== installing chromium and chromium-driver" >&2
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2
    else
      echo "chromium is missing and this user cannot apt-get install it" >&2
      return 1
    fi
  fi
}

# Side by side; each job's log goes to stderr, its status is checked below.
pids=()
names=()
run() { "$@" & pids+=("$!"); names+=("$1"); }
run build_jaeger
run build_otelcol
run install_mlflow "$CACHE/mlflow-venv" "$MLFLOW_VERSION"
run install_mlflow "$CACHE/mlflow317-venv" "$MLFLOW_PREVIOUS"
run install_mlflow_tracing
run install_rotel
run install_crewai
run install_phoenix
run install_chromium
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "== ${names[$i]} failed" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1

echo "$CACHE"
