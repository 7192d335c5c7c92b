#!/usr/bin/env bash
# The one test command: sets up (cached) the chosen ComfyUI host, its dependencies and Chromium, then runs every test
# (unit parity, in-process host, real server, real frontend in headless Chromium) against that host.
# Usage: scripts/test.sh [pytest args...]
# Env (the Makefile sets them): TCD_HOST=v0.3.75|v0.33.0, TCD_COMFYUI=/path/to/ComfyUI, TCD_PYTHON, TCD_CACHE.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
start=$(date +%s)
ensure_host_env
ensure_chromium
export COMFYUI_PATH="$HOST"
export TCD_CROSS_HOST_DIR="${TCD_CROSS_HOST_DIR:-$CACHE/cross-host}"
cd "$ROOT"
log "set-up took $(( $(date +%s) - start ))s; running tests against ComfyUI $(host_version) at $COMFYUI_PATH"
set +e
"$VENV/bin/python" -m pytest -s "$@"
rc=$?
set -e
log "tests took $(( $(date +%s) - start ))s in all (exit $rc) on ComfyUI $(host_version)"
exit $rc
