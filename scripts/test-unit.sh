#!/usr/bin/env bash
# make test-unit: every test that needs no host, server or browser (the pure math, the noise stream, the parity with
# diffusers, the packaging rules), in seconds, with the default host's cached virtualenv (set up on first use).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ensure_host_env
cd "$ROOT"
exec "$VENV/bin/python" -m pytest -q -m "not host and not server and not browser" "$@"
