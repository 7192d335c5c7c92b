#!/usr/bin/env bash
# The one test command: sets up (cached) the embedded ComfyUI v0.3.75 host, its dependencies and Chromium, then runs
# every test (unit parity, in-process host, real server, real frontend in headless Chromium).
# Usage: scripts/test.sh [pytest args...]      Env: COMFYUI_PATH (default: the embedded host), TCD_CACHE.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
start=$(date +%s)
ensure_venv
ensure_host
ensure_chromium
export COMFYUI_PATH="${COMFYUI_PATH:-$HOST}"
cd "$ROOT"
log "set-up took $(( $(date +%s) - start ))s; running tests against $COMFYUI_PATH"
set +e
"$VENV/bin/python" -m pytest -s "$@"
rc=$?
set -e
log "tests took $(( $(date +%s) - start ))s in all (exit $rc)"
exit $rc
