#!/usr/bin/env bash
# Serve ComfyUI with this pack loaded.
#   scripts/serve.sh [--port 8188]               the embedded ComfyUI v0.3.75 (TCD_HOST=v0.33.0: the newest release)
#   TCD_COMFYUI=/path/to/ComfyUI scripts/serve.sh  your own ComfyUI, run by its Python (TCD_PYTHON, default python3)
# The pack is linked into your ComfyUI's custom_nodes/ folder; a cached host stays unmodified (the pack comes in
# through an extra custom_nodes folder). CPU is used when there is no CUDA GPU.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
PORT=8188
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    *) log "unknown argument $1"; exit 2 ;;
  esac
done
extra=()
# the pack's folder under custom_nodes: its registry name, [project] name in pyproject.toml (as the README installs it)
PACK="$(sed -n '/^\[project\]/,/^\[/s/^name = "\([^"]*\)"$/\1/p' "$ROOT/pyproject.toml")"
if [ "$HOST_KIND" = user ]; then
  RUNPY="$USER_PY"
  mkdir -p "$HOST/custom_nodes"
  old="$HOST/custom_nodes/comfyui-tcd"  # this checkout's link under the pack's former folder name: two copies would load
  if [ -L "$old" ] && [ "$(readlink -f "$old")" = "$ROOT" ]; then rm "$old"; fi
  [ -e "$HOST/custom_nodes/$PACK" ] || ln -s "$ROOT" "$HOST/custom_nodes/$PACK"
else
  ensure_host_env
  RUNPY="$VENV/bin/python"
  nodes_dir="$CACHE/serve-custom-nodes"
  mkdir -p "$nodes_dir"; find "$nodes_dir" -maxdepth 1 -type l ! -name "$PACK" -delete  # only this pack's link
  ln -sfn "$ROOT" "$nodes_dir/$PACK"
  printf 'tcd_serve:\n  base_path: %s\n  custom_nodes: serve-custom-nodes\n' "$CACHE" > "$CACHE/serve-paths.yaml"
  extra+=(--extra-model-paths-config "$CACHE/serve-paths.yaml")
fi
"$RUNPY" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null || extra+=(--cpu)
log "serving $HOST on http://127.0.0.1:$PORT ${extra[*]:-}"
cd "$HOST"
exec "$RUNPY" main.py --listen 127.0.0.1 --port "$PORT" "${extra[@]}"
