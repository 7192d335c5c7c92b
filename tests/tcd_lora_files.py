"""Synthetic LoRA files for tests and the benchmark, written from the host's own model layout (never from the loader
under test): the TCD/LCM LoRA target modules of a UNet, or every changeable weight of an SD3/Flux transformer, named
in each key format found in the wild.

Module names come from ``comfy.utils.unet_to_diffusers`` (UNets) or ``mmdit_to_diffusers`` / ``flux_to_diffusers``
(transformers: diffusers name -> the host's LDM name, or a row slice of it); weight shapes from the host model's state
dict. Every module gets seeded random up/down tensors so tests can recompute the patch.
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
    "kohya_ldm": (lambda d, ldm: "lora_unet_" + ldm.replace(".", "_"),
                  lambda e, i, c: f"lora_te{e}_text_model_encoder_layers_{i}_{c.replace('.', '_')}",
                  ".lora_down.weight", ".lora_up.weight", True),
    "kohya_diffusers": (lambda d, ldm: "lora_unet_" + d.replace(".", "_"),
                        lambda e, i, c: f"lora_te{e}_text_model_encoder_layers_{i}_{c.replace('.', '_')}",
                        ".lora_down.weight", ".lora_up.weight", False),
    "kohya_te_sd1_naming": (lambda d, ldm: "lora_unet_" + d.replace(".", "_"),
                            lambda e, i, c: (f"lora_te_text_model_encoder_layers_{i}_{c.replace('.', '_')}"
                                             if e == 1 else None),
                            ".lora_down.weight", ".lora_up.weight", True),
    "diffusers_lora_down": (lambda d, ldm: "unet." + d,
                            lambda e, i, c: f"text_encoder{'_2' if e == 2 else ''}.text_model.encoder.layers.{i}.{c}",
                            ".lora.down.weight", ".lora.up.weight", True),
    "diffusers_lora_AB": (lambda d, ldm: "unet." + d,
                          lambda e, i, c: f"text_encoder{'_2' if e == 2 else ''}.text_model.encoder.layers.{i}.{c}",
                          ".lora_A.weight", ".lora_B.weight", False),
    "diffusers_old_processor": (
        lambda d, ldm: (re.sub(r"\.to_(q|k|v|out)(\.0)?$", lambda m: f".processor.to_{m.group(1)}", d)
                      if ATTN.search(d) else None),
        lambda e, i, c: (f"text_encoder{'_2' if e == 2 else ''}.text_model.encoder.layers.{i}.{c}"
                         ".lora_linear_layer"),
        "_lora.down.weight", "_lora.up.weight", False),
    "peft": (lambda d, ldm: "base_model.model." + d, None, ".lora_A.weight", ".lora_B.weight", False),
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

    for d, ldm, shape, key in unet_targets(base_model):
        if only is not None and not re.search(only, d):
            continue
        name = unet_name(d, ldm)
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


# -- rectified-flow transformers (SD3 / SD3.5 MMDiT, Flux) ---------------------------------------------------------
# Modules come from the host: 'ldm' = every weight of the transformer a LoRA can change (2-D or more) under its own
# name; 'diffusers' = the same weights as the host's diffusers map names them (``comfy.utils.mmdit_to_diffusers`` /
# ``flux_to_diffusers``: fused q/k/v split into row slices, Flux's single-block linear1 into q, k, v and proj_mlp,
# scale/shift rows swapped for the final and last-context modulations); 'ldm_qkv' (Flux): 'ldm' with each single
# block's linear1 given only for its q/k/v rows ('linear1_qkv').
# format -> (module list, name(list name), down suffix, up suffix, alpha stored?)
FLOW_FORMATS = {
    "kohya": ("ldm", lambda n: "lora_unet_" + n.replace(".", "_"), ".lora_down.weight", ".lora_up.weight", True),
    "comfy_ldm": ("ldm", lambda n: "diffusion_model." + n, ".lora_down.weight", ".lora_up.weight", True),
    "diffusers": ("diffusers", lambda n: "transformer." + n, ".lora_A.weight", ".lora_B.weight", False),
    "diffusers_lora_down": ("diffusers", lambda n: "transformer." + n, ".lora.down.weight", ".lora.up.weight", True),
    "peft": ("diffusers", lambda n: "base_model.model." + n, ".lora_A.weight", ".lora_B.weight", False),
    "onetrainer": ("diffusers", lambda n: "lora_transformer_" + n.replace(".", "_"), ".lora_down.weight",
                   ".lora_up.weight", True),
    "lycoris": ("diffusers", lambda n: "lycoris_" + n.replace(".", "_"), ".lora_down.weight", ".lora_up.weight", True),
    "unprefixed": ("diffusers", lambda n: n, ".lora_A.weight", ".lora_B.weight", False),
    "comfy_linear1_qkv": ("ldm_qkv", lambda n: "diffusion_model." + n, ".lora_down.weight", ".lora_up.weight", True),
    # Qwen-Image (its weights carry the diffusers names): Lightning's bare names, diffusers under 'transformer.', PEFT
    "bare_ldm": ("ldm", lambda n: n, ".lora_down.weight", ".lora_up.weight", True),
    "transformer_ldm": ("ldm", lambda n: "transformer." + n, ".lora_A.weight", ".lora_B.weight", False),
    "peft_ldm": ("ldm", lambda n: "base_model.model." + n, ".lora_A.weight", ".lora_B.weight", False),
    # Wan: lightx2v ('diffusion_model.' + lora_A/B + alpha), Wan-Fun's 'lora_unet__' (renamed by the host's
    # comfy.lora_convert.convert_lora), Kijai's ('diffusion_model.' + lora_down/up, plus add_diffs below)
    "lightx2v": ("ldm", lambda n: "diffusion_model." + n, ".lora_A.weight", ".lora_B.weight", True),
    "wan_fun": ("ldm", lambda n: "lora_unet__" + n.replace(".", "_"), ".lora_down.weight", ".lora_up.weight", True),
    "kijai": ("ldm", lambda n: "diffusion_model." + n, ".lora_down.weight", ".lora_up.weight", False),
}
# the formats of SD3 / Flux LoRAs
MMDIT_FORMATS = ("kohya", "comfy_ldm", "diffusers", "diffusers_lora_down", "peft", "onetrainer", "lycoris",
                 "unprefixed", "comfy_linear1_qkv")
# the spellings people ship, per family: (label, FLOW_FORMATS key)
SPELLINGS = {
    "Qwen-Image": (("Lightning (bare, lora_down/up + alpha)", "bare_ldm"),
                   ("diffusers (transformer., lora_A/B)", "transformer_ldm"), ("kohya (lora_unet_)", "kohya"),
                   ("PEFT (base_model.model.)", "peft_ldm")),
    "Wan": (("lightx2v (diffusion_model., lora_A/B + alpha)", "lightx2v"), ("musubi (lora_unet_)", "kohya"),
            ("Kijai (lora_down/up + diff_b + diff + diff_m)", "kijai"), ("Wan-Fun (lora_unet__)", "wan_fun")),
}
# other spellings the host's diffusers map also holds for the same weights (LyCORIS LoKr 'ff.linear_in', Flux 2's
# fused 'attn.to_qkv_mlp_proj' / 'attn.to_out'): a file uses one spelling per weight, the standard diffusers one
NOT_DIFFUSERS = re.compile(r"\.(linear_in|linear_out|to_qkv_mlp_proj|to_out)\.weight$")


def flow_targets(base_model, kind):
    """[(name, (host weight key, (first row, rows) or None, rows swapped?), delta shape)] for every module of a host
    SD3/Flux transformer in list ``kind`` ('ldm', 'diffusers' or 'ldm_qkv'), sorted by name."""
    import comfy.model_base
    import comfy.utils
    sd = {k: tuple(v.shape) for k, v in base_model.state_dict().items()}
    uc = base_model.model_config.unet_config
    out = []
    if kind in ("ldm", "ldm_qkv"):
        hidden = uc.get("hidden_size")
        for k, shape in sd.items():
            if k.startswith("diffusion_model.") and k.endswith(".weight") and len(shape) >= 2:
                name = k[len("diffusion_model."):-len(".weight")]
                if kind == "ldm_qkv" and name.endswith(".linear1"):  # q, k, v: the first 3 x hidden rows
                    out.append((name + "_qkv", (k, (0, 3 * hidden), False), (3 * hidden, *shape[1:])))
                else:
                    out.append((name, (k, None, False), shape))
        return sorted(out)
    to_diffusers = (comfy.utils.flux_to_diffusers if isinstance(base_model, comfy.model_base.Flux)
                    else comfy.utils.mmdit_to_diffusers)
    for d, t in to_diffusers(uc, output_prefix="diffusion_model.").items():
        key = t if isinstance(t, str) else t[0]
        if not d.endswith(".weight") or NOT_DIFFUSERS.search(d) or len(sd.get(key, ())) < 2:
            continue
        shape = sd[key]
        rows = None
        if isinstance(t, tuple) and t[1] is not None:
            dim, first, n = t[1]
            assert dim == 0
            rows, shape = (first, n), (n, *shape[1:])
        out.append((d[:-len(".weight")], (key, rows, isinstance(t, tuple) and len(t) > 2), shape))
    return sorted(out)


def seeded(shape, g, scale, dtype, meta):
    """A seeded random tensor, or a shape-only stand-in on the meta device (full-size layouts cost no memory)."""
    if meta:
        return torch.empty(shape, dtype=dtype, device="meta")
    return (torch.randn(shape, generator=g) * scale).to(dtype)


def make_flow_lora(fmt, base_model, rank=4, seed=0, dtype=torch.float32, scale=0.05, only=None, meta=False):
    """(state dict, expected) for a transformer LoRA in format ``fmt`` (FLOW_FORMATS): expected maps each module name
    to (host weight key, rows or None, swapped, up, down, alpha or None). ``only``: a regex on the list name; ``meta``:
    shape-only tensors (alphas stay real)."""
    kind, name_of, dsuf, usuf, with_alpha = FLOW_FORMATS[fmt]
    g = torch.Generator().manual_seed(seed)
    sd, expected = {}, {}
    for n, (key, rows, swapped), shape in flow_targets(base_model, kind):
        if only is not None and not re.search(only, n):
            continue
        name = name_of(n)
        down = seeded((rank, *shape[1:]), g, scale, dtype, meta)
        up = seeded((shape[0], rank, *([1] * (len(shape) - 2))), g, scale, dtype, meta)
        sd[name + dsuf], sd[name + usuf] = down, up
        alpha = None
        if with_alpha:
            alpha = float(rank) / 2 + (len(expected) % 3)
            sd[name + ".alpha"] = torch.tensor(alpha)
        expected[name] = (key, rows, swapped, up, down, alpha)
    return sd, expected


def add_diffs(sd, base_model, seed=0, dtype=torch.float32, scale=0.05, meta=False):
    """Kijai's extra tensors, added to a 'kijai' LoRA in place: a '.diff_b' for every module whose weight has a bias,
    a '.diff' (and '.diff_b') for every 1-D weight (the norms), a '.diff_m' for every 'modulation' parameter (Wan's
    per-block scale/shift table). Returns {host key: delta} for every weight or bias they change."""
    g = torch.Generator().manual_seed(seed + 1000)
    shapes = {k: tuple(v.shape) for k, v in base_model.state_dict().items() if k.startswith("diffusion_model.")}
    names = {k[:-len(".lora_down.weight")] for k in sd if k.endswith(".lora_down.weight")}
    deltas = {}

    def add(key, file_key):
        deltas[key] = sd[file_key] = seeded(shapes[key], g, scale, dtype, meta)

    for k, shape in sorted(shapes.items()):
        base = k[:-len(".weight")] if k.endswith(".weight") else None
        if base and len(shape) == 1:  # a norm's weight
            add(k, base + ".diff")
            if base + ".bias" in shapes:
                add(base + ".bias", base + ".diff_b")
        elif base and base in names and base + ".bias" in shapes:
            add(base + ".bias", base + ".diff_b")
        elif k.endswith(".modulation"):
            add(k, k[:-len(".modulation")] + ".diff_m")
    return deltas

def expected_flow_weights(w0, expected, strength):
    """{weight key: W + strength * sum of (alpha / rank) * up @ down over its modules}, each delta on its rows and, for
    the diffusers scale/shift modulations, with its two halves swapped; computed here from the formula."""
    out = {}
    for key, rows, swapped, up, down, alpha in expected.values():
        w = out.setdefault(key, w0[key].double().clone())
        rank = down.shape[0]
        delta = up.double().flatten(1) @ down.double().flatten(1) * strength * (1.0 if alpha is None else alpha / rank)
        if swapped:
            half = delta.shape[0] // 2
            delta = torch.cat([delta[half:], delta[:half]])
        first, n = rows if rows is not None else (0, w.shape[0])
        w[first:first + n] += delta.reshape(n, *w.shape[1:])
    return {k: v.to(w0[k].dtype) for k, v in out.items()}
