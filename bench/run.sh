#!/usr/bin/env bash
# Run one bench script with the cached host and venv the tests use (set up on first run, like scripts/test.sh).
# Usage: bash bench/run.sh bench_p1.py [args...]   (TCD_HOST / TCD_COMFYUI pick the host, as for the tests)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
ensure_host_env
export COMFYUI_PATH="$HOST"
script="$1"; shift
exec "$VENV/bin/python" "$ROOT/bench/$script" "$@"
