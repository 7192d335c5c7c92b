#!/usr/bin/env python
"""Gamma sweeps and gamma-only re-queues: wall time and model calls, from one run per model.

  A. a 6-gamma TCD Gamma Sweep (one node, the first model call shared) vs six separate TCD Sampler runs with the
     first-step cache switched off (what a user paid before: change gamma, queue again, six times);
     expected time ratio near (1 + 6 (S - 1)) / (6 S) = 19/24 = 0.79 at S = 4 steps;
  B. a TCD Sampler re-queue with only gamma changed (first step from the cache) vs a full run;
     expected near (S - 1) / S = 0.75.

Models (random weights, seeded; timing only), all through the real host's node functions in this process:
  * tiny    - the test suite's TinySDXL checkpoint (SDXL layout, 32 channels), 64x64 px (8x8 latent);
  * tiny512 - the same model at 512x512 px (64x64 latent): model calls dominate;
  * sd15    - an SD1.5-architecture UNet at its real widths (~860M parameters), 256x256 px (32x32 latent).

Usage:  COMFYUI_PATH=/path/to/ComfyUI python bench/bench_sweep.py [--models tiny,tiny512] [--reps 3] [--steps 4]
Model calls are counted with a wrapper installed through the host's model-function wrapper hook.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

from bench_host import start_host

GAMMAS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
CALLS = {"n": 0}


def counting(apply_model, args):
    CALLS["n"] += 1
    return apply_model(args["input"], args["timestep"], **args["c"])


def build_models(host, names):
    import torch

    import tcd_test_models as tm

    out = {}
    if {"tiny", "tiny512"} & set(names):
        model, clip = host.call("CheckpointLoaderSimple", ckpt_name=host.checkpoint(0))[:2]
        model = model.clone()
        model.set_model_unet_function_wrapper(counting)
        cond = host.call("CLIPTextEncode", clip=clip, text="a red fox in the snow")[0]
        if "tiny" in names:
            out["tiny"] = dict(model=model, cond=cond, latent=(1, 4, 8, 8),
                               label="TinySDXL (32 ch), 64x64 px (8x8 latent)")
        if "tiny512" in names:
            out["tiny512"] = dict(model=model, cond=cond, latent=(1, 4, 64, 64),
                                  label="TinySDXL (32 ch), 512x512 px (64x64 latent)")
    if "sd15" in names:
        g = torch.Generator().manual_seed(123)
        model, n = tm.sd15_random_model(1)
        model.set_model_unet_function_wrapper(counting)
        out["sd15"] = dict(model=model, cond=[[torch.randn(1, 77, 768, generator=g), {}]], latent=(1, 4, 32, 32),
                           label=f"SD1.5 UNet ({n / 1e6:.0f}M params), 256x256 px (32x32 latent)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="tiny,tiny512")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()

    host = start_host()
    import torch
    cache = sys.modules[host.pack.__name__ + ".nodes.cache"]
    names = [m.strip() for m in a.models.split(",") if m.strip()]
    models = build_models(host, names)
    gammas_text = ", ".join(f"{g:g}" for g in GAMMAS)

    def timed(fn):
        """(wall seconds, CPU seconds of this process, model calls, result): CPU time is less disturbed by other
        processes on a shared machine."""
        CALLS["n"] = 0
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        return (time.perf_counter() - t, time.process_time() - c), CALLS["n"], out

    def single(m, seed, gamma, use_cache):
        cache.ENABLED = use_cache
        try:
            latent = {"samples": torch.zeros(m["latent"])}
            return host.call("TCDKSampler", model=m["model"], seed=seed, steps=a.steps, cfg=1.0, gamma=gamma,
                             scheduler="tcd", positive=m["cond"], negative=m["cond"], latent_image=latent, denoise=1.0)
        finally:
            cache.ENABLED = True

    def sweep(m, seed):
        cache.clear()  # a cold sweep: nothing from earlier runs
        latent = {"samples": torch.zeros(m["latent"])}
        return host.call("TCDGammaSweep", model=m["model"], seed=seed, steps=a.steps, cfg=1.0, gammas=gammas_text,
                         scheduler="tcd", positive=m["cond"], negative=m["cond"], latent_image=latent, denoise=1.0)

    rows = []
    for name in names:
        m = models[name]
        single(m, 1, 0.3, False)  # warm-up: model load, allocator
        res = {k: [] for k in ("sweep", "six", "requeue", "full")}
        calls = {}
        for r in range(a.reps):
            seed = 1000 + r
            pair = {}
            # interleaved, alternating order, so that a change in the machine's load hits both sides alike
            for kind in (("sweep", "six") if r % 2 == 0 else ("six", "sweep")):
                if kind == "sweep":
                    dt, calls[kind], out = timed(lambda m=m, seed=seed: sweep(m, seed)[0]["samples"])
                else:
                    dt, calls[kind], out = timed(lambda m=m, seed=seed: torch.cat(
                        [single(m, seed, g, False)[0]["samples"] for g in GAMMAS]))
                res[kind].append(dt)
                pair[kind] = out
            assert torch.equal(pair["sweep"], pair["six"]), "sweep != separate runs"
            for kind in (("requeue", "full") if r % 2 == 0 else ("full", "requeue")):
                if kind == "requeue":
                    cache.clear()
                    single(m, seed + 500, 0.3, True)  # the run being re-queued (fills the cache)
                    dt, calls[kind], out = timed(lambda m=m, seed=seed: single(m, seed + 500, 0.7, True)[0]["samples"])
                else:
                    dt, calls[kind], out = timed(lambda m=m, seed=seed: single(m, seed + 500, 0.7, False)[0]["samples"])
                res[kind].append(dt)
                pair[kind] = out
            assert torch.equal(pair["requeue"], pair["full"]), "cached != uncached"
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in res.items()}
        rows.append((m["label"], a.reps, med, calls))
        print(f"{name}: done", flush=True)

    s = a.steps
    print()
    print(f"Gamma sweep and gamma-only re-queue, TCD scheduler, {s} steps, cfg 1, batch 1, {a.reps} repetition(s), "
          f"medians")
    print(f"date {datetime.date.today().isoformat()}; machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__} ({'CUDA' if torch.cuda.is_available() else 'CPU'}), {platform.python_version()}")
    print()
    print("| model | time | 6-gamma sweep s (calls) | 6 separate runs s (calls) | ratio (expected) "
          "| gamma-only re-queue s (calls) | full run s (calls) | ratio (expected) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, _reps, med, calls in rows:
        for i, clock in enumerate(("wall", "CPU")):
            print(f"| {label} | {clock} | {med['sweep'][i]:.3f} ({calls['sweep']}) "
                  f"| {med['six'][i]:.3f} ({calls['six']}) "
                  f"| {med['sweep'][i] / med['six'][i]:.3f} ({(1 + 6 * (s - 1)) / (6 * s):.3f}) "
                  f"| {med['requeue'][i]:.3f} ({calls['requeue']}) | {med['full'][i]:.3f} ({calls['full']}) "
                  f"| {med['requeue'][i] / med['full'][i]:.3f} ({(s - 1) / s:.3f}) |")


if __name__ == "__main__":
    main()
