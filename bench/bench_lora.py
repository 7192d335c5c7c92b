"""Benchmark: load + apply + first sampling step for the same LoRA through Load TCD LoRA and through the host's
LoraLoader, interleaved in one process on the tiny SDXL-shaped test model, CPU. Prints the medians and the ratio
(goal: TCD / host <= 1.05).

    COMFYUI_PATH=... python bench/bench_lora.py [--rounds 15] [--rank 8]

Each timed run: a fresh loader instance and an empty file cache (the file is read), the loader's function, then one
TCD sampling step, which makes the host load the model and compute every patched weight (the LoRA's real cost).
The model is unloaded between runs, outside the timing. The LoRA is a kohya file with every TCD target module (the
format the host maps fully by itself, so both loaders apply the very same patches).
"""
import argparse
import gc
import statistics
import sys
import time

from bench_host import start_host


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--rank", type=int, default=8)
    args = ap.parse_args()

    import safetensors.torch
    import torch

    host = start_host()
    import comfy.model_management as mm

    import tcd_lora_files as F
    model, clip, _vae = host.call("CheckpointLoaderSimple", ckpt_name=host.checkpoint(0))
    lora_mod = sys.modules[host.nodes.NODE_CLASS_MAPPINGS["TCDLoraLoader"].__module__]
    sd, _ = F.make_lora("kohya_ldm", model.model, None, rank=args.rank, seed=0, dtype=torch.float16)
    n_modules = sum(k.endswith(".lora_up.weight") for k in sd)
    name = "bench_tcd_layout.safetensors"
    safetensors.torch.save_file(sd, str(host.models / "loras" / name))
    (cond,) = host.call("CLIPTextEncode", clip=clip, text="a fox")
    latent = {"samples": torch.zeros(1, 4, 32, 32)}

    def tcd():
        lora_mod.clear_cache()
        m, _report = host.call("TCDLoraLoaderModelOnly", model=model, lora_name=name, strength_model=1.0)
        return m

    def stock():
        (m,) = host.call("LoraLoaderModelOnly", model=model, lora_name=name, strength_model=1.0)
        return m

    def timed(fn, step=True):
        mm.unload_all_models()
        gc.collect()  # outside the timing: a garbage collection inside one run would land on either side at random
        t = time.perf_counter()
        m = fn()
        if not step:
            return time.perf_counter() - t
        host.call("TCDKSampler", model=m, seed=0, steps=1, cfg=1.0, gamma=0.3, scheduler="tcd", positive=cond,
                  negative=cond, latent_image=latent, denoise=1.0)
        dt = time.perf_counter() - t
        assert len(m.patches) == n_modules, "the LoRA was not fully applied"
        return dt

    timed(tcd), timed(stock)  # warm-up (first sampling run compiles/allocates)

    def interleaved(rounds, step):
        times = {"tcd": [], "host": []}
        for r in range(rounds):
            order = (("tcd", tcd), ("host", stock)) if r % 2 == 0 else (("host", stock), ("tcd", tcd))
            for key, fn in order:
                times[key].append(timed(fn, step))
        return times, {k: statistics.median(v) for k, v in times.items()}

    print(f"LoRA: {n_modules} modules, rank {args.rank}, fp16; tiny SDXL-shaped model, CPU; interleaved rounds")
    results = {}
    for label, rounds, step in (("load + apply only", 4 * args.rounds, False),
                                ("load + apply + first sampling step", args.rounds, True)):
        times, med = interleaved(rounds, step)
        print(f"{label} ({rounds} rounds):")
        for k in ("tcd", "host"):
            print(f"  {k:5s} median {med[k] * 1000:8.1f} ms   runs " + " ".join(f"{t * 1000:.0f}" for t in times[k]))
        results[label] = med["tcd"] / med["host"]
        print(f"  ratio TCDLoraLoader / host LoraLoader = {results[label]:.3f}")
    mm.unload_all_models()
    ratio = results["load + apply + first sampling step"]
    print(f"ratio TCDLoraLoader / host LoraLoader (load + apply + first step) = {ratio:.3f} (goal <= 1.05)")
    return ratio


if __name__ == "__main__":
    main()
