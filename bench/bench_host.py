"""The one host start-up for every benchmark: the host that bench/run.sh set up (COMFYUI_PATH), loaded in this
process with the pack as a custom node, tests/ on sys.path for the test models (never the repository root: its
nodes/ package would shadow the host's nodes.py), the console progress bar off (same for every sampler timed)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))


def start_host():
    """The in-process host (tests/tcd_host.py), started once."""
    if not os.environ.get("COMFYUI_PATH"):
        raise SystemExit("COMFYUI_PATH is not set: run benchmarks with `make bench B=<script>` (bench/run.sh)")
    from tcd_host import get_host
    host = get_host()
    import comfy.utils
    comfy.utils.PROGRESS_BAR_ENABLED = False
    return host
