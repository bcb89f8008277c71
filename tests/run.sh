#!/usr/bin/env bash
# The whole test suite on a fresh machine: a virtualenv with the project and its test extra, the real
# backends (Jaeger v2, MLflow server, rotel; cached outside the repo), then pytest.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -k jaeger`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
bash tests/backends/install.sh >/dev/null
.venv/bin/python -m pytest -q "$@"
