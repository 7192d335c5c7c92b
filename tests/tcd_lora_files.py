"""Synthetic LoRA files for tests and the benchmark, written from the host's own model layout (never from the loader
under test): the TCD/LCM LoRA target modules of a UNet, named in each key format found in the wild.

Module names come from ``comfy.utils.unet_to_diffusers`` (diffusers name -> the host's LDM name); weight shapes from
the host model's state dict. Every module gets seeded random up/down tensors so tests can recompute the patch.
"""
from __future__ import annotations

import re

import torch

# The modules the TCD / LCM LoRA training scripts target (diffusers names), as a regex on the diffusers key.
TCD_TARGETS = re.compile(r"(attn[12]\.to_(q|k|v|out\.0)|\.proj_in|\.proj_out|ff\.net\.0\.proj|ff\.net\.2|"
                         r"resnets\.\d+\.(conv1|conv2|conv_shortcut|time_emb_proj)|downsamplers\.0\.conv|"
                         r"upsamplers\.0\.conv)\.weight$")
ATTN = re.compile(r"\.attn[12]\.to_(q|k|v|out\.0)$")
CLIP_LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")

# format -> (unet name(diffusers name, ldm name) or None, te name(encoder index 1|2, layer, linear) or None,
#            down suffix, up suffix, alpha stored?)
FORMATS = {
    "kohya_ldm": (lambda d, l: "lora_unet_" + l.replace(".", "_"),
                  lambda e, i, c: f"lora_te{e}_text_model_encoder_layers_{i}_{c.replace('.', '_')}",
                  ".lora_down.weight", ".lora_up.weight", True),
    "kohya_diffusers": (lambda d, l: "lora_unet_" + d.replace(".", "_"),
                        lambda e, i, c: f"lora_te{e}_text_model_encoder_layers_{i}_{c.replace('.', '_')}",
                        ".lora_down.weight", ".lora_up.weight", False),
    "kohya_te_sd1_naming": (lambda d, l: "lora_unet_" + d.replace(".", "_"),
                            lambda e, i, c: (f"lora_te_text_model_encoder_layers_{i}_{c.replace('.', '_')}"
                                             if e == 1 else None),
                            ".lora_down.weight", ".lora_up.weight", True),
    "diffusers_lora_down": (lambda d, l: "unet." + d,
                            lambda e, i, c: f"text_encoder{'_2' if e == 2 else ''}.text_model.encoder.layers.{i}.{c}",
                            ".lora.down.weight", ".lora.up.weight", True),
    "diffusers_lora_AB": (lambda d, l: "unet." + d,
                          lambda e, i, c: f"text_encoder{'_2' if e == 2 else ''}.text_model.encoder.layers.{i}.{c}",
                          ".lora_A.weight", ".lora_B.weight", False),
    "diffusers_old_processor": (
        lambda d, l: (re.sub(r"\.to_(q|k|v|out)(\.0)?$", lambda m: f".processor.to_{m.group(1)}", d)
                      if ATTN.search(d) else None),
        lambda e, i, c: (f"text_encoder{'_2' if e == 2 else ''}.text_model.encoder.layers.{i}.{c}"
                         ".lora_linear_layer"),
        "_lora.down.weight", "_lora.up.weight", False),
    "peft": (lambda d, l: "base_model.model." + d, None, ".lora_A.weight", ".lora_B.weight", False),
}
# the old attention-processor form spells text-encoder tensors '.lora_linear_layer.down.weight'
TE_SUFFIX_OVERRIDE = {"diffusers_old_processor": (".down.weight", ".up.weight")}


def unet_targets(base_model):
    """[(diffusers name, ldm name, weight shape)] for every TCD target module of a host BaseModel's UNet."""
    import comfy.utils
    sd_shapes = {k: tuple(v.shape) for k, v in base_model.state_dict().items()}
    out = []
    for dk, lk in sorted(comfy.utils.unet_to_diffusers(base_model.model_config.unet_config).items()):
        if TCD_TARGETS.search(dk):
            full = "diffusion_model." + lk
            if full in sd_shapes:
                out.append((dk[:-len(".weight")], lk[:-len(".weight")], sd_shapes[full], full))
    return out


def clip_targets(cond_stage_model):
    """[(encoder index, layer, linear name, weight shape, state key)] for both SDXL text encoders (1 = clip_l)."""
    sd = {k: tuple(v.shape) for k, v in cond_stage_model.state_dict().items()}
    out = []
    for e, enc in ((1, "clip_l"), (2, "clip_g")):
        for i in range(64):
            for c in CLIP_LINEARS:
                k = f"{enc}.transformer.text_model.encoder.layers.{i}.{c}.weight"
                if k in sd:
                    out.append((e, i, c, sd[k], k))
    return out


def make_lora(fmt, base_model, clip_model=None, rank=4, seed=0, dtype=torch.float32, scale=0.05, only=None):
    """(state dict, expected) for a LoRA in format ``fmt``: expected maps the host weight key to
    (up, down, alpha or None) so a test can recompute W + s * alpha / rank * up @ down itself. ``only``: a regex
    on the diffusers module name to keep a subset of the UNet modules."""
    unet_name, te_name, dsuf, usuf, with_alpha = FORMATS[fmt]
    g = torch.Generator().manual_seed(seed)
    sd, expected = {}, {}

    def add(name, shape, key, suffixes=(dsuf, usuf)):
        out_f = shape[0]
        in_shape = shape[1:]
        down = (torch.randn((rank, *in_shape), generator=g) * scale).to(dtype)
        up = (torch.randn((out_f, rank, *([1] * (len(in_shape) - 1))), generator=g) * scale).to(dtype)
        sd[name + suffixes[0]] = down
        sd[name + suffixes[1]] = up
        alpha = None
        if with_alpha:
            alpha = float(rank) / 2 + (len(expected) % 3)  # differs between modules
            sd[name + ".alpha"] = torch.tensor(alpha)
        expected[key] = (up, down, alpha)

    for d, l, shape, key in unet_targets(base_model):
        if only is not None and not re.search(only, d):
            continue
        name = unet_name(d, l)
        if name is not None:
            add(name, shape, key)
    if clip_model is not None and te_name is not None:
        sfx = TE_SUFFIX_OVERRIDE.get(fmt, (dsuf, usuf))
        for e, i, c, shape, key in clip_targets(clip_model):
            name = te_name(e, i, c)
            if name is not None:
                add(name, shape, key, sfx)
    return sd, expected


def expected_weight(w0, up, down, alpha, strength):
    """W + strength * (alpha / rank) * up @ down, computed here from the formula."""
    rank = down.shape[0]
    scale = 1.0 if alpha is None else alpha / rank
    delta = up.double().flatten(1) @ down.double().flatten(1)
    return (w0.double() + strength * scale * delta.reshape(w0.shape)).to(w0.dtype)
