#!/usr/bin/env bash
# Run one bench script with the cached host and venv the tests use (set up on first run, like scripts/test.sh).
# Usage: bash bench/run.sh bench_p1.py [args...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
ensure_venv
ensure_host
export COMFYUI_PATH="${COMFYUI_PATH:-$HOST}"
script="$1"; shift
exec "$VENV/bin/python" "$ROOT/bench/$script" "$@"
