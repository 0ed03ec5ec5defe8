#!/usr/bin/env bash
# Set up (as scripts/test.sh does) and run every benchmark against real local servers.
#   bash scripts/bench.sh [hit] [cold] [stampede] [sync] [fire]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
exec .venv/bin/python -m benchmarks.run "$@"
