#!/usr/bin/env bash
# Set up (as scripts/test.sh does) and run every benchmark against real local servers.
#   bash scripts/bench.sh [hit] [cold] [stampede] [sync] [fire]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
install_into_venv '.[dev]'
exec .venv/bin/python -m benchmarks.run "$@"
