#!/usr/bin/env bash
# The whole test suite on a fresh machine: a virtualenv with the project and its test extra, the real
# backends (Jaeger v2, the repository's collector, MLflow servers, rotel, Chromium; cached outside
# the repo by tests/backends/install.sh), then pytest on two workers (pytest-xdist).
# The backends install in the background while the virtualenv is made: the Go builds take most of
# the time on a fresh machine. Extra arguments go to pytest, e.g. `bash tests/run.sh -k jaeger`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
log="$(mktemp)"
bash tests/backends/install.sh >"$log" 2>&1 &
backends=$!

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

if ! wait "$backends"; then
  cat "$log" >&2
  echo "installing the test backends failed" >&2
  exit 1
fi
rm -f "$log"
# Two workers: one per core; the backend fixtures are per worker, the tests independent.
.venv/bin/python -m pytest -q -n "${PYTEST_WORKERS:-2}" "$@"
