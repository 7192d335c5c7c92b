#!/usr/bin/env bash
# make lint: ruff (pinned, in a small cached virtualenv of its own) over the whole pack, as configured in pyproject.toml.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${TCD_CACHE:-$HOME/.cache/comfyui-tcd}"
RUFF_VERSION=0.17.6
VENV="$CACHE/venv-lint-ruff-$RUFF_VERSION"
if [ ! -x "$VENV/bin/ruff" ]; then
  mkdir -p "$CACHE"; rm -rf "$VENV"
  "${TCD_BOOTSTRAP_PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q "ruff==$RUFF_VERSION" 2>&1 | grep -v "is ignored" >&2 || true
fi
cd "$ROOT"
"$VENV/bin/ruff" check "$@" .
