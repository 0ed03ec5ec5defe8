#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run the checks and the tests.
#   bash scripts/test.sh [pytest args...]
# Installs the Python package with its dev extras into .venv, Node 22 and Directus (from the
# npm registry) into ~/.cache/storybench-prompts-dev, then runs ruff, mypy and pytest. The
# tests start their own Directus and nx-27017 (MongoDB wire protocol) servers on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    "$PYTHON" -m venv .venv
fi
echo "== installing the package and its dev dependencies"
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'

echo "== installing Node 22 and Directus (cached after the first run)"
.venv/bin/python -m devserver.directus template >/dev/null

echo "== lint and types"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy --strict storybench_prompts

echo "== tests"
.venv/bin/python -m pytest "$@"
