#!/usr/bin/env python
"""P1: wall time of the pack's TCD Sampler (TCDKSampler) vs the host's KSampler with sampler 'euler', same model, same
steps, same latent, cfg 1 (one model call per step on both sides), interleaved in one process, one run.

Models (random weights, seeded; timing only):
  * tiny   - the test suite's TinySDXL (SDXL layout, 32 channels), 8x8 latent: model calls are cheap, so any
             per-step overhead of the sampler shows up here first;
  * sd15   - SD1.5-architecture UNet at its real widths (model_channels 320, ~860M parameters), 256x256 image
             (32x32 latent): a mid-size model where model calls dominate.

The host is ComfyUI in this process (tests/tcd_host.py: the real node classes, the pack loaded as a custom node).
Both samplers get the same seed per repetition, and a fresh seed each repetition (so no cache can skip work).

Usage:  bash bench/run.sh bench_p1.py            (sets up the cached host and venv, then runs this)
        COMFYUI_PATH=/path/to/ComfyUI python bench/bench_p1.py [--models tiny,sd15] [--reps-tiny 30] [--reps-sd15 6]
Prints a markdown table of seconds per run and the ratio TCD / euler (goal: <= 1.01).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

from bench_host import start_host


def build_models(names):
    import comfy.model_management
    import comfy.model_patcher
    import torch

    import tcd_test_models as tm

    dev, off = comfy.model_management.get_torch_device(), torch.device("cpu")
    g = torch.Generator().manual_seed(123)
    out = {}
    if "tiny" in names:
        base = tm.TinySDXL(dict(tm.TINY_UNET)).get_model({}, device=off)
        tm.init_weights(base.diffusion_model, 0)
        cond = [[torch.randn(1, 77, 64, generator=g), {"pooled_output": torch.randn(1, 32, generator=g)}]]
        out["tiny"] = dict(model=comfy.model_patcher.ModelPatcher(base, load_device=dev, offload_device=off),
                           cond=cond, latent=(1, 4, 8, 8), label="TinySDXL (32 ch), 64x64 px (8x8 latent)")
    if "sd15" in names:
        model, n = tm.sd15_random_model(1)
        cond = [[torch.randn(1, 77, 768, generator=g), {}]]
        out["sd15"] = dict(model=model, cond=cond, latent=(1, 4, 32, 32),
                           label=f"SD1.5 UNet ({n / 1e6:.0f}M params), 256x256 px (32x32 latent)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="tiny,sd15")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--gamma", type=float, default=0.3)
    ap.add_argument("--reps-tiny", type=int, default=30)
    ap.add_argument("--reps-sd15", type=int, default=6)
    a = ap.parse_args()

    host = start_host()
    import torch
    names = [m.strip() for m in a.models.split(",") if m.strip()]
    t0 = time.perf_counter()
    models = build_models(names)
    print(f"built {', '.join(models)} in {time.perf_counter() - t0:.1f}s", flush=True)

    def run(kind, m, seed):
        latent = {"samples": torch.zeros(m["latent"])}
        t = time.perf_counter()
        common = dict(model=m["model"], seed=seed, steps=a.steps, cfg=1.0, positive=m["cond"], negative=m["cond"],
                      latent_image=latent, denoise=1.0)
        if kind == "tcd":
            (out,) = host.call("TCDKSampler", gamma=a.gamma, scheduler="tcd", **common)
        else:
            (out,) = host.call("KSampler", sampler_name="euler", scheduler="simple", **common)
        dt = time.perf_counter() - t
        assert torch.isfinite(out["samples"]).all()
        return dt

    rows = []
    for name in names:
        m = models[name]
        reps = a.reps_tiny if name == "tiny" else a.reps_sd15
        for kind in ("tcd", "euler", "tcd", "euler"):  # warm-up: model load, allocator, first-call costs
            run(kind, m, 1)
        times = {"tcd": [], "euler": []}
        for r in range(reps):
            order = ("tcd", "euler") if r % 2 == 0 else ("euler", "tcd")  # interleaved, alternating order
            for kind in order:
                times[kind].append(run(kind, m, 1000 + r))
        med = {k: statistics.median(v) for k, v in times.items()}
        mn = {k: min(v) for k, v in times.items()}
        rows.append((m["label"], reps, med["tcd"], med["euler"], med["tcd"] / med["euler"], mn["tcd"] / mn["euler"]))
        print(f"{name}: done ({reps} interleaved pairs)", flush=True)

    print()
    print(f"P1 - TCDKSampler (scheduler 'tcd', gamma {a.gamma}) vs host KSampler (euler, 'simple'), {a.steps} steps, "
          f"cfg 1, batch 1")
    print(f"date {datetime.date.today().isoformat()}; machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__} ({'CUDA' if torch.cuda.is_available() else 'CPU'}), {platform.python_version()}")
    print()
    print("| model | pairs | TCD s/run (median) | euler s/run (median) | ratio TCD/euler (median) | ratio (min) |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, reps, t_tcd, t_eu, r_med, r_min in rows:
        print(f"| {label} | {reps} | {t_tcd:.4f} | {t_eu:.4f} | {r_med:.3f} | {r_min:.3f} |")
    worst = max(r[4] for r in rows)
    print(f"\nworst median ratio {worst:.3f} (goal <= 1.01): {'MET' if worst <= 1.01 else 'NOT MET'}")


if __name__ == "__main__":
    main()
