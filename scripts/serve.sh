#!/usr/bin/env bash
# Serve ComfyUI with this pack loaded.
#   scripts/serve.sh /path/to/ComfyUI [--port 8188]  use an existing ComfyUI (its own python: PYTHON=... to override)
#   scripts/serve.sh [--port 8188]                   use the embedded ComfyUI v0.3.75 from PyPI (set up on first run)
# The pack is linked into the chosen ComfyUI's custom_nodes/ folder; CPU is used when there is no CUDA GPU.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
PORT=8188
COMFY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    *) COMFY="$1"; shift ;;
  esac
done
if [ -n "$COMFY" ]; then
  [ -f "$COMFY/main.py" ] || { echo "no ComfyUI at $COMFY (main.py missing)" >&2; exit 2; }
  RUNPY="${PYTHON:-python3}"
else
  ensure_venv; ensure_host
  COMFY="$HOST"; RUNPY="$VENV/bin/python"
fi
mkdir -p "$COMFY/custom_nodes"
[ -e "$COMFY/custom_nodes/comfyui-tcd" ] || ln -s "$ROOT" "$COMFY/custom_nodes/comfyui-tcd"
extra=()
"$RUNPY" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null || extra+=(--cpu)
log "serving $COMFY on http://127.0.0.1:$PORT ${extra[*]:-}"
cd "$COMFY"
exec "$RUNPY" main.py --listen 127.0.0.1 --port "$PORT" "${extra[@]}"
