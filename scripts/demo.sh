#!/usr/bin/env bash
# The demo on a fresh machine: install, start a local Directus with sample prompt sets, sync
# them into the embedded file mirror, check the stack, then a cache hit, an edit arriving live,
# a cold start (Directus frozen) and the failover once Directus is killed. Cleans up the
# server it started; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
install_into_venv .
exec .venv/bin/python -m devserver.demo
