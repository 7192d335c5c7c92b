#!/usr/bin/env python
"""P3 (needs a CUDA GPU): seconds per image of ComfyUI + this pack vs diffusers' StableDiffusionXLPipeline with
TCDScheduler, SDXL-architecture UNet with random weights (timing only), 1024x1024, 4 steps, cfg 1, gamma/eta 0.3,
same GPU, same dtype, batch 1. Both sides produce latents (no VAE decode, no text encoders: the same random
conditioning tensors go to both), so what is timed is the sampling loop: the UNet calls plus each side's overhead.

Usage (on the GPU machine, in the venv the tests use, with a CUDA build of torch):
    bash bench/run.sh bench_p3_sdxl_gpu.py [--dtype fp16|bf16] [--reps 5]
    bash bench/run.sh bench_p3_sdxl_gpu.py --smoke        # tiny widths on any device: checks the script only
Prints a markdown table with the GPU name and the ratio ComfyUI+pack / diffusers.
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time

from bench_host import start_host

# SDXL's UNet in both libraries' terms. Smoke: the same layout, narrow (checks the code path on a CPU in seconds).
FULL = dict(ch=320, ctx=2048, pooled=1280, depth=[0, 0, 2, 2, 10, 10], depth_out=[0, 0, 0, 2, 2, 2, 10, 10, 10],
            mid=10, heads=(5, 10, 20), px=1024)
SMOKE = dict(ch=32, ctx=64, pooled=32, depth=[0, 0, 1, 1, 2, 2], depth_out=[0, 0, 0, 1, 1, 1, 2, 2, 2],
             mid=2, heads=(1, 1, 2), px=128)


def comfy_side(spec, dtype, device, steps, gamma):
    import torch

    host = start_host()  # first: it puts the host on sys.path and loads the pack as a custom node
    import comfy.model_patcher
    import comfy.supported_models

    import tcd_test_models as tm
    cfg = {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
           "legacy": False, "num_classes": "sequential", "adm_in_channels": spec["pooled"] + 6 * 256,
           "in_channels": 4, "model_channels": spec["ch"], "num_res_blocks": [2, 2, 2],
           "transformer_depth": spec["depth"], "channel_mult": [1, 2, 4], "transformer_depth_middle": spec["mid"],
           "use_linear_in_transformer": True, "context_dim": spec["ctx"], "num_head_channels": 64,
           "transformer_depth_output": spec["depth_out"], "use_temporal_attention": False,
           "use_temporal_resblock": False}
    mc = comfy.supported_models.SDXL(cfg)
    mc.set_inference_dtype(dtype, None)
    base = mc.get_model({}, device=torch.device("cpu"))
    tm.init_weights(base.diffusion_model, 0)  # the host's layers skip initialisation: fill them (U(+-1/sqrt(fan_in)))
    patcher = comfy.model_patcher.ModelPatcher(base, load_device=device, offload_device=torch.device("cpu"))

    def run(cond, pooled, seed):
        c = [[cond.cpu().float(), {"pooled_output": pooled.cpu().float(), "width": spec["px"],
                                   "height": spec["px"]}]]
        latent = {"samples": torch.zeros(1, 4, spec["px"] // 8, spec["px"] // 8)}
        (out,) = host.call("TCDKSampler", model=patcher, seed=seed, steps=steps, cfg=1.0, gamma=gamma,
                           scheduler="tcd", positive=c, negative=c, latent_image=latent, denoise=1.0)
        return out["samples"]
    return run


def diffusers_side(spec, dtype, device, steps, gamma):
    import torch
    from diffusers import StableDiffusionXLPipeline, TCDScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=spec["px"] // 8, in_channels=4, out_channels=4, layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(spec["ch"], spec["ch"] * 2, spec["ch"] * 4),
        transformer_layers_per_block=(spec["depth"][0], spec["depth"][2], spec["depth"][4]),
        attention_head_dim=spec["heads"], cross_attention_dim=spec["ctx"], use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=spec["pooled"] + 6 * 256, norm_num_groups=32,
    ).to(device=device, dtype=dtype)
    sched = TCDScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", timestep_spacing="leading", steps_offset=1)
    pipe = StableDiffusionXLPipeline(vae=None, text_encoder=None, text_encoder_2=None, tokenizer=None,
                                     tokenizer_2=None, unet=unet, scheduler=sched, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)

    def run(cond, pooled, seed):
        out = pipe(prompt_embeds=cond.to(device, dtype), pooled_prompt_embeds=pooled.to(device, dtype),
                   height=spec["px"], width=spec["px"], num_inference_steps=steps, guidance_scale=1.0, eta=gamma,
                   generator=torch.Generator(device).manual_seed(seed), output_type="latent")
        return out.images
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--gamma", type=float, default=0.3)
    ap.add_argument("--smoke", action="store_true", help="narrow UNet, 128 px: check the script on any device")
    a = ap.parse_args()

    import torch
    if not torch.cuda.is_available() and not a.smoke:
        sys.exit("P3 needs a CUDA GPU (or --smoke to check the script on a CPU)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[a.dtype]
    if device.type == "cpu":
        dtype = torch.float32
    spec = SMOKE if a.smoke else FULL

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    sides = {"ComfyUI + pack (TCDKSampler)": comfy_side(spec, dtype, device, a.steps, a.gamma),
             "diffusers SDXL pipeline + TCDScheduler": diffusers_side(spec, dtype, device, a.steps, a.gamma)}
    g = torch.Generator().manual_seed(7)
    cond = torch.randn(1, 77, spec["ctx"], generator=g)
    pooled = torch.randn(1, spec["pooled"], generator=g)
    for run in sides.values():  # warm-up (model load to the GPU, kernels, allocator)
        for _ in range(2):
            out = run(cond, pooled, 1)
            assert torch.isfinite(out.float()).all()
    times = {k: [] for k in sides}
    names = list(sides)
    for r in range(a.reps):
        for k in (names if r % 2 == 0 else names[::-1]):
            sync()
            t = time.perf_counter()
            sides[k](cond, pooled, 100 + r)
            sync()
            times[k].append(time.perf_counter() - t)
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU (smoke run: not a P3 figure)"
    print(f"\nP3 - SDXL-architecture UNet, random weights, {spec['px']}x{spec['px']}, {a.steps} steps, cfg 1, "
          f"gamma/eta {a.gamma}, {str(dtype).replace('torch.', '')}, batch 1")
    print(f"date {datetime.date.today().isoformat()}; device {gpu}; torch {torch.__version__}")
    print("\n| side | s/image (median) | s/image (min) |\n|---|---:|---:|")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"| {k} | {med[k]:.3f} | {min(v):.3f} |")
    print(f"\nratio ComfyUI+pack / diffusers (median): {med[names[0]] / med[names[1]]:.3f}")


if __name__ == "__main__":
    main()
