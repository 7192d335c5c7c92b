#!/usr/bin/env python3
"""Regenerate workflows/*.json (UI format), workflows/api/*.json (API format) and the template thumbnails
(workflows/*.jpg) from the live ComfyUI frontend.

Each graph below is built inside the real frontend with the LiteGraph API (createNode / connect / widget values), then
exported the way the frontend exports a workflow (``app.graphToPrompt()``: ``workflow`` is the UI file, ``output`` the
API prompt), loaded back to check it, and photographed for the template browser's thumbnail. Nothing is hand-written,
so widget order (seed's control-after-generate value included) is the frontend's own.

Usage:  COMFYUI_PATH=/path/to/ComfyUI python scripts/make_workflows.py [--url http://127.0.0.1:8188] [names...]
        ... scripts/make_workflows.py --thumbnails-only [names...]   (thumbnails for any workflow file)
Without --url a throw-away server (tests/tcd_server.py) is started with this pack loaded. Needs playwright and
Debian chromium (scripts/env.sh installs both). Workflows owned by other parts of the pack (for example
tcd_gamma_sweep.json) are left alone.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

WORKFLOWS = REPO / "workflows"

PROMPT_SDXL = ("a red fox sitting in a snowy birch forest at golden hour, soft rim light, detailed fur, "
               "35mm photograph")
PROMPT_SD15 = "a cozy cabin by a mountain lake at dawn, mist over the water, detailed, photograph"
NEGATIVE = "blurry, low quality, watermark"
PROMPT_QWEN = ("a tiny noodle shop on a rainy night street in Hong Kong, a glowing neon sign that reads "
               "\"TCD NOODLES\", reflections on the wet pavement, steam rising from the counter, cinematic photograph")
PROMPT_WAN = ("a red fox trotting through fresh snow in a birch forest at sunrise, its breath steaming, the camera "
              "tracking alongside at its height, soft golden light, cinematic")
NEGATIVE_WAN = "static, blurry, low quality, watermark, subtitles, distorted limbs"

GAMMA_NOTE = (
    "What to try with gamma (TCD's stochasticity; diffusers calls it eta):\n"
    "- Keep the seed fixed and change only gamma: 0.0 is deterministic and sharpest, 1.0 is LCM-like and softest.\n"
    "- 0.2-0.3 suits 4 steps; raise it (0.5 or more) when you use 8 or more steps.\n"
    "- cfg stays at 1 for TCD LoRAs (the negative prompt is then ignored and each step is one model call).\n")

SDXL_FILES = (
    "Files to download:\n"
    "1. sd_xl_base_1.0.safetensors  (huggingface.co/stabilityai/stable-diffusion-xl-base-1.0)\n"
    "   -> ComfyUI/models/checkpoints/\n"
    "2. TCD-SDXL-LoRA.safetensors: the file pytorch_lora_weights.safetensors from huggingface.co/h1t/TCD-SDXL-LoRA,\n"
    "   saved as ComfyUI/models/loras/TCD-SDXL-LoRA.safetensors\n")

FLOW_GAMMA_NOTE = (
    "gamma on a flow model (SD3/SD3.5, Flux): each step jumps to the noise level (1 - gamma) x the next one and "
    "re-noises from there. 0.0 is the plain flow Euler step (sharpest, what these LoRAs are usually sampled with), "
    "1.0 is LCM-like (every step starts from fresh noise, softest). 0.2-0.4 keeps the detail and smooths artefacts.\n")

LIGHTNING_GAMMA_NOTE = (
    "gamma: each TCD step lands on (1 - gamma) x the next noise level and re-noises from there. 0.0 is the plain "
    "flow Euler step (ComfyUI's own template samples these Lightning LoRAs with euler), 1.0 is LCM-like (every step "
    "starts from fresh noise, softest); 0.2-0.4 keeps the detail and smooths artefacts. Keep the seed and change "
    "only gamma to compare.\n")
QWEN_REPO = "huggingface.co/Comfy-Org/Qwen-Image_ComfyUI"
WAN22_REPO = "huggingface.co/Comfy-Org/Wan_2.2_ComfyUI_Repackaged"
WAN21_REPO = "huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged"
WAN22_LORA = "wan2.2_t2v_lightx2v_4steps_lora_v1.1_{}_noise.safetensors"
WAN22_MODEL = "wan2.2_t2v_{}_noise_14B_fp8_scaled.safetensors"

NOTES = {
    "tcd_sdxl_txt2img": (
        "TCD text to image, SDXL (1024x1024, 4 steps)\n\n" + SDXL_FILES +
        "\nThen press Queue. Load TCD LoRA applies the LoRA and reports how many of its keys matched the model "
        "(shown in Preview as Text); a wrong-family LoRA is refused with a clear message.\n\n" + GAMMA_NOTE),
    "tcd_sd15_txt2img": (
        "TCD text to image, Stable Diffusion 1.5 (512x512, 4 steps)\n\n"
        "Files to download:\n"
        "1. v1-5-pruned-emaonly.safetensors  (huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5)\n"
        "   -> ComfyUI/models/checkpoints/\n"
        "2. TCD-SD15-LoRA.safetensors: the file pytorch_lora_weights.safetensors from "
        "huggingface.co/h1t/TCD-SD15-LoRA,\n"
        "   saved as ComfyUI/models/loras/TCD-SD15-LoRA.safetensors\n\n"
        "SD1.5 is trained at 512x512: keep the latent there.\n\n" + GAMMA_NOTE),
    "tcd_custom_sampler": (
        "TCD with the host's custom sampling nodes (SamplerCustomAdvanced)\n\n" + SDXL_FILES +
        "\nSamplerTCD (gamma) is the SAMPLER and TCD Scheduler the SIGMAS: the reference TCD timesteps (999, 759, "
        "499, 259 at 4 steps) on the model's own noise schedule. RandomNoise gives the seed, BasicGuider is cfg 1. "
        "You can swap in any host scheduler (e.g. BasicScheduler) or guider (CFGGuider) to compare.\n"
        "original_inference_steps is the distillation grid the LoRA was trained on (50 for the TCD LoRAs).\n\n"
        + GAMMA_NOTE),
    "tcd_img2img": (
        "TCD image to image, SDXL (denoise 0.6)\n\n" + SDXL_FILES +
        "3. Any picture: click 'choose file to upload' on Load Image (example.png ships with ComfyUI).\n\n"
        "The picture is scaled and centre-cropped to 1024x1024 (SDXL's size), encoded, and re-sampled from 60% "
        "noise. On the 'tcd' scheduler "
        "denoise works like diffusers' strength: it shortens the TCD grid (4 steps at 0.6 = timesteps 599, 459, "
        "299, 159). Lower denoise keeps more of the picture; steps must stay at most 50 x denoise.\n\n" + GAMMA_NOTE),
    "tcd_sd35_txt2img": (
        "TCD on Stable Diffusion 3.5 Large (1024x1024, 8 steps) with the Hyper-SD3 8-step LoRA\n\n"
        "Files to download:\n"
        "1. sd3.5_large.safetensors  (huggingface.co/stabilityai/stable-diffusion-3.5-large)\n"
        "   -> ComfyUI/models/checkpoints/\n"
        "2. clip_g.safetensors, clip_l.safetensors, t5xxl_fp16.safetensors  (the text_encoders folder of the same "
        "repository) -> ComfyUI/models/text_encoders/\n"
        "3. Hyper-SD3-8steps-CFG-lora.safetensors  (huggingface.co/ByteDance/Hyper-SD) -> ComfyUI/models/loras/\n\n"
        "The LoRA is used at strength 0.125 with cfg 5 (its authors' settings). The 'tcd' scheduler puts TCD's "
        "timestep grid on SD3's own shifted schedule.\n\n" + FLOW_GAMMA_NOTE),
    "tcd_flux_txt2img": (
        "TCD on FLUX.1 [dev] (1024x1024, 8 steps) with the Hyper-FLUX 8-step LoRA\n\n"
        "Files to download:\n"
        "1. flux1-dev.safetensors  (huggingface.co/black-forest-labs/FLUX.1-dev) -> ComfyUI/models/diffusion_models/\n"
        "2. ae.safetensors  (the same repository) -> ComfyUI/models/vae/\n"
        "3. clip_l.safetensors, t5xxl_fp16.safetensors  (huggingface.co/comfyanonymous/flux_text_encoders)\n"
        "   -> ComfyUI/models/text_encoders/\n"
        "4. Hyper-FLUX.1-dev-8steps-lora.safetensors  (huggingface.co/ByteDance/Hyper-SD) -> ComfyUI/models/loras/\n\n"
        "The LoRA is used at strength 0.125 (its authors' setting); Flux dev takes its guidance from FluxGuidance "
        "(3.5), so cfg stays 1 and the negative prompt is not used.\n\n" + FLOW_GAMMA_NOTE),
    "tcd_hyper_sd_1step": (
        "One step with a Hyper-SD LoRA through the TCD sampler (gamma 1.0)\n\n"
        "Files to download:\n"
        "1. sd_xl_base_1.0.safetensors  (huggingface.co/stabilityai/stable-diffusion-xl-base-1.0)\n"
        "   -> ComfyUI/models/checkpoints/\n"
        "2. Hyper-SDXL-1step-lora.safetensors  (huggingface.co/ByteDance/Hyper-SD)\n"
        "   -> ComfyUI/models/loras/\n\n"
        "Hyper-SDXL-1step-lora is Hyper-SD's unified LoRA: made for one step, and usable at 2, 4 or 8 steps "
        "through the TCD sampler. Its authors sample it with the TCD scheduler at eta (our gamma) 1.0 and cfg 1, as "
        "here.\n\nWhat to try: raise steps to 2, 4 or 8 and lower gamma (0.3-0.5) for more detail. At 1 step gamma "
        "changes nothing (the single step ends on the clean prediction); it starts to matter from 2 steps.\n"),
    "tcd_qwen_image_lightning": (
        "TCD on Qwen-Image (1328x1328, 8 steps) with the Qwen-Image-Lightning 8-step LoRA\n\n"
        "Files to download:\n"
        f"1. qwen_image_fp8_e4m3fn.safetensors  ({QWEN_REPO}, split_files/diffusion_models)\n"
        "   -> ComfyUI/models/diffusion_models/\n"
        f"2. qwen_2.5_vl_7b_fp8_scaled.safetensors  ({QWEN_REPO}, split_files/text_encoders)\n"
        "   -> ComfyUI/models/text_encoders/\n"
        f"3. qwen_image_vae.safetensors  ({QWEN_REPO}, split_files/vae) -> ComfyUI/models/vae/\n"
        "4. Qwen-Image-Lightning-8steps-V1.0.safetensors  (huggingface.co/lightx2v/Qwen-Image-Lightning)\n"
        "   -> ComfyUI/models/loras/\n\n"
        "As in ComfyUI's own Qwen-Image template: the LoRA at strength 1, cfg 1 (the negative prompt is then not "
        "used) and ModelSamplingAuraFlow shift 3.1; the 'tcd' scheduler puts TCD's timestep grid on that shifted "
        "schedule. Load TCD LoRA applies every module of the LoRA or refuses it, naming both families (a Flux LoRA "
        "on Qwen-Image, say).\n\n" + LIGHTNING_GAMMA_NOTE),
    "tcd_wan22_t2v_lightning": (
        "TCD on Wan 2.2 A14B text to video (640x640, 81 frames, 4 steps) with the lightx2v 4-step LoRAs: both "
        "experts in one TCD trajectory\n\n"
        "Files to download:\n"
        f"1. {WAN22_MODEL.format('high')} and\n   {WAN22_MODEL.format('low')}\n"
        f"   ({WAN22_REPO}, split_files/diffusion_models) -> ComfyUI/models/diffusion_models/\n"
        f"2. {WAN22_LORA.format('high')} and\n   {WAN22_LORA.format('low')}\n"
        f"   ({WAN22_REPO}, split_files/loras) -> ComfyUI/models/loras/\n"
        f"3. wan_2.1_vae.safetensors  ({WAN22_REPO}, split_files/vae) -> ComfyUI/models/vae/\n"
        f"4. umt5_xxl_fp8_e4m3fn_scaled.safetensors  ({WAN21_REPO}, split_files/text_encoders)\n"
        "   -> ComfyUI/models/text_encoders/\n\n"
        "TCD Sampler (two experts) runs the high-noise model (with its LoRA) for the steps whose timestep is at "
        "least boundary x 1000 (0.875, Wan 2.2 T2V's value) and the low-noise model for the rest: at 4 steps on "
        "shift 5 that is steps 1-2 and 3-4, as in ComfyUI's own template, but as one TCD trajectory (one grid, one "
        "noise stream, one seed). Each model is loaded for its own steps only. The 'experts' preview shows the "
        "split. (Two KSamplerAdvanced with sampler 'tcd' are not one trajectory: the second starts TCD's step noise "
        "afresh from its own seed.)\n"
        "LoRAs at strength 1, cfg 1 on both models, ModelSamplingSD3 shift 5, as in ComfyUI's own template. The "
        "video is saved as an animated WEBP at 16 fps.\n\n" + LIGHTNING_GAMMA_NOTE),
}


def sdxl_txt2img(name, ckpt, lora, size, prompt, steps=4, gamma=0.3, seed=42, prefix="TCD"):
    return {
        "nodes": [
            {"key": "note", "type": "Note", "pos": [40, 40], "size": [430, 440], "widgets": {"text": NOTES[name]}},
            {"key": "ckpt", "type": "CheckpointLoaderSimple", "pos": [40, 530], "size": [430, 100],
             "widgets": {"ckpt_name": ckpt}},
            {"key": "lora", "type": "TCDLoraLoader", "pos": [40, 690], "size": [430, 130],
             "widgets": {"lora_name": lora, "strength_model": 1.0, "strength_clip": 1.0}},
            {"key": "pos", "type": "CLIPTextEncode", "title": "Positive prompt", "pos": [520, 40],
             "size": [420, 190], "widgets": {"text": prompt}},
            {"key": "neg", "type": "CLIPTextEncode", "title": "Negative prompt (ignored at cfg 1)",
             "pos": [520, 290], "size": [420, 130], "widgets": {"text": NEGATIVE}},
            {"key": "latent", "type": "EmptyLatentImage", "pos": [520, 480], "size": [420, 110],
             "widgets": {"width": size, "height": size, "batch_size": 1}},
            {"key": "report", "type": "PreviewAny", "title": "TCD LoRA report", "pos": [520, 650],
             "size": [420, 170]},
            {"key": "sampler", "type": "TCDKSampler", "pos": [990, 40], "size": [320, 290],
             "widgets": {"seed": seed, "control_after_generate": "fixed", "steps": steps, "cfg": 1.0,
                         "gamma": gamma, "scheduler": "tcd", "denoise": 1.0}},
            {"key": "decode", "type": "VAEDecode", "pos": [990, 390], "size": [210, 50]},
            {"key": "save", "type": "SaveImage", "pos": [1360, 40], "size": [520, 580],
             "widgets": {"filename_prefix": prefix}},
        ],
        "links": [
            ["ckpt", "MODEL", "lora", "model"], ["ckpt", "CLIP", "lora", "clip"],
            ["lora", "CLIP", "pos", "clip"], ["lora", "CLIP", "neg", "clip"],
            ["lora", 2, "report", "source"],
            ["lora", "MODEL", "sampler", "model"], ["pos", 0, "sampler", "positive"],
            ["neg", 0, "sampler", "negative"], ["latent", 0, "sampler", "latent_image"],
            ["sampler", 0, "decode", "samples"], ["ckpt", "VAE", "decode", "vae"],
            ["decode", 0, "save", "images"],
        ],
    }


def custom_sampler(name):
    return {
        "nodes": [
            {"key": "note", "type": "Note", "pos": [40, 40], "size": [430, 470], "widgets": {"text": NOTES[name]}},
            {"key": "ckpt", "type": "CheckpointLoaderSimple", "pos": [40, 560], "size": [430, 100],
             "widgets": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
            {"key": "lora", "type": "TCDLoraLoaderModelOnly", "pos": [40, 720], "size": [430, 90],
             "widgets": {"lora_name": "TCD-SDXL-LoRA.safetensors", "strength_model": 1.0}},
            {"key": "pos", "type": "CLIPTextEncode", "title": "Positive prompt", "pos": [520, 40],
             "size": [420, 190], "widgets": {"text": PROMPT_SDXL}},
            {"key": "latent", "type": "EmptyLatentImage", "pos": [520, 290], "size": [420, 110],
             "widgets": {"width": 1024, "height": 1024, "batch_size": 1}},
            {"key": "report", "type": "PreviewAny", "title": "TCD LoRA report", "pos": [520, 460],
             "size": [420, 170]},
            {"key": "noise", "type": "RandomNoise", "pos": [990, 40], "size": [320, 90],
             "widgets": {"noise_seed": 42, "control_after_generate": "fixed"}},
            {"key": "guider", "type": "BasicGuider", "pos": [990, 190], "size": [320, 50]},
            {"key": "tcdsampler", "type": "TCDSampler", "pos": [990, 300], "size": [320, 60],
             "widgets": {"gamma": 0.3}},
            {"key": "sigmas", "type": "TCDSigmas", "pos": [990, 420], "size": [320, 130],
             "widgets": {"steps": 4, "denoise": 1.0, "original_inference_steps": 50}},
            {"key": "sca", "type": "SamplerCustomAdvanced", "pos": [1360, 40], "size": [280, 110]},
            {"key": "decode", "type": "VAEDecode", "pos": [1360, 210], "size": [210, 50]},
            {"key": "save", "type": "SaveImage", "pos": [1690, 40], "size": [520, 580],
             "widgets": {"filename_prefix": "TCD_custom"}},
        ],
        "links": [
            ["ckpt", "MODEL", "lora", "model"], ["ckpt", "CLIP", "pos", "clip"],
            ["lora", 1, "report", "source"],
            ["lora", "MODEL", "guider", "model"], ["pos", 0, "guider", "conditioning"],
            ["lora", "MODEL", "sigmas", "model"],
            ["noise", 0, "sca", "noise"], ["guider", 0, "sca", "guider"], ["tcdsampler", 0, "sca", "sampler"],
            ["sigmas", 0, "sca", "sigmas"], ["latent", 0, "sca", "latent_image"],
            ["sca", 0, "decode", "samples"], ["ckpt", "VAE", "decode", "vae"], ["decode", 0, "save", "images"],
        ],
    }


def img2img(name):
    return {
        "nodes": [
            {"key": "note", "type": "Note", "pos": [40, 40], "size": [430, 470], "widgets": {"text": NOTES[name]}},
            {"key": "ckpt", "type": "CheckpointLoaderSimple", "pos": [40, 560], "size": [430, 100],
             "widgets": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
            {"key": "lora", "type": "TCDLoraLoader", "pos": [40, 720], "size": [430, 130],
             "widgets": {"lora_name": "TCD-SDXL-LoRA.safetensors", "strength_model": 1.0, "strength_clip": 1.0}},
            {"key": "image", "type": "LoadImage", "pos": [520, 40], "size": [320, 360],
             "widgets": {"image": "example.png"}},
            {"key": "scale", "type": "ImageScale", "title": "Upscale Image",
             "pos": [520, 460], "size": [320, 130],
             "widgets": {"upscale_method": "lanczos", "width": 1024, "height": 1024, "crop": "center"}},
            {"key": "encode", "type": "VAEEncode", "pos": [520, 650], "size": [210, 50]},
            {"key": "pos", "type": "CLIPTextEncode", "title": "Positive prompt", "pos": [890, 40],
             "size": [400, 170], "widgets": {"text": "an oil painting of a mountain landscape, warm evening light"}},
            {"key": "neg", "type": "CLIPTextEncode", "title": "Negative prompt (ignored at cfg 1)",
             "pos": [890, 270], "size": [400, 120], "widgets": {"text": NEGATIVE}},
            {"key": "report", "type": "PreviewAny", "title": "TCD LoRA report", "pos": [890, 450],
             "size": [400, 170]},
            {"key": "sampler", "type": "TCDKSampler", "pos": [1340, 40], "size": [320, 290],
             "widgets": {"seed": 42, "control_after_generate": "fixed", "steps": 4, "cfg": 1.0, "gamma": 0.3,
                         "scheduler": "tcd", "denoise": 0.6}},
            {"key": "decode", "type": "VAEDecode", "pos": [1340, 390], "size": [210, 50]},
            {"key": "save", "type": "SaveImage", "pos": [1710, 40], "size": [520, 580],
             "widgets": {"filename_prefix": "TCD_img2img"}},
        ],
        "links": [
            ["ckpt", "MODEL", "lora", "model"], ["ckpt", "CLIP", "lora", "clip"],
            ["lora", "CLIP", "pos", "clip"], ["lora", "CLIP", "neg", "clip"], ["lora", 2, "report", "source"],
            ["image", "IMAGE", "scale", "image"], ["scale", 0, "encode", "pixels"], ["ckpt", "VAE", "encode", "vae"],
            ["lora", "MODEL", "sampler", "model"], ["pos", 0, "sampler", "positive"],
            ["neg", 0, "sampler", "negative"], ["encode", 0, "sampler", "latent_image"],
            ["sampler", 0, "decode", "samples"], ["ckpt", "VAE", "decode", "vae"], ["decode", 0, "save", "images"],
        ],
    }


def flow_txt2img(name):
    """SD3.5 (checkpoint + three text encoders) or Flux dev (diffusion model + two text encoders + VAE)."""
    sd35 = name == "tcd_sd35_txt2img"
    nodes = [{"key": "note", "type": "Note", "pos": [40, 40], "size": [430, 520], "widgets": {"text": NOTES[name]}}]
    if sd35:
        nodes += [
            {"key": "ckpt", "type": "CheckpointLoaderSimple", "pos": [40, 610], "size": [430, 100],
             "widgets": {"ckpt_name": "sd3.5_large.safetensors"}},
            {"key": "clip", "type": "TripleCLIPLoader", "pos": [40, 770], "size": [430, 130],
             "widgets": {"clip_name1": "clip_g.safetensors", "clip_name2": "clip_l.safetensors",
                         "clip_name3": "t5xxl_fp16.safetensors"}},
        ]
        lora, cfg, neg_text = "Hyper-SD3-8steps-CFG-lora.safetensors", 5.0, NEGATIVE
    else:
        nodes += [
            {"key": "ckpt", "type": "UNETLoader", "title": "Load Diffusion Model", "pos": [40, 610],
             "size": [430, 100], "widgets": {"unet_name": "flux1-dev.safetensors"}},
            {"key": "clip", "type": "DualCLIPLoader", "pos": [40, 770], "size": [430, 130],
             "widgets": {"clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl_fp16.safetensors",
                         "type": "flux"}},
            {"key": "vae", "type": "VAELoader", "pos": [40, 960], "size": [430, 80],
             "widgets": {"vae_name": "ae.safetensors"}},
            {"key": "guidance", "type": "FluxGuidance", "pos": [990, 400], "size": [320, 80],
             "widgets": {"guidance": 3.5}},
        ]
        lora, cfg, neg_text = "Hyper-FLUX.1-dev-8steps-lora.safetensors", 1.0, ""
    nodes += [
        {"key": "lora", "type": "TCDLoraLoaderModelOnly", "pos": [520, 610], "size": [420, 110],
         "widgets": {"lora_name": lora, "strength_model": 0.125}},
        {"key": "pos", "type": "CLIPTextEncode", "title": "Positive prompt", "pos": [520, 40], "size": [420, 190],
         "widgets": {"text": PROMPT_SDXL}},
        {"key": "neg", "type": "CLIPTextEncode",
         "title": "Negative prompt" if sd35 else "Negative prompt (not used by Flux dev at cfg 1)",
         "pos": [520, 290], "size": [420, 130], "widgets": {"text": neg_text}},
        {"key": "latent", "type": "EmptySD3LatentImage", "pos": [520, 480], "size": [420, 110],
         "widgets": {"width": 1024, "height": 1024, "batch_size": 1}},
        {"key": "report", "type": "PreviewAny", "title": "TCD LoRA report", "pos": [520, 780], "size": [420, 170]},
        {"key": "sampler", "type": "TCDKSampler", "pos": [990, 40], "size": [320, 290],
         "widgets": {"seed": 42, "control_after_generate": "fixed", "steps": 8, "cfg": cfg, "gamma": 0.3,
                     "scheduler": "tcd", "denoise": 1.0}},
        {"key": "decode", "type": "VAEDecode", "pos": [990, 540], "size": [210, 50]},
        {"key": "save", "type": "SaveImage", "pos": [1360, 40], "size": [520, 580],
         "widgets": {"filename_prefix": "TCD_SD35" if sd35 else "TCD_Flux"}},
    ]
    links = [
        ["ckpt", "MODEL", "lora", "model"], ["lora", 1, "report", "source"],
        ["clip", "CLIP", "pos", "clip"], ["clip", "CLIP", "neg", "clip"],
        ["lora", "MODEL", "sampler", "model"], ["neg", 0, "sampler", "negative"],
        ["latent", 0, "sampler", "latent_image"], ["sampler", 0, "decode", "samples"], ["decode", 0, "save", "images"],
    ]
    if sd35:
        links += [["pos", 0, "sampler", "positive"], ["ckpt", "VAE", "decode", "vae"]]
    else:
        links += [["pos", 0, "guidance", "conditioning"], ["guidance", 0, "sampler", "positive"],
                  ["vae", "VAE", "decode", "vae"]]
    return {"nodes": nodes, "links": links}


def qwen_lightning(name):
    """Qwen-Image as ComfyUI's template runs it (diffusion model, text encoder, VAE, ModelSamplingAuraFlow 3.1) with the
    Lightning 8-step LoRA through Load TCD LoRA and TCD Sampler."""
    return {
        "nodes": [
            {"key": "note", "type": "Note", "pos": [40, 40], "size": [430, 560], "widgets": {"text": NOTES[name]}},
            {"key": "unet", "type": "UNETLoader", "title": "Load Diffusion Model", "pos": [40, 650],
             "size": [430, 100], "widgets": {"unet_name": "qwen_image_fp8_e4m3fn.safetensors"}},
            {"key": "clip", "type": "CLIPLoader", "pos": [40, 810], "size": [430, 120],
             "widgets": {"clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors", "type": "qwen_image"}},
            {"key": "vae", "type": "VAELoader", "pos": [40, 990], "size": [430, 80],
             "widgets": {"vae_name": "qwen_image_vae.safetensors"}},
            {"key": "pos", "type": "CLIPTextEncode", "title": "Positive prompt", "pos": [520, 40], "size": [420, 190],
             "widgets": {"text": PROMPT_QWEN}},
            {"key": "neg", "type": "CLIPTextEncode", "title": "Negative prompt (not used at cfg 1)",
             "pos": [520, 290], "size": [420, 130], "widgets": {"text": ""}},
            {"key": "latent", "type": "EmptySD3LatentImage", "pos": [520, 480], "size": [420, 110],
             "widgets": {"width": 1328, "height": 1328, "batch_size": 1}},
            {"key": "lora", "type": "TCDLoraLoaderModelOnly", "pos": [520, 650], "size": [420, 110],
             "widgets": {"lora_name": "Qwen-Image-Lightning-8steps-V1.0.safetensors", "strength_model": 1.0}},
            {"key": "shift", "type": "ModelSamplingAuraFlow", "pos": [520, 820], "size": [420, 60],
             "widgets": {"shift": 3.1}},
            {"key": "report", "type": "PreviewAny", "title": "TCD LoRA report", "pos": [520, 940], "size": [420, 170]},
            {"key": "sampler", "type": "TCDKSampler", "pos": [990, 40], "size": [320, 290],
             "widgets": {"seed": 42, "control_after_generate": "fixed", "steps": 8, "cfg": 1.0, "gamma": 0.3,
                         "scheduler": "tcd", "denoise": 1.0}},
            {"key": "decode", "type": "VAEDecode", "pos": [990, 390], "size": [210, 50]},
            {"key": "save", "type": "SaveImage", "pos": [1360, 40], "size": [520, 580],
             "widgets": {"filename_prefix": "TCD_QwenImage"}},
        ],
        "links": [
            ["unet", "MODEL", "lora", "model"], ["lora", 1, "report", "source"], ["lora", "MODEL", "shift", "model"],
            ["clip", "CLIP", "pos", "clip"], ["clip", "CLIP", "neg", "clip"],
            ["shift", "MODEL", "sampler", "model"], ["pos", 0, "sampler", "positive"],
            ["neg", 0, "sampler", "negative"], ["latent", 0, "sampler", "latent_image"],
            ["sampler", 0, "decode", "samples"], ["vae", "VAE", "decode", "vae"], ["decode", 0, "save", "images"],
        ],
    }


def wan22_lightning(name):
    """Wan 2.2 A14B text to video as ComfyUI's template runs it with the lightx2v 4-step LoRAs (each expert: diffusion
    model, LoRA, ModelSamplingSD3 5), both experts in TCD Sampler (two experts), saved as an animated WEBP."""
    nodes = [
        {"key": "note", "type": "Note", "pos": [40, 40], "size": [430, 760], "widgets": {"text": NOTES[name]}},
        {"key": "clip", "type": "CLIPLoader", "pos": [40, 850], "size": [430, 120],
         "widgets": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan"}},
        {"key": "vae", "type": "VAELoader", "pos": [40, 1030], "size": [430, 80],
         "widgets": {"vae_name": "wan_2.1_vae.safetensors"}},
        {"key": "pos", "type": "CLIPTextEncode", "title": "Positive prompt", "pos": [520, 760], "size": [430, 190],
         "widgets": {"text": PROMPT_WAN}},
        {"key": "neg", "type": "CLIPTextEncode", "title": "Negative prompt (not used at cfg 1)", "pos": [520, 1010],
         "size": [430, 130], "widgets": {"text": NEGATIVE_WAN}},
        {"key": "latent", "type": "EmptyHunyuanLatentVideo", "pos": [1000, 760], "size": [400, 150],
         "widgets": {"width": 640, "height": 640, "length": 81, "batch_size": 1}},
        {"key": "sampler", "type": "TCDTwoExpertSampler", "pos": [1450, 40], "size": [340, 340],
         "widgets": {"seed": 42, "control_after_generate": "fixed", "steps": 4, "cfg_high_noise": 1.0,
                     "cfg_low_noise": 1.0, "gamma": 0.3, "boundary": 0.875, "scheduler": "tcd", "denoise": 1.0}},
        {"key": "experts", "type": "PreviewAny", "title": "Which steps each expert ran", "pos": [1450, 440],
         "size": [340, 170]},
        {"key": "decode", "type": "VAEDecode", "pos": [1450, 670], "size": [210, 50]},
        {"key": "save", "type": "SaveAnimatedWEBP", "pos": [1840, 40], "size": [520, 640],
         "widgets": {"filename_prefix": "TCD_Wan22", "fps": 16.0, "lossless": False, "quality": 90,
                     "method": "default"}},
    ]
    links = [
        ["clip", "CLIP", "pos", "clip"], ["clip", "CLIP", "neg", "clip"],
        ["pos", 0, "sampler", "positive"], ["neg", 0, "sampler", "negative"], ["latent", 0, "sampler", "latent_image"],
        ["sampler", 1, "experts", "source"], ["sampler", 0, "decode", "samples"], ["vae", "VAE", "decode", "vae"],
        ["decode", 0, "save", "images"],
    ]
    for row, expert in enumerate(("high", "low")):  # one row per expert: model -> LoRA (report) -> shift -> sampler
        y = 40 + row * 360
        nodes += [
            {"key": f"unet_{expert}", "type": "UNETLoader", "title": f"Load Diffusion Model ({expert} noise)",
             "pos": [520, y], "size": [430, 100], "widgets": {"unet_name": WAN22_MODEL.format(expert)}},
            {"key": f"lora_{expert}", "type": "TCDLoraLoaderModelOnly", "pos": [520, y + 160], "size": [430, 110],
             "widgets": {"lora_name": WAN22_LORA.format(expert), "strength_model": 1.0}},
            {"key": f"shift_{expert}", "type": "ModelSamplingSD3", "pos": [1000, y], "size": [400, 60],
             "widgets": {"shift": 5.0}},
            {"key": f"report_{expert}", "type": "PreviewAny", "title": f"TCD LoRA report ({expert} noise)",
             "pos": [1000, y + 120], "size": [400, 170]},
        ]
        links += [
            [f"unet_{expert}", "MODEL", f"lora_{expert}", "model"], [f"lora_{expert}", 1, f"report_{expert}", "source"],
            [f"lora_{expert}", "MODEL", f"shift_{expert}", "model"],
            [f"shift_{expert}", "MODEL", "sampler", f"{expert}_noise_model"],
        ]
    return {"nodes": nodes, "links": links}


SPECS = {
    "tcd_sdxl_txt2img": lambda n: sdxl_txt2img(n, "sd_xl_base_1.0.safetensors", "TCD-SDXL-LoRA.safetensors", 1024,
                                               PROMPT_SDXL, prefix="TCD_SDXL"),
    "tcd_sd15_txt2img": lambda n: sdxl_txt2img(n, "v1-5-pruned-emaonly.safetensors", "TCD-SD15-LoRA.safetensors",
                                               512, PROMPT_SD15, prefix="TCD_SD15"),
    "tcd_custom_sampler": custom_sampler,
    "tcd_img2img": img2img,
    "tcd_sd35_txt2img": flow_txt2img,
    "tcd_flux_txt2img": flow_txt2img,
    "tcd_hyper_sd_1step": lambda n: sdxl_txt2img(n, "sd_xl_base_1.0.safetensors",
                                                 "Hyper-SDXL-1step-lora.safetensors", 1024, PROMPT_SDXL, steps=1,
                                                 gamma=1.0, prefix="TCD_HyperSD_1step"),
    "tcd_qwen_image_lightning": qwen_lightning,
    "tcd_wan22_t2v_lightning": wan22_lightning,
}

_BUILD = """async (spec) => {
  const app = window.app, LG = window.LiteGraph;
  await app.loadGraphData({last_node_id: 0, last_link_id: 0, nodes: [], links: [], groups: [], config: {},
                           extra: {}, version: 0.4}, true, false, null,
                          {showMissingNodesDialog: false, showMissingModelsDialog: false});
  const g = app.graph, made = {};
  for (const n of spec.nodes) {
    const node = LG.createNode(n.type);
    if (!node) throw new Error("unknown node type " + n.type);
    if (n.title) node.title = n.title;
    g.add(node);
    node.pos = [n.pos[0], n.pos[1]];
    for (const [k, v] of Object.entries(n.widgets || {})) {
      const w = (node.widgets || []).find(w => w.name === k);
      if (!w) throw new Error(n.type + " has no widget " + k + " (has " + (node.widgets || []).map(w => w.name) + ")");
      w.value = v;
    }
    if (n.size) node.setSize([Math.max(n.size[0], node.size[0]), Math.max(n.size[1], node.computeSize()[1])]);
    made[n.key] = node;
  }
  for (const [src, out, dst, inp] of spec.links) {
    const a = made[src], b = made[dst];
    const oi = typeof out === "number" ? out : a.outputs.findIndex(o => o.name === out || o.type === out);
    const ii = b.inputs.findIndex(i => i.name === inp);
    if (oi < 0 || ii < 0) throw new Error("bad link " + JSON.stringify([src, out, dst, inp]));
    if (!a.connect(oi, b, ii)) throw new Error("link refused " + JSON.stringify([src, out, dst, inp]));
  }
  g.setDirtyCanvas(true, true);
  return g._nodes.length;
}"""

_EXPORT = """async () => {
  const p = await window.app.graphToPrompt();
  return JSON.stringify({workflow: p.workflow, output: p.output});
}"""


def thumbnail(fe, path: Path, side=512):
    """A square JPEG of the graph's working part (the Note and the output nodes left out) for the template browser,
    which asks for ``<name>.jpg`` beside ``<name>.json`` and shows it in a square card."""
    import io

    from PIL import Image
    box = {"x": 80, "y": 110, "width": 960, "height": 960}
    fe.page.set_viewport_size({"width": 1320, "height": 1160})
    fe.page.wait_for_timeout(500)  # the canvas follows the window size on its next frame
    try:
        fe.fit((box["x"] + 20, box["y"] + 20, 1320 - box["x"] - box["width"] + 20,
                1160 - box["y"] - box["height"] + 20), skip=("Note", "SaveImage", "SaveAnimatedWEBP", "PreviewAny"))
        fe.page.wait_for_timeout(300)
        png = fe.page.screenshot(clip=box)
    finally:
        fe.page.set_viewport_size({"width": 1600, "height": 900})
        fe.page.wait_for_timeout(300)
    img = Image.open(io.BytesIO(png)).convert("RGB").resize((side, side), Image.LANCZOS)
    img.save(path, "JPEG", quality=85, optimize=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running ComfyUI with this pack (default: start one)")
    ap.add_argument("names", nargs="*", help=f"workflows to write (default: all of {', '.join(SPECS)})")
    ap.add_argument("--thumbnails-only", action="store_true",
                    help="only (re)draw <name>.jpg for the named workflow files (any file in workflows/, e.g. one "
                         "this script does not build), by loading each one in the frontend")
    a = ap.parse_args(argv)
    from tcd_browser import Frontend
    server = None
    url = a.url
    if not url:
        from tcd_server import ComfyServer
        server = ComfyServer().start()
        url = server.url
    fe = Frontend(url)
    try:
        (WORKFLOWS / "api").mkdir(parents=True, exist_ok=True)
        if a.thumbnails_only:
            for name in a.names or sorted(p.stem for p in WORKFLOWS.glob("*.json")):
                loaded = fe.load(json.loads((WORKFLOWS / f"{name}.json").read_text()), name)
                if loaded["missing"] or loaded["unregistered"] or loaded["page_errors"] or loaded["alerts"]:
                    raise SystemExit(f"{name}: load failed {loaded}")
                thumbnail(fe, WORKFLOWS / f"{name}.jpg")
                print(f"wrote workflows/{name}.jpg")
            return
        for name in a.names or list(SPECS):
            fe.evaluate(_BUILD, SPECS[name](name))
            fe.fit()  # the saved view (extra.ds) shows the whole graph on a 1600x900 window
            res = json.loads(fe.evaluate(_EXPORT))
            wf = res["workflow"]
            (WORKFLOWS / f"{name}.json").write_text(json.dumps(wf, indent=2) + "\n")
            (WORKFLOWS / "api" / f"{name}.json").write_text(json.dumps(res["output"], indent=2) + "\n")
            loaded = fe.load(json.loads((WORKFLOWS / f"{name}.json").read_text()), name)
            if loaded["missing"] or loaded["unregistered"] or loaded["page_errors"] or loaded["alerts"]:
                raise SystemExit(f"{name}: reload failed {loaded}")
            again = fe.graph_to_prompt()["output"]
            if again != res["output"]:
                raise SystemExit(f"{name}: the reloaded graph converts differently")
            thumbnail(fe, WORKFLOWS / f"{name}.jpg")
            print(f"wrote workflows/{name}.json, workflows/api/{name}.json, workflows/{name}.jpg")
    finally:
        fe.close()
        if server:
            server.stop()


if __name__ == "__main__":
    main()
