"""Test-only ComfyUI custom node: registers a narrow SDXL-shaped model family with the host, so that checkpoints the
tests build (seeded random weights, SDXL's exact key names) load through the host's real CheckpointLoaderSimple.

Loaded by the host like any custom node (server tests) or imported after the host (in-process tests). Not shipped
to users: it lives under tests/ and only the test harness points the host at it.
"""
import comfy.sd1_clip
import comfy.sdxl_clip
import comfy.supported_models
import comfy.supported_models_base
import comfy.text_encoders.sd2_clip
import torch

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
    def __init__(self, device="cpu", dtype=None, model_options=None):
        super().__init__(device=device, dtype=dtype, model_options={
            **(model_options or {}), "clip_l_model_config": TINY_CLIP, "clip_g_model_config": TINY_CLIP})


class TinySDXL(comfy.supported_models.SDXL):
    """SDXL with model_channels 32 and 32-wide text encoders (a few MB); detected only by its narrow config."""
    unet_config = {"model_channels": 32, "use_linear_in_transformer": True, "transformer_depth": [0, 0, 2, 2, 10, 10],
                   "context_dim": 64, "adm_in_channels": 32 + 1536, "use_temporal_attention": False}

    def clip_target(self, state_dict=None):
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
    state = {"v_pred": torch.tensor([])} if v_prediction else {}
    return save_ddpm_checkpoint(path, TinySDXL(dict(TINY_UNET)), seed, state)


def save_ddpm_checkpoint(path: str, cfg, seed: int, state: dict | None = None, tweak=None) -> str:
    """Write the checkpoint of supported-model ``cfg`` (UNet from ``init_weights``, then ``tweak(unet)`` if given;
    its text encoders; a TAESD-shaped VAE; ``state``'s extra keys) with the host's own writer."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.sd

    state = state or {}
    model = cfg.get_model(state, device=torch.device("cpu"))
    init_weights(model.diffusion_model, seed)
    if tweak is not None:
        tweak(model.diffusion_model)
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=comfy.model_management.get_torch_device(),
                                               offload_device=torch.device("cpu"))
    clip = comfy.sd.CLIP(cfg.clip_target(), model_options={"dtype": torch.float32})
    init_weights(clip.cond_stage_model, seed + 1)
    comfy.sd.save_checkpoint(path, patcher, clip, tiny_vae(4, seed + 2), extra_keys=state)
    return path


NODE_CLASS_MAPPINGS = {}


# -- Reliability test nodes (tests/test_reliability.py) ------------------------------------------------------------
def _chain_unet_wrapper(model, wrapper):
    """A clone of `model` whose model function runs `wrapper(call, args)`, where `call` is any earlier wrapper."""
    m = model.clone()
    prev = m.model_options.get("model_function_wrapper")

    def call(apply_model, args):
        if prev is not None:
            return prev(apply_model, args)
        return apply_model(args["input"], args["timestep"], **args["c"])

    m.set_model_unet_function_wrapper(lambda apply_model, args: wrapper(lambda: call(apply_model, args), args))
    return m


def _step_of(args) -> int | None:
    """1-based sampling step of this model call: position of the call's sigma in the run's sigma schedule."""
    sample_sigmas = args["c"].get("transformer_options", {}).get("sample_sigmas")
    if sample_sigmas is None:
        return None
    sigma = float(args["timestep"].flatten()[0])
    table = sample_sigmas[:-1].float().cpu()
    return int(torch.argmin((table - sigma).abs()).item()) + 1


class TCDTestFaultyModel:
    """Test-only: the model returns NaN (or inf) at one sampling step (stateless: the step is read from the sigma)."""
    CATEGORY = "_for_testing/tcd"
    FUNCTION = "patch"
    RETURN_TYPES = ("MODEL",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "value": (["nan", "inf", "-inf"],),
                             "at_step": ("INT", {"default": 2, "min": 1, "max": 1000})}}

    def patch(self, model, value, at_step):
        bad = float(value)

        def wrapper(call, args):
            out = call()
            if _step_of(args) == at_step:
                out = out.clone()
                out.view(-1)[:: max(1, out.numel() // 7)] = bad  # a few poisoned values, not the whole tensor
            return out
        return (_chain_unet_wrapper(model, wrapper),)


class TCDTestCallLog:
    """Test-only: appends 'start <step>' / 'end <step>' lines to a file around every model call (counts calls)."""
    CATEGORY = "_for_testing/tcd"
    FUNCTION = "patch"
    RETURN_TYPES = ("MODEL",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "path": ("STRING", {"default": ""})}}

    def patch(self, model, path):
        def log(line):
            with open(path, "a") as f:
                f.write(line + "\n")

        def wrapper(call, args):
            step = _step_of(args)
            log(f"start {step}")
            out = call()
            log(f"end {step}")
            return out
        return (_chain_unet_wrapper(model, wrapper),)


NODE_CLASS_MAPPINGS.update({"TCDTestFaultyModel": TCDTestFaultyModel, "TCDTestCallLog": TCDTestCallLog})


# -- A full-width SD1.5-architecture UNet with random weights (benchmarks) -----------------------------------------
SD15_UNET = {
    "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True, "legacy": False,
    "adm_in_channels": None, "in_channels": 4, "model_channels": 320, "num_res_blocks": [2, 2, 2, 2],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "channel_mult": [1, 2, 4, 4], "transformer_depth_middle": 1,
    "use_linear_in_transformer": False, "context_dim": 768, "num_heads": 8,
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], "use_temporal_attention": False,
    "use_temporal_resblock": False,
}


def sd15_random_model(seed: int = 1):
    """(ModelPatcher, parameter count) of the host's SD1.5 model class at full width, weights from ``init_weights``."""
    import comfy.model_management
    import comfy.model_patcher

    base = comfy.supported_models.SD15(dict(SD15_UNET)).get_model({}, device=torch.device("cpu"))
    init_weights(base.diffusion_model, seed)
    n = sum(p.numel() for p in base.diffusion_model.parameters())
    return comfy.model_patcher.ModelPatcher(base, load_device=comfy.model_management.get_torch_device(),
                                            offload_device=torch.device("cpu")), n



# -- Small SD1.5- and SD2.x-shaped checkpoints (TCD's own LoRAs are TCD-SD15 and TCD-SD21-base) --------------------
# SD1.5's and SD2's exact layout and key names (SD15_UNET's depths) at 32 channels, with a 3-layer CLIP-L-shaped
# (32 wide) or OpenCLIP-H-shaped (48 wide) text encoder. The stock SD15 / SD20 classes need model_channels 320, so each
# narrow model gets a test-only class deriving from the stock one, found only by its width; all else is the stock
# class's (SD20: heads of 16 channels, as the stock 64 is wider than the narrow first level's 32).
TINY_CLIP_H = {"hidden_size": 48, "intermediate_size": 96, "num_attention_heads": 2, "num_hidden_layers": 3,
               "projection_dim": 48}
TINY_SD15 = {**SD15_UNET, "model_channels": 32, "context_dim": TINY_CLIP["hidden_size"]}
TINY_SD20 = {**TINY_SD15, "use_linear_in_transformer": True, "context_dim": TINY_CLIP_H["hidden_size"]}
SD20_V_KEY = "output_blocks.11.1.transformer_blocks.0.norm1.bias"  # what the host's SD20 reads to tell 768-v


class TinySD15ClipModel(comfy.sd1_clip.SD1ClipModel):
    def __init__(self, device="cpu", dtype=None, model_options=None, **kwargs):
        super().__init__(device=device, dtype=dtype, model_options={
            **(model_options or {}), "clip_l_model_config": TINY_CLIP}, **kwargs)


class TinySD2ClipModel(comfy.text_encoders.sd2_clip.SD2ClipModel):
    def __init__(self, device="cpu", dtype=None, model_options=None, **kwargs):
        super().__init__(device=device, dtype=dtype, model_options={
            **(model_options or {}), "clip_h_model_config": TINY_CLIP_H}, **kwargs)


class TinySD15(comfy.supported_models.SD15):
    """SD1.5 with model_channels 32 and a 32-wide CLIP-L; detected only by its narrow config."""
    unet_config = {**comfy.supported_models.SD15.unet_config, "model_channels": 32,
                   "context_dim": TINY_SD15["context_dim"], "in_channels": 4}

    def clip_target(self, state_dict=None):
        return comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, TinySD15ClipModel)


class TinySD20(comfy.supported_models.SD20):
    """SD2.x (base eps, or 768-v as the stock class tells it) with model_channels 32, heads of 16 and a 48-wide
    OpenCLIP-H; detected only by its narrow config."""
    unet_config = {**comfy.supported_models.SD20.unet_config, "model_channels": 32,
                   "context_dim": TINY_SD20["context_dim"], "in_channels": 4}
    unet_extra_config = {**comfy.supported_models.SD20.unet_extra_config, "num_head_channels": 16}

    def clip_target(self, state_dict=None):
        return comfy.supported_models_base.ClipTarget(comfy.text_encoders.sd2_clip.SD2Tokenizer, TinySD2ClipModel)


for _tiny in (TinySD15, TinySD20):
    if _tiny not in comfy.supported_models.models:
        comfy.supported_models.models.insert(0, _tiny)


def build_sd_checkpoint(path: str, family: str, seed: int = 0) -> str:
    """Write a small SD1.5 (``sd15``), SD2.x-base (``sd20``) or SD2.x-768-v (``sd20-v``: the one norm bias the host's
    SD20 reads set to a trained-looking spread) checkpoint with the host's own writer."""
    if family not in ("sd15", "sd20", "sd20-v"):
        raise ValueError(f"family={family!r}: one of sd15, sd20, sd20-v")
    cfg = TinySD15(dict(TINY_SD15)) if family == "sd15" else TinySD20(dict(TINY_SD20))

    @torch.no_grad()
    def spread_v_bias(unet):
        bias = unet.get_parameter(SD20_V_KEY)
        bias.copy_(torch.rand(bias.shape, generator=torch.Generator().manual_seed(seed + 4)) - 0.5)
    return save_ddpm_checkpoint(path, cfg, seed, tweak=spread_v_bias if family == "sd20-v" else None)

# -- Small rectified-flow models: SD3-shaped (MMDiT) and Flux-shaped, with the real key names ----------------------
# SD3: the host detects depth from the patch embedding (hidden = 64 * depth, heads = depth), so a depth-2 MMDiT is
# found as the stock SD3 class (ModelSamplingDiscreteFlow, shift 3). Flux: the host's detection fixes 24 heads of
# width 128, so the narrow model gets a test-only class (found only by its hidden size) that sets its heads.
TINY_SD3 = {
    "in_channels": 16, "patch_size": 2, "out_channels": 16, "depth": 2, "input_size": None, "adm_in_channels": 32,
    "context_embedder_config": {"target": "torch.nn.Linear", "params": {"in_features": 48, "out_features": 128}},
    "num_patches": 256, "pos_embed_max_size": 16, "pos_embed_scaling_factor": None, "x_block_self_attn_layers": [],
}
TINY_FLUX_HIDDEN = 64
TINY_FLUX = {
    "image_model": "flux", "axes_dim": [8, 12, 12], "num_heads": 2, "mlp_ratio": 4.0, "theta": 10000,
    "out_channels": 16, "qkv_bias": True, "in_channels": 16, "hidden_size": TINY_FLUX_HIDDEN, "context_in_dim": 48,
    "patch_size": 2, "vec_in_dim": 32, "depth": 1, "depth_single_blocks": 1, "guidance_embed": True,
}
FLOW_CONDITIONING = {"tokens": 7, "context_dim": 48, "pooled_dim": 32}  # what both small flow models take


class TinyFlux(comfy.supported_models.Flux):
    """Flux (dev: guidance embedding, shift 1.15) with a 64-wide transformer of 2 heads; found by its hidden size."""
    unet_config = {"image_model": "flux", "guidance_embed": True, "hidden_size": TINY_FLUX_HIDDEN}

    def __init__(self, unet_config):
        super().__init__(unet_config)
        self.unet_config.update(num_heads=TINY_FLUX["num_heads"], axes_dim=list(TINY_FLUX["axes_dim"]))


if TinyFlux not in comfy.supported_models.models:
    comfy.supported_models.models.insert(0, TinyFlux)


# -- Small Qwen-Image- and Wan-shaped models (video latents), with the real key names ------------------------------
# Qwen-Image: the host's detection reads only the input width and the block count (heads, head width and text width
# are fixed at the full model's 24 x 128 and 3584), so the narrow model gets a test-only class, found only by its
# 48-wide text norm. Wan: the host's detection reads every width it needs (heads = dim / 128), so a 128-wide, 1-block
# Wan 2.1 T2V and Wan 2.2 TI2V 5B (48 latent channels) are found as the host's own WAN21_T2V and WAN22_T2V classes.
TINY_QWEN = {"image_model": "qwen_image", "in_channels": 64, "num_layers": 1}  # what the host's detection gives
TINY_QWEN_WIDTHS = {"num_attention_heads": 2, "attention_head_dim": 32, "joint_attention_dim": 48,
                    "axes_dims_rope": (8, 12, 12)}
TINY_WAN21 = {  # the host's detected form of a Wan 2.1 T2V model, narrow: 1 block, 1 head of 128
    "image_model": "wan2.1", "model_type": "t2v", "dim": 128, "out_dim": 16, "num_heads": 1, "ffn_dim": 256,
    "num_layers": 1, "patch_size": (1, 2, 2), "freq_dim": 256, "window_size": (-1, -1), "qk_norm": True,
    "cross_attn_norm": True, "eps": 1e-6, "in_dim": 16,
}
TINY_WAN22_5B = {**TINY_WAN21, "in_dim": 48, "out_dim": 48}  # Wan 2.2 TI2V 5B: the 48-channel Wan 2.2 latent
WAN_TEXT_DIM = 4096  # Wan's text width (umT5-XXL): the host's detection does not read it


class TinyQwenImage(comfy.supported_models.QwenImage):
    """Qwen-Image (ModelSamplingFlux, shift 1.15; Wan 2.1 latent) with 2 heads of 32 and a 48-wide text input;
    found only by its text norm's width (the stock model's is 3584)."""
    unet_config = {"image_model": "qwen_image"}

    @classmethod
    def matches(cls, unet_config, state_dict=None, unet_key_prefix=""):
        norm = (state_dict or {}).get(f"{unet_key_prefix}txt_norm.weight")
        return (norm is not None and norm.shape[0] == TINY_QWEN_WIDTHS["joint_attention_dim"]
                and super().matches(unet_config, state_dict))

    def __init__(self, unet_config):
        super().__init__(unet_config)
        self.unet_config.update(TINY_QWEN_WIDTHS, axes_dims_rope=list(TINY_QWEN_WIDTHS["axes_dims_rope"]))


if TinyQwenImage not in comfy.supported_models.models:
    comfy.supported_models.models.insert(0, TinyQwenImage)


# -- Small Lumina 2-, Z-Image- and AuraFlow-shaped models (image latents) --------------------------------------------
# The host's detection reads their widths (Lumina 2 / Z-Image: dim and text width; AuraFlow: text width and position
# table) but fixes their heads, rope axes and (AuraFlow) hidden width at the full models' values, so each narrow
# model gets a test-only class, found only by a width no full model has.
TINY_LUMINA2 = {"image_model": "lumina2", "patch_size": 2, "in_channels": 16, "dim": 64, "cap_feat_dim": 48,
                "n_layers": 1, "qk_norm": True}  # what the host's detection gives
TINY_ZIMAGE = {**TINY_LUMINA2, "dim": 256}  # Z-Image's modulation takes a 256-wide time embedding
TINY_AURAFLOW = {"max_seq": 256, "cond_seq_dim": 48, "n_double_layers": 1, "n_layers": 2}


class TinyLumina2(comfy.supported_models.Lumina2):
    """Lumina 2 (ModelSamplingDiscreteFlow, shift 6; Flux latent) 64 wide, 2 heads; found by its width."""
    unet_config = {"image_model": "lumina2", "dim": TINY_LUMINA2["dim"]}

    def __init__(self, unet_config):
        super().__init__(unet_config)
        self.unet_config.update(n_heads=2, n_kv_heads=1, axes_dims=[8, 12, 12], axes_lens=[300, 512, 512],
                                rope_theta=10000.0, ffn_dim_multiplier=4.0)


class TinyZImage(comfy.supported_models.ZImage):
    """Z-Image (Lumina 2's network with Z-Image's modulation and padding; shift 3) 256 wide, 2 heads of 128 (the full
    model's head width and rope axes); found by its width."""
    unet_config = {"image_model": "lumina2", "dim": TINY_ZIMAGE["dim"]}

    def __init__(self, unet_config):
        super().__init__(unet_config)
        self.unet_config.update(n_heads=2, n_kv_heads=2, axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512],
                                rope_theta=256.0, ffn_dim_multiplier=8.0 / 3.0, z_image_modulation=True,
                                time_scale=1000.0, pad_tokens_multiple=32)


class TinyAuraFlow(comfy.supported_models.AuraFlow):
    """AuraFlow (ModelSamplingDiscreteFlow, shift 1.73; SDXL latent) 64 wide, 2 heads; found by its text width."""
    unet_config = {"cond_seq_dim": TINY_AURAFLOW["cond_seq_dim"]}

    def __init__(self, unet_config):
        super().__init__(unet_config)
        self.unet_config.update(dim=64, n_heads=2, global_conddim=64)


for _tiny in (TinyLumina2, TinyZImage, TinyAuraFlow):
    if _tiny not in comfy.supported_models.models:
        comfy.supported_models.models.insert(0, _tiny)


def tiny_vae(latent_channels: int, seed: int):
    """A TAESD-shaped VAE (the host's own class and key names) with seeded weights."""
    import comfy.sd
    import comfy.taesd.taesd
    taesd = comfy.taesd.taesd.TAESD(latent_channels=latent_channels)
    init_weights(taesd, seed)
    return comfy.sd.VAE(sd=taesd.state_dict())


def build_vae(path: str, latent_channels: int = 16, seed: int = 0) -> str:
    """Write a small 16-channel (SD3 / Flux latent) VAE file for the host's VAELoader."""
    import comfy.utils
    comfy.utils.save_torch_file(tiny_vae(latent_channels, seed).get_sd(), path)
    return path


WAN_VAE_DIM = 4  # the small Wan 2.1 VAE's base width (the host reads it from decoder.head.0.gamma; the full one: 96)


def build_wan_vae(path: str, seed: int = 0) -> str:
    """Write a small Wan 2.1 VAE (the host's own WanVAE class and key names, found by its VAELoader as the Wan 2.1
    VAE: 16 latent channels, 8x spatial and 4x temporal; what Qwen-Image's VAE is too), seeded weights."""
    import comfy.ldm.wan.vae
    import comfy.utils
    vae = comfy.ldm.wan.vae.WanVAE(dim=WAN_VAE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                   attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0)
    init_weights(vae, seed)
    comfy.utils.save_torch_file(vae.state_dict(), path)
    return path


def build_flow_checkpoint(path: str, family: str = "sd3", seed: int = 0) -> str:
    """Write a checkpoint (model + 16-channel VAE, no text encoders, as SD3.5's own files) with the host's writer."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.sd
    model = flow_base_model(family, seed)
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=comfy.model_management.get_torch_device(),
                                               offload_device=torch.device("cpu"))
    comfy.sd.save_checkpoint(path, patcher, None, tiny_vae(16, seed + 2))
    return path


def build_flow_model(path: str, family: str, seed: int = 0) -> str:
    """Write a small flow model (``flow_base_model``: seeded weights, real key names) with the host's writer."""
    import comfy.utils
    comfy.utils.save_torch_file(flow_base_model(family, seed).diffusion_model.state_dict(), path)
    return path


def flux_config(config: dict) -> dict:
    """A copy of a Flux config with what this host's detection gives a standard Flux (newer hosts: txt_ids_dims)."""
    import dataclasses

    from comfy.ldm.flux import model as flux_model
    config = dict(config)
    if "txt_ids_dims" in {f.name for f in dataclasses.fields(flux_model.FluxParams)}:
        config["txt_ids_dims"] = []
    return config


def flow_base_model(family: str, seed: int = 0):
    """The host's model object for a small flow model (SD3, Flux, Qwen-Image, Wan 2.1, Wan 2.2 TI2V 5B, Lumina 2,
    Z-Image, AuraFlow shaped), weights (and saved buffers) seeded."""
    configs = {"sd3": lambda: comfy.supported_models.SD3(dict(TINY_SD3)),
               "flux": lambda: TinyFlux(flux_config(TINY_FLUX)),
               "qwen_image": lambda: TinyQwenImage(dict(TINY_QWEN)),
               "wan2.1": lambda: comfy.supported_models.WAN21_T2V(dict(TINY_WAN21)),
               "wan2.2-5b": lambda: comfy.supported_models.WAN22_T2V(dict(TINY_WAN22_5B)),
               "lumina2": lambda: TinyLumina2(dict(TINY_LUMINA2)),
               "z_image": lambda: TinyZImage(dict(TINY_ZIMAGE)),
               "auraflow": lambda: TinyAuraFlow(dict(TINY_AURAFLOW))}
    if family not in configs:
        raise ValueError(f"family={family!r}: one of {sorted(configs)}")
    model = configs[family]().get_model({}, device=torch.device("cpu"))
    init_weights(model.diffusion_model, seed)
    init_buffers(model.diffusion_model, seed + 3)
    return model


@torch.no_grad()
def init_buffers(module: torch.nn.Module, seed: int) -> None:
    """Seed the saved float buffers (SD3's pos_embed): the host allocates them with torch.empty, which can hold NaN."""
    g = torch.Generator().manual_seed(seed)
    for _, b in sorted(module.named_buffers(), key=lambda kv: kv[0]):
        if b.is_floating_point():
            b.copy_((torch.rand(b.shape, generator=g) * 2 - 1) * 0.5)


TEXT_DIMS = {"wan": WAN_TEXT_DIM}  # a CLIPLoader type -> its small model's text width (others: 48)


class TCDTestConditioning:
    """Test-only: seeded random conditioning shaped for the small flow models (no text encoder needed); the text
    width is the small models' 48 (SD3, Flux, Qwen-Image) unless given (Wan: ``WAN_TEXT_DIM``), directly or as the
    type of the CLIPLoader it stands in for (``clip_type``)."""
    CATEGORY = "_for_testing/tcd"
    FUNCTION = "make"
    RETURN_TYPES = ("CONDITIONING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
                             "guidance": ("FLOAT", {"default": 3.5, "min": 0.0, "max": 100.0})},
                "optional": {"context_dim": ("INT", {"default": FLOW_CONDITIONING["context_dim"], "min": 1,
                                                     "max": 8192}),
                             "clip_type": ("STRING", {"default": ""})}}

    def make(self, seed, guidance, context_dim=FLOW_CONDITIONING["context_dim"], clip_type=""):
        context_dim = TEXT_DIMS.get(clip_type, context_dim)
        g = torch.Generator().manual_seed(seed)
        c = FLOW_CONDITIONING
        cond = torch.randn(1, c["tokens"], context_dim, generator=g)
        pooled = torch.randn(1, c["pooled_dim"], generator=g)
        return ([[cond, {"pooled_output": pooled, "guidance": guidance}]],)


NODE_CLASS_MAPPINGS["TCDTestConditioning"] = TCDTestConditioning


def build_sdxl_lora(path: str, seed: int = 7) -> str:
    """A kohya-named LoRA (``lora_unet_…``, as the TCD-SDXL file) on the small SDXL model's attention and feed-forward
    output, written by the tests' one LoRA writer (tcd_lora_files) from the host's own model layout."""
    import comfy.utils

    import tcd_lora_files
    base = TinySDXL(dict(TINY_UNET)).get_model({}, device=torch.device("cpu"))
    sd, expected = tcd_lora_files.make_lora("kohya_ldm", base, seed=seed, scale=0.1,
                                            only=r"attn1\.to_|attn2\.to_q|ff\.net\.2")
    if len(expected) < 30:
        raise RuntimeError("the small SDXL model has no attention layers to write a LoRA for")
    comfy.utils.save_torch_file(sd, path)
    return path


def build_flow_lora(path: str, family: str, seed: int = 7, fmt: str = "diffusers") -> str:
    """A LoRA for a small flow model in spelling ``fmt`` of tcd_lora_files.FLOW_FORMATS (default diffusers'
    ``transformer.…lora_A/B``, as the Hyper-SD3/Hyper-FLUX files; Lightning's bare names: 'bare_ldm'; lightx2v's:
    'lightx2v'), written by the tests' one LoRA writer from the host's own model layout."""
    import comfy.utils

    import tcd_lora_files
    sd, _ = tcd_lora_files.make_flow_lora(fmt, flow_base_model(family, 0), seed=seed)
    comfy.utils.save_torch_file(sd, path)
    return path
