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
extra=()
if [ -n "$COMFY" ]; then
  [ -f "$COMFY/main.py" ] || { echo "no ComfyUI at $COMFY (main.py missing)" >&2; exit 2; }
  RUNPY="${PYTHON:-python3}"
  # A user's ComfyUI: install the pack the usual way, as custom_nodes/comfyui-tcd (a link to this checkout).
  mkdir -p "$COMFY/custom_nodes"
  [ -e "$COMFY/custom_nodes/comfyui-tcd" ] || ln -s "$ROOT" "$COMFY/custom_nodes/comfyui-tcd"
else
  ensure_venv; ensure_host
  COMFY="$HOST"; RUNPY="$VENV/bin/python"
  # The shared embedded host stays unmodified: the pack is added through an extra custom_nodes folder.
  nodes_dir="$CACHE/serve-custom-nodes"
  mkdir -p "$nodes_dir"; ln -sfn "$ROOT" "$nodes_dir/comfyui-tcd"
  printf 'comfyui_tcd:\n  base_path: %s\n  custom_nodes: serve-custom-nodes\n' "$CACHE" > "$CACHE/serve-paths.yaml"
  extra+=(--extra-model-paths-config "$CACHE/serve-paths.yaml")
fi
"$RUNPY" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null || extra+=(--cpu)
log "serving $COMFY on http://127.0.0.1:$PORT ${extra[*]:-}"
cd "$COMFY"
exec "$RUNPY" main.py --listen 127.0.0.1 --port "$PORT" "${extra[@]}"
