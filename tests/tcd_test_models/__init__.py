"""Test-only ComfyUI custom node: registers a narrow SDXL-shaped model family with the host, so that checkpoints the
tests build (seeded random weights, SDXL's exact key names) load through the host's real CheckpointLoaderSimple.

Loaded by the host like any custom node (server tests) or imported after the host (in-process tests). Not shipped
to users: it lives under tests/ and only the test harness points the host at it.
"""
import torch

import comfy.sdxl_clip
import comfy.supported_models
import comfy.supported_models_base

TINY_CLIP = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 3,
             "projection_dim": 32}

# The full UNet config in the host's detected form: SDXL's layout (same depths and key names), narrow channels.
TINY_UNET = {
    "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True, "legacy": False,
    "num_classes": "sequential", "adm_in_channels": 32 + 1536, "in_channels": 4, "model_channels": 32,
    "num_res_blocks": [2, 2, 2], "transformer_depth": [0, 0, 2, 2, 10, 10], "channel_mult": [1, 2, 4],
    "transformer_depth_middle": 10, "use_linear_in_transformer": True, "context_dim": 64, "num_head_channels": 64,
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10], "use_temporal_attention": False,
    "use_temporal_resblock": False,
}


class TinySDXLClipModel(comfy.sdxl_clip.SDXLClipModel):
    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(device=device, dtype=dtype, model_options={
            **model_options, "clip_l_model_config": TINY_CLIP, "clip_g_model_config": TINY_CLIP})


class TinySDXL(comfy.supported_models.SDXL):
    """SDXL with model_channels 32 and 32-wide text encoders (a few MB); detected only by its narrow config."""
    unet_config = {"model_channels": 32, "use_linear_in_transformer": True, "transformer_depth": [0, 0, 2, 2, 10, 10],
                   "context_dim": 64, "adm_in_channels": 32 + 1536, "use_temporal_attention": False}

    def clip_target(self, state_dict={}):
        return comfy.supported_models_base.ClipTarget(comfy.sdxl_clip.SDXLTokenizer, TinySDXLClipModel)


if TinySDXL not in comfy.supported_models.models:
    comfy.supported_models.models.insert(0, TinySDXL)


@torch.no_grad()
def init_weights(module: torch.nn.Module, seed: int) -> None:
    """Explicit init (the host's layers skip it on purpose): U(+-1/sqrt(fan_in)) for weights and biases, norms 1/0."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
        if p.ndim >= 2:
            bound = 1.0 / (p[0].numel() ** 0.5)
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound)
        elif "norm" in name or name.endswith("ln_1.weight") or name.endswith("ln_2.weight"):
            p.fill_(1.0 if name.endswith("weight") else 0.0)
        else:
            fan_in = None
            parent = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
            w = getattr(parent, "weight", None)
            if w is not None and w.ndim >= 2 and name.endswith("bias"):
                fan_in = w[0].numel()
            if fan_in is None and name.endswith("weight"):
                p.fill_(1.0)
                continue
            bound = 1.0 / ((fan_in or p.numel()) ** 0.5)
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound)


def build_checkpoint(path: str, seed: int = 0, v_prediction: bool = False) -> str:
    """Write a TinySDXL checkpoint (UNet, both text encoders, a TAESD-shaped VAE) with the host's own writer."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.sd
    import comfy.taesd.taesd

    cfg = TinySDXL(dict(TINY_UNET))
    state = {"v_pred": torch.tensor([])} if v_prediction else {}
    model = cfg.get_model(state, device=torch.device("cpu"))
    init_weights(model.diffusion_model, seed)
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=comfy.model_management.get_torch_device(),
                                               offload_device=torch.device("cpu"))
    clip = comfy.sd.CLIP(cfg.clip_target(), model_options={"dtype": torch.float32})
    init_weights(clip.cond_stage_model, seed + 1)
    taesd = comfy.taesd.taesd.TAESD(latent_channels=4)
    init_weights(taesd, seed + 2)
    vae = comfy.sd.VAE(sd=taesd.state_dict())
    comfy.sd.save_checkpoint(path, patcher, clip, vae, extra_keys=state)
    return path


NODE_CLASS_MAPPINGS = {}
