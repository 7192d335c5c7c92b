"""The one set of API-format prompt builders for the tests: a model loader, two prompts and an empty latent (node ids
'ckpt', 'pos', 'neg', 'latent'), every TCD entry point wired to them (TCD Sampler, SamplerCustom,
SamplerCustomAdvanced, the stock KSampler, the gamma sweep), and the nodes that read a result back."""
import uuid

import safetensors.torch
import torch

SEED = 42
MODEL, POS, NEG, LATENT = ("ckpt", 0), ("pos", 0), ("neg", 0), ("latent", 0)


def base_graph(ckpt, width=64, height=64, batch=1, positive="a red fox in the snow", negative="blurry",
               clip=("ckpt", 1)):
    """Checkpoint, two CLIPTextEncode prompts (through ``clip``) and an EmptyLatentImage."""
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": positive, "clip": list(clip)}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": list(clip)}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": batch}},
    }


def flow_graph(unet_name, width=64, height=64, batch=1):
    """A small flow model through the host's UNETLoader, test conditioning (no text encoder) and a 16-channel latent,
    with the node ids of ``base_graph``."""
    return {
        "ckpt": {"class_type": "UNETLoader", "inputs": {"unet_name": unet_name, "weight_dtype": "default"}},
        "pos": {"class_type": "TCDTestConditioning", "inputs": {"seed": 1, "guidance": 3.5}},
        "neg": {"class_type": "TCDTestConditioning", "inputs": {"seed": 2, "guidance": 3.5}},
        "latent": {"class_type": "EmptySD3LatentImage", "inputs": {"width": width, "height": height,
                                                                   "batch_size": batch}},
    }


def video_flow_graph(unet_name, context_dim, width=64, height=64, length=5, batch=1):
    """``flow_graph`` for a video model: test conditioning ``context_dim`` wide and the host's empty video latent
    (EmptyHunyuanLatentVideo: 16 channels, 5-D, (length - 1) / 4 + 1 frames; the host's samplers widen it to the
    model's channels)."""
    g = flow_graph(unet_name, width, height, batch)
    for key in ("pos", "neg"):
        g[key]["inputs"]["context_dim"] = context_dim
    g["latent"] = {"class_type": "EmptyHunyuanLatentVideo",
                   "inputs": {"width": width, "height": height, "length": length, "batch_size": batch}}
    return g


def _sampling_inputs(steps, cfg, denoise, latent, seed, model, scheduler):
    return {"model": list(model), "seed": seed, "steps": steps, "cfg": cfg, "scheduler": scheduler,
            "positive": list(POS), "negative": list(NEG), "latent_image": list(latent), "denoise": denoise}


def tcd_ksampler(gamma, steps, cfg, denoise=1.0, latent=LATENT, seed=SEED, model=MODEL, scheduler="tcd"):
    return {"class_type": "TCDKSampler",
            "inputs": {**_sampling_inputs(steps, cfg, denoise, latent, seed, model, scheduler), "gamma": gamma}}


def gamma_sweep(gammas, steps, cfg, denoise=1.0, latent=LATENT, seed=SEED, model=MODEL, scheduler="tcd"):
    return {"class_type": "TCDGammaSweep",
            "inputs": {**_sampling_inputs(steps, cfg, denoise, latent, seed, model, scheduler), "gammas": gammas}}


def stock_ksampler(steps, cfg, seed=SEED, model=MODEL, latent=LATENT):
    inputs = _sampling_inputs(steps, cfg, 1.0, latent, seed, model, "tcd")
    return {"class_type": "KSampler", "inputs": {**inputs, "sampler_name": "tcd"}}


def custom_nodes(gamma, steps, cfg, denoise=1.0, latent=LATENT, seed=SEED, model=MODEL):
    """SamplerTCD + TCD Scheduler into SamplerCustom (its output: 'sample')."""
    return {
        "sampler": {"class_type": "TCDSampler", "inputs": {"gamma": gamma}},
        "sigmas": {"class_type": "TCDSigmas", "inputs": {"model": list(model), "steps": steps, "denoise": denoise}},
        "sample": {"class_type": "SamplerCustom", "inputs": {
            "model": list(model), "add_noise": True, "noise_seed": seed, "cfg": cfg, "positive": list(POS),
            "negative": list(NEG), "sampler": ["sampler", 0], "sigmas": ["sigmas", 0], "latent_image": list(latent)}},
    }


def custom_advanced_nodes(gamma, steps, cfg, denoise=1.0, latent=LATENT, seed=SEED, model=MODEL):
    """SamplerTCD + TCD Scheduler + RandomNoise + CFGGuider into SamplerCustomAdvanced (its output: 'sample')."""
    nodes = custom_nodes(gamma, steps, cfg, denoise, latent, seed, model)
    nodes["noise"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": seed}}
    nodes["guider"] = {"class_type": "CFGGuider", "inputs": {"model": list(model), "positive": list(POS),
                                                             "negative": list(NEG), "cfg": cfg}}
    nodes["sample"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["noise", 0], "guider": ["guider", 0], "sampler": ["sampler", 0], "sigmas": ["sigmas", 0],
        "latent_image": list(latent)}}
    return nodes


ENTRY_POINTS = ("TCDKSampler", "SamplerCustom", "SamplerCustomAdvanced", "KSampler tcd/tcd", "TCDGammaSweep")


def entry_point(path, gamma, steps, cfg, model=MODEL):
    """(nodes, output) of one TCD entry point (one of ``ENTRY_POINTS``) on the base graph's nodes; ``gamma``: a tuple
    of gammas for TCDGammaSweep, unused by the stock KSampler (its sampler 'tcd' runs at gamma 0.3)."""
    if path == "TCDKSampler":
        return {"ks": tcd_ksampler(gamma, steps, cfg, model=model)}, ["ks", 0]
    if path == "SamplerCustom":
        return custom_nodes(gamma, steps, cfg, model=model), ["sample", 0]
    if path == "SamplerCustomAdvanced":
        return custom_advanced_nodes(gamma, steps, cfg, model=model), ["sample", 0]
    if path == "KSampler tcd/tcd":
        return {"ks": stock_ksampler(steps, cfg, model=model)}, ["ks", 0]
    if path == "TCDGammaSweep":
        return {"sw": gamma_sweep(", ".join(f"{g:g}" for g in gamma), steps, cfg, model=model)}, ["sw", 0]
    raise ValueError(f"path={path!r}: one of {ENTRY_POINTS}")


def save_latent(source, prefix=None):
    """A SaveLatent of ``source`` ([node id, slot]) under a unique prefix (or ``prefix``)."""
    return {"class_type": "SaveLatent", "inputs": {"samples": list(source),
                                                   "filename_prefix": prefix or f"latents/t{uuid.uuid4().hex[:12]}"}}


def latent_from_tensor(host, tensor):
    """A LoadLatent node reading ``tensor`` from the host's input folder (the host's own latent file format)."""
    name = f"img_{uuid.uuid4().hex[:8]}.latent"
    safetensors.torch.save_file({"latent_tensor": tensor.contiguous(), "latent_format_version_0": torch.tensor([])},
                                str(host.workdir / "input" / name))
    return {"class_type": "LoadLatent", "inputs": {"latent": name}}
