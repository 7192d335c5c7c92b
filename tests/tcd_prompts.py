"""API-format prompt builders shared by the tests: the tiny checkpoint, two prompts and an empty latent, and each
TCD entry point (TCD Sampler, SamplerCustom, SamplerCustomAdvanced, the stock KSampler) wired to them."""
import uuid

import safetensors.torch
import torch

SEED = 42


def base_graph(ckpt, width=64, height=64, batch=1):
    g = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox in the snow", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": batch}},
    }
    return g


def tcd_ksampler(gamma, steps, cfg, denoise, latent=("latent", 0)):
    return {"class_type": "TCDKSampler", "inputs": {
        "model": ["ckpt", 0], "seed": SEED, "steps": steps, "cfg": cfg, "gamma": gamma, "scheduler": "tcd",
        "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": list(latent), "denoise": denoise}}


def custom_nodes(gamma, steps, cfg, denoise, latent=("latent", 0)):
    return {
        "sampler": {"class_type": "TCDSampler", "inputs": {"gamma": gamma}},
        "sigmas": {"class_type": "TCDSigmas", "inputs": {"model": ["ckpt", 0], "steps": steps, "denoise": denoise}},
        "sample": {"class_type": "SamplerCustom", "inputs": {
            "model": ["ckpt", 0], "add_noise": True, "noise_seed": SEED, "cfg": cfg, "positive": ["pos", 0],
            "negative": ["neg", 0], "sampler": ["sampler", 0], "sigmas": ["sigmas", 0],
            "latent_image": list(latent)}},
    }


def custom_advanced_nodes(gamma, steps, cfg, denoise, latent=("latent", 0)):
    return {
        "sampler": {"class_type": "TCDSampler", "inputs": {"gamma": gamma}},
        "sigmas": {"class_type": "TCDSigmas", "inputs": {"model": ["ckpt", 0], "steps": steps, "denoise": denoise}},
        "noise": {"class_type": "RandomNoise", "inputs": {"noise_seed": SEED}},
        "guider": {"class_type": "CFGGuider", "inputs": {"model": ["ckpt", 0], "positive": ["pos", 0],
                                                         "negative": ["neg", 0], "cfg": cfg}},
        "sample": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["noise", 0], "guider": ["guider", 0], "sampler": ["sampler", 0], "sigmas": ["sigmas", 0],
            "latent_image": list(latent)}},
    }


def stock_ksampler(steps, cfg):
    return {"class_type": "KSampler", "inputs": {
        "model": ["ckpt", 0], "seed": SEED, "steps": steps, "cfg": cfg, "sampler_name": "tcd", "scheduler": "tcd",
        "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0], "denoise": 1.0}}


def latent_from_tensor(host, tensor):
    """A LoadLatent node reading ``tensor`` from the host's input folder (the host's own latent file format)."""
    name = f"img_{uuid.uuid4().hex[:8]}.latent"
    safetensors.torch.save_file({"latent_tensor": tensor.contiguous(), "latent_format_version_0": torch.tensor([])},
                                str(host.workdir / "input" / name))
    return {"class_type": "LoadLatent", "inputs": {"latent": name}}


def flow_graph(unet_name, width=64, height=64, batch=1):
    """A small flow model through the host's UNETLoader, test conditioning (no text encoder) and a 16-channel latent;
    node ids as in ``base_graph`` so every sampler builder above wires to it."""
    return {
        "ckpt": {"class_type": "UNETLoader", "inputs": {"unet_name": unet_name, "weight_dtype": "default"}},
        "pos": {"class_type": "TCDTestConditioning", "inputs": {"seed": 1, "guidance": 3.5}},
        "neg": {"class_type": "TCDTestConditioning", "inputs": {"seed": 2, "guidance": 3.5}},
        "latent": {"class_type": "EmptySD3LatentImage", "inputs": {"width": width, "height": height,
                                                                   "batch_size": batch}},
    }


def gamma_sweep(gammas, steps, cfg, denoise=1.0, latent=("latent", 0)):
    return {"class_type": "TCDGammaSweep", "inputs": {
        "model": ["ckpt", 0], "seed": SEED, "steps": steps, "cfg": cfg, "gammas": gammas, "scheduler": "tcd",
        "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": list(latent), "denoise": denoise}}
