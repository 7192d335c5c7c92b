#!/usr/bin/env bash
# make docs-images: redraw the pictures in docs/images that the README and docs/*.md show, on purpose (a test run
# never writes them: the tests put their pictures in a temporary folder). It runs the three tests that take them, on
# the default host (ComfyUI v0.3.75, whose frontend 1.32.9 the pictures show), with TCD_DOCS_IMAGES=docs/images:
#   tests/test_workflows_browser.py  docs/images/workflow_<name>.png, each example workflow loaded in the frontend
#   tests/test_gamma_slider_browser.py  docs/images/gamma_slider_strip.png, TCD Sampler at gamma 0, 0.3, 0.6, 1
#   tests/test_sweep.py  docs/images/gamma_sweep_grid.png, a 6-gamma sweep in a Labelled Image Grid
# Usage: scripts/docs-images.sh [pytest args...]   (then review and commit docs/images)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${TCD_COMFYUI:-}" ] || [ "${TCD_HOST:-v0.3.75}" != v0.3.75 ]; then
  echo "[docs-images] the docs' pictures are taken on the default host (ComfyUI v0.3.75, frontend 1.32.9): run" \
       "'make docs-images' without HOST= or COMFYUI=" >&2
  exit 2
fi
export TCD_DOCS_IMAGES="$ROOT/docs/images"
exec bash "$ROOT/scripts/test.sh" \
  tests/test_workflows_browser.py::test_workflow_loads_converts_and_runs \
  tests/test_gamma_slider_browser.py \
  tests/test_sweep.py::test_sweep_shares_the_first_call "$@"
