"""LoRA files, checked before anything is applied: header reading, grouping keys into modules, mapping every module to
a weight of the model or a text encoder (the host's key maps, plus the few diffusers/PEFT spellings they miss), shape
checks, base-family detection and the one-paragraph report.

The host does the real work (``comfy.lora.model_lora_keys_unet`` / ``model_lora_keys_clip`` build the key maps,
``comfy.lora.load_lora`` builds the weight adapters, ``ModelPatcher.add_patches`` applies them lazily); this module only
decides, up front, whether *all* of a LoRA fits, and says so.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import struct
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import comfy.lora
import comfy.supported_models
import comfy.utils
import safetensors
import torch

from ..samplers import TCDInputError

log = logging.getLogger("comfyui-tcd.lora")


class TCDLoraError(TCDInputError):
    """A LoRA file that cannot be applied in full (the message names the file, what is wrong and what to do)."""


# --------------------------------------------------------------------------------------------------------------------
# Key suffixes -> (adapter kind, role). Longest suffixes are tried first, so '.lora_linear_layer.up.weight' wins over
# anything shorter. Every spelling here is one the host's weight adapters read (comfy/weight_adapter/*.py).
_SUFFIXES = {
    ".lora_linear_layer.down.weight": ("lora", "down"), ".lora_linear_layer.up.weight": ("lora", "up"),
    ".lora_A.default.weight": ("lora", "down"), ".lora_B.default.weight": ("lora", "up"),
    ".lora_down.weight": ("lora", "down"), ".lora_up.weight": ("lora", "up"), ".lora_mid.weight": ("lora", "mid"),
    ".lora.down.weight": ("lora", "down"), ".lora.up.weight": ("lora", "up"),
    "_lora.down.weight": ("lora", "down"), "_lora.up.weight": ("lora", "up"),
    ".lora_A.weight": ("lora", "down"), ".lora_B.weight": ("lora", "up"),
    ".hada_w1_a": ("loha", "w1a"), ".hada_w1_b": ("loha", "w1b"), ".hada_w2_a": ("loha", "w2a"),
    ".hada_w2_b": ("loha", "w2b"), ".hada_t1": ("loha", "t1"), ".hada_t2": ("loha", "t2"),
    ".lokr_w1": ("lokr", "w1"), ".lokr_w2": ("lokr", "w2"), ".lokr_w1_a": ("lokr", "w1a"),
    ".lokr_w1_b": ("lokr", "w1b"), ".lokr_w2_a": ("lokr", "w2a"), ".lokr_w2_b": ("lokr", "w2b"),
    ".lokr_t2": ("lokr", "t2"),
    ".lora_A": ("lora", "down"), ".lora_B": ("lora", "up"),
    ".diff": ("diff", "diff"), ".diff_b": ("diff", "diff_b"),
    ".alpha": (None, "alpha"), ".dora_scale": (None, "dora_scale"), ".reshape_weight": (None, "reshape"),
}
_SUFFIX_ORDER = sorted(_SUFFIXES, key=len, reverse=True)
_REQUIRED = {"lora": ("up", "down"), "loha": ("w1a", "w1b", "w2a", "w2b"), "diff": ()}

TE_PARTS = ("te1", "te2", "te3")
PARTS = ("unet", *TE_PARTS, "other")
PART_NAMES = {"unet": "UNet", "te1": "text encoder 1", "te2": "text encoder 2", "te3": "text encoder 3",
              "other": "other"}
FAMILY_BY_WIDTH = {768: "SD1.5", 1024: "SD2.x", 2048: "SDXL", 1280: "SDXL refiner"}
# rectified-flow transformers by hidden width (the input width of their attention projections)
FLOW_FAMILY_BY_WIDTH = {3072: "Flux", 2432: "SD3.5 large", 1536: "SD3/SD3.5 medium"}


def split_key(key: str):
    """(module name, adapter kind, role) for a LoRA key, or None for a tensor that is not part of a LoRA module."""
    for suf in _SUFFIX_ORDER:
        if key.endswith(suf) and len(key) > len(suf):
            kind, role = _SUFFIXES[suf]
            return key[:-len(suf)], kind, role
    return None


def part_of(name: str) -> str:
    """Which part of the base model a LoRA module is meant for, from its name alone."""
    if name.startswith(("lora_te3_", "text_encoder_3.", "text_encoders.t5xxl.")):
        return "te3"
    if name.startswith(("lora_te2_", "text_encoder_2.", "text_encoders.clip_g.", "lora_prior_te_")):
        return "te2"
    if name.startswith(("lora_te1_", "lora_te_", "text_encoder.", "text_encoders.")):
        return "te1"
    if name.startswith(("lora_unet_", "unet.", "base_model.model.", "diffusion_model.", "lycoris_", "lora_prior_unet_",
                        "down_blocks.", "up_blocks.", "mid_block.", "input_blocks.", "middle_block.", "output_blocks.",
                        "conv_in", "conv_out", "time_embedding", "add_embedding", "transformer.", "lora_transformer_",
                        "transformer_blocks.", "single_transformer_blocks.", "joint_blocks.", "double_blocks.",
                        "single_blocks.")):
        return "unet"
    return "other"


# Spellings the host's key map lacks, as candidate aliases of a module name. For SD1.x/2.x/SDXL UNets the host knows
# diffusers attention projections only as '<block>.processor.to_q' (the old attention-processor form) and knows no
# 'base_model.model.' (PEFT) prefix; for Flux it knows diffusers names only under 'transformer.' (no PEFT prefix, and
# the bare DiffSynth spelling only on newer hosts); for SD3 it knows no bare diffusers names. An alias counts only
# where the host's key map has it, so each one maps just for the models whose map holds its target spelling.
_ATTN_PROJ = re.compile(r"\.(to_q|to_k|to_v|to_out)(\.0)?$")
_PREFIXED = ("unet.", "transformer.", "text_encoder", "lora_", "lycoris_", "base_model.", "diffusion_model.")


def _aliases(name: str):
    bases = [name]
    for pre in ("unet.base_model.model.", "base_model.model."):
        if name.startswith(pre):
            bases = [name[len(pre):], "unet." + name[len(pre):], "transformer." + name[len(pre):]]
            break
    else:
        if not name.startswith(_PREFIXED):
            bases.append("transformer." + name)
    out = []
    for b in bases:
        out.append(b)
        if _ATTN_PROJ.search(b) and ".processor." not in b:
            out.append(_ATTN_PROJ.sub(lambda m: f".processor.{m.group(1)}", b))
    return out[1:] if out and out[0] == name else out


# --------------------------------------------------------------------------------------------------------------------
@dataclass
class Header:
    """What the file says about itself: tensor shapes and dtypes, and the alpha values (without loading the rest)."""
    path: str
    shapes: dict
    dtypes: dict
    alphas: dict
    metadata: dict
    state_dict: dict | None = None  # only for non-safetensors files (the host's weights-only loader reads them whole)


def _safetensors_detail(path: str) -> str:
    """Why a safetensors file cannot be read, in bytes (for the error message)."""
    size = os.path.getsize(path)
    if size < 8:
        return f"the file is only {size} bytes long (truncated or empty)"
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > size - 8:
            if n > 100_000_000:
                return "it does not start with a safetensors header (is it a .ckpt/.pt file renamed to .safetensors?)"
            return f"the header says it is {n} bytes long but the file holds only {size - 8} bytes after it (truncated)"
        try:
            header = json.loads(f.read(n))
        except ValueError:
            return "its header is not valid JSON (damaged or not a safetensors file)"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and "data_offsets" in v]
    need = 8 + n + (max(ends) if ends else 0)
    if need > size:
        return (f"the file is truncated: its header lists {len(ends)} tensors needing {need} bytes, the file holds "
                f"{size} ({100 * size / need:.0f}%)")
    return "its header does not describe its data correctly (damaged file)"


def read_header(path: str, display: str | None = None) -> Header:
    """Shapes of every tensor in a LoRA file. safetensors: the header only (plus the tiny alpha scalars); other
    formats: the host's weights-only loader (``comfy.utils.load_torch_file(..., safe_load=True)``), never pickle."""
    display = display or os.path.basename(path)
    if not os.path.isfile(path):
        raise TCDLoraError(f"LoRA file '{display}' does not exist ({path}).")
    if path.lower().endswith((".safetensors", ".sft")):
        try:
            with safetensors.safe_open(path, framework="pt", device="cpu") as f:
                keys = list(f.keys())
                shapes, dtypes, alphas = {}, {}, {}
                for k in keys:
                    sl = f.get_slice(k)
                    shapes[k] = tuple(sl.get_shape())
                    dtypes[k] = sl.get_dtype()
                    if k.endswith(".alpha"):
                        alphas[k] = float(f.get_tensor(k).float().reshape(-1)[0])
                metadata = f.metadata() or {}
        except Exception as e:  # safetensors raises its own error type; the detail comes from the bytes themselves
            raise TCDLoraError(f"LoRA file '{display}' cannot be read: {_safetensors_detail(path)}. Re-download or "
                               f"re-copy it. (safetensors said: {e})") from None
        return Header(path, shapes, dtypes, alphas, metadata)
    try:
        sd = comfy.utils.load_torch_file(path, safe_load=True)
    except Exception as e:
        raise TCDLoraError(f"LoRA file '{display}' cannot be read with the host's weights-only loader "
                           f"({type(e).__name__}: "
                           f"{e}). It is truncated, damaged, or holds more than plain tensors; a .safetensors copy "
                           f"of the LoRA avoids this.") from None
    if not isinstance(sd, dict):
        raise TCDLoraError(f"LoRA file '{display}' does not hold a dictionary of tensors.")
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    return Header(path, {k: tuple(v.shape) for k, v in sd.items()}, {k: str(v.dtype) for k, v in sd.items()},
                  {k: float(v.float().reshape(-1)[0]) for k, v in sd.items() if k.endswith(".alpha") and v.numel()},
                  {}, state_dict=sd)


# --------------------------------------------------------------------------------------------------------------------
@dataclass
class Module:
    name: str
    kind: str | None = None
    tensors: dict = field(default_factory=dict)  # role -> key in the file
    part: str = "other"
    target: str | None = None
    target_shape: tuple | None = None
    via: str | None = None       # 'host' (the host's key map) or the converted spelling
    problem: str | None = None   # shape mismatch or incomplete module


def group_modules(header: Header):
    """LoRA modules (name -> Module) and the keys that belong to none."""
    mods: dict[str, Module] = OrderedDict()
    extra = []
    for key in header.shapes:
        sp = split_key(key)
        if sp is None:
            extra.append(key)
            continue
        name, kind, role = sp
        m = mods.setdefault(name, Module(name))
        m.tensors[role] = key
        if kind:
            m.kind = m.kind or kind
    lone = [m for m in mods.values() if m.kind is None]  # an alpha or dora_scale with no weights: not a module
    for m in lone:
        del mods[m.name]
        extra.extend(m.tensors.values())
    for m in mods.values():
        m.part = part_of(m.name)
    return mods, extra


def _numel(shape) -> int:
    return int(math.prod(shape)) if shape else 1


def _delta_shape(m: Module, shapes: dict):
    """(out features, elements per output) the module's weight delta has, or a message when it is incomplete."""
    s = {role: shapes[key] for role, key in m.tensors.items()}
    missing = [r for r in _REQUIRED.get(m.kind, ()) if r not in s]
    if missing:
        return f"incomplete module (no {' / '.join(missing)} tensor)"
    if m.kind == "lora":
        up, down = s["up"], s["down"]
        if len(up) < 2 or len(down) < 2 or up[1] != down[0]:
            return f"up {list(up)} and down {list(down)} do not chain (rank mismatch)"
        inner = _numel(down[1:]) if "mid" not in s else down[1] * _numel(s["mid"][2:])
        return up[0], inner
    if m.kind == "loha":
        return s["w1a"][0], _numel(s["w1b"][1:]) if "t1" not in s else None
    if m.kind == "lokr":
        a = s["w1"] if "w1" in s else (s.get("w1a", (0,))[0], s.get("w1b", (0, 0))[-1])
        b = s["w2"] if "w2" in s else (s.get("w2a", (0,))[0], _numel(s.get("w2b", (0, 0))[1:]))
        return a[0] * b[0], a[1] * _numel(b[1:])
    if m.kind == "diff":
        d = s.get("diff")
        return (d[0], _numel(d[1:])) if d else None
    return None


def _target_key(target) -> str:
    """The model weight a key-map target names: a key, (key, (dim, offset, size)) for a slice of a fused weight (Flux
    and SD3 q/k/v), or (key, None, function) for a weight whose rows the host reorders (diffusers scale/shift)."""
    return target if isinstance(target, str) else target[0]


def _target_shape(target, model_shapes):
    shape = list(model_shapes[_target_key(target)])
    if isinstance(target, tuple) and target[1] is not None:
        dim, _off, size = target[1]
        shape[dim] = size
    return tuple(shape)


@dataclass
class LoraPlan:
    name: str
    header: Header
    modules: dict
    extra: list
    lora_family: str
    model_family: str
    te_names: dict          # lora part -> the model's text encoder it maps to ('clip_l', ...)
    checked: set            # parts that were checked against a model ('unet', 'te1', ...)

    unet_label: str = PART_NAMES["unet"]  # what the LoRA's diffusion-model modules are: 'UNet' or 'transformer'

    def part_modules(self, part):
        return [m for m in self.modules.values() if m.part == part]

    def part_label(self, part):
        return self.unet_label if part == "unet" else PART_NAMES[part]

    def counts(self):
        """part -> (matched with fitting shapes, total)."""
        out = OrderedDict()
        for part in PARTS:
            ms = self.part_modules(part)
            if ms:
                out[part] = (sum(1 for m in ms if m.target is not None and m.problem is None), len(ms))
        return out

    def converted(self):
        return Counter(m.via for m in self.modules.values() if m.via and m.via != "host")


def model_state_shapes(model) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def plan_lora(header: Header, unet_model=None, clip_model=None, name: str | None = None) -> LoraPlan:
    """Group, map and shape-check every module of a LoRA against a host BaseModel (``ModelPatcher.model``) and/or a
    CLIP ``cond_stage_model``. Nothing is applied; the plan holds what fits and what does not."""
    name = name or os.path.basename(header.path)
    mods, extra = group_modules(header)
    key_map, shapes, checked = {}, {}, set()
    if unet_model is not None:
        comfy.lora.model_lora_keys_unet(unet_model, key_map)
        shapes.update(model_state_shapes(unet_model))
        checked.add("unet")
    if clip_model is not None:
        comfy.lora.model_lora_keys_clip(clip_model, key_map)
        shapes.update(model_state_shapes(clip_model))
        checked.update(TE_PARTS)
    if unet_model is not None and clip_model is not None:
        checked.add("other")
    te_names = {}
    for m in mods.values():
        target, via = key_map.get(m.name), "host" if m.name in key_map else None
        if target is None:
            for alias in _aliases(m.name):
                if alias in key_map:
                    target, via = key_map[alias], _format_of(m.name, alias)
                    break
        if target is not None and _target_key(target) not in shapes:
            # the host's key map also names weights this model does not have (e.g. a downsampler at SDXL's last
            # level, from the generic diffusers mapping): such a module does not match
            target, via = None, None
        if target is None:
            continue
        tkey = _target_key(target)
        if m.part == "other":
            m.part = ("unet" if tkey.startswith("diffusion_model.") else "te2" if tkey.startswith("clip_g.")
                      else "te3" if tkey.startswith("t5xxl.") else "te1")
        if m.part in TE_PARTS:
            te_names.setdefault(m.part, tkey.split(".", 1)[0])
        m.target, m.via = target, via
        m.target_shape = _target_shape(target, shapes)
        d = _delta_shape(m, header.shapes)
        if isinstance(d, str):
            m.problem = d
        elif d is not None and "reshape" not in m.tensors:
            out, per = d
            w = m.target_shape
            if out != w[0] or per != _numel(w[1:]):
                m.problem = (f"the LoRA changes a {out}x{per} weight, the model's {tkey} is "
                             f"{'x'.join(map(str, w))}")
    for m in mods.values():
        if m.target is None and m.problem is None:
            d = _delta_shape(m, header.shapes)
            if isinstance(d, str):
                m.problem = d
    return LoraPlan(name, header, mods, extra, lora_family(mods, header.shapes), model_family(unet_model, clip_model),
                    te_names, checked, unet_label=_unet_label(mods, unet_model))


def _unet_label(mods: dict, unet_model) -> str:
    """'UNet' or 'transformer': what the LoRA's diffusion-model modules are by their names, else what the model is."""
    unet, flow = _diffusion_modules(mods)
    if flow and 2 * len(flow) >= len(unet):
        return "transformer"
    if any(_UNET_BLOCKS.search(_fold(m.name)) for m in unet):
        return PART_NAMES["unet"]
    uc = getattr(getattr(unet_model, "model_config", None), "unet_config", None)
    return "transformer" if uc is not None and "num_res_blocks" not in uc else PART_NAMES["unet"]


def _format_of(name: str, alias: str) -> str:
    if name.startswith(("base_model.model.", "unet.base_model.model.")):
        return "PEFT base_model.model."
    if alias == "transformer." + name:
        return "unprefixed diffusers"
    return "diffusers attention-projection"


def file_format(plan: LoraPlan) -> str:
    """The LoRA's key format, for the report."""
    names = list(plan.modules)
    suffixes = Counter()
    for m in plan.modules.values():
        for key in m.tensors.values():
            sp = key[len(m.name):]
            if sp not in (".alpha", ".dora_scale"):
                suffixes[sp.rsplit(".", 1)[0] if sp.endswith(".weight") else sp] += 1
    if any(n.startswith(("lora_unet_", "lora_te")) for n in names):
        fmt = "kohya"
    elif any(n.startswith(("base_model.model.", "unet.base_model.model.")) for n in names):
        fmt = "PEFT"
    elif any(".processor." in n for n in names):
        fmt = "diffusers (attention processors)"
    elif any(n.startswith(("unet.", "text_encoder", "transformer.")) for n in names):
        fmt = "diffusers"
    elif any(n.startswith("lora_transformer_") for n in names):
        fmt = "OneTrainer"
    elif any(n.startswith("lycoris_") for n in names):
        fmt = "LyCORIS"
    elif any(n.startswith("diffusion_model.") for n in names):
        fmt = "LDM (diffusion_model.)"
    else:
        fmt = "unprefixed"
    kinds = Counter(m.kind for m in plan.modules.values())
    if set(kinds) - {"lora"}:
        fmt += " (" + ", ".join(f"{n} {k}" for k, n in kinds.most_common()) + ")"
    return fmt


# --------------------------------------------------------------------------------------------------------------------
# Base family from the key layout and the cross-attention width (UNets) or hidden width (rectified-flow transformers).
# Keys are compared with '.' and '_' folded together so kohya ('lora_unet_down_blocks_0_...') and diffusers
# ('unet.down_blocks.0....') read alike.
_SD1_LAYOUT = re.compile(r"(down_blocks_0_attentions|down_blocks_3_|up_blocks_3_|input_blocks_[12]_1_|"
                         r"input_blocks_1[01]_|output_blocks_(9|10|11)_)")
_SDXL_LAYOUT = re.compile(r"(transformer_blocks_[1-9]|up_blocks_0_attentions|input_blocks_[45]_1_transformer_blocks_1)")
_CROSS_K = re.compile(r"attn2_(to_k|to_v|processor_to_k|processor_to_v)$")
_TE_Q = re.compile(r"(self_attn_q_proj|self_attn_k_proj)$")
# A transformer block of a rectified-flow model, after an optional format prefix: Flux 'double_blocks' /
# 'single_blocks' (diffusers 'single_transformer_blocks'), SD3 'joint_blocks', or diffusers 'transformer_blocks' (both).
_FLOW_NAME = re.compile(r"^(?:transformer_|base_model_model_|unet_base_model_model_|lora_transformer_|lycoris_|"
                        r"lora_unet_|diffusion_model_)?(double_blocks|single_blocks|joint_blocks|"
                        r"single_transformer_blocks|transformer_blocks)_\d+_(.+)$")
_UNET_BLOCKS = re.compile(r"(^|_)(down_blocks|up_blocks|mid_block|input_blocks|middle_block|output_blocks)_")
_FLOW_LAYOUT = {"double_blocks": "Flux", "single_blocks": "Flux", "single_transformer_blocks": "Flux",
                "joint_blocks": "SD3"}
# the block weights whose input is the hidden width (not the MLP down-projections, 4x wider, nor Flux's linear2)
_FLOW_IN = re.compile(r"(to_[qkv]|add_[qkv]_proj|qkv|linear1|_lin|_linear|to_out_0|to_add_out|attn2?_proj|net_0_proj|"
                      r"mlp_0|mlp_fc1|proj_mlp)$")


def _fold(name: str) -> str:
    return name.replace(".", "_")


def _down_width(m: Module, shapes: dict):
    return _numel(shapes[m.tensors["down"]][1:]) if m.kind == "lora" and "down" in m.tensors else None


def _flow_family(flow, shapes: dict) -> str:
    """Family of a LoRA whose modules are rectified-flow transformer blocks: [(module, block kind, rest of name)]."""
    layouts = {_FLOW_LAYOUT[b] for _m, b, _r in flow if b in _FLOW_LAYOUT}
    layout = layouts.pop() if len(layouts) == 1 else None
    widths = Counter(_down_width(m, shapes) for m, _b, rest in flow if _FLOW_IN.search(rest))
    widths.pop(None, None)
    width = widths.most_common(1)[0][0] if widths else None
    fam = FLOW_FAMILY_BY_WIDTH.get(width)
    if fam == "SD3/SD3.5 medium" and any(r.startswith(("attn2_", "x_block_attn2_")) for _m, _b, r in flow):
        fam = "SD3.5 medium"  # only SD3.5 medium has the second (self-)attention in its first blocks
    if fam and layout and (layout == "Flux") != (fam == "Flux"):
        fam = f"{fam} width with a {layout} layout (unusual)"
    if fam is None:
        fam = f"{layout}-like layout" if layout else "SD3- or Flux-like layout"
    return fam + (f" (hidden width {width})" if width else "")


def _diffusion_modules(mods: dict):
    """(the LoRA's diffusion-model modules, [(module, block kind, rest of name)] for those in a flow transformer)."""
    unet = [m for m in mods.values() if m.part == "unet" or (m.part == "other" and m.target is None)]
    return unet, [(m, mt.group(1), mt.group(2)) for m in unet if (mt := _FLOW_NAME.match(_fold(m.name)))]


def lora_family(mods: dict, shapes: dict) -> str:
    unet, flow = _diffusion_modules(mods)
    if flow and 2 * len(flow) >= len(unet):
        return _flow_family(flow, shapes)
    layout = None
    folded = [_fold(m.name) for m in unet]
    if any(_SDXL_LAYOUT.search(n) for n in folded):
        layout = "SDXL"
    elif any(_SD1_LAYOUT.search(n) for n in folded):
        layout = "SD1/SD2"
    widths = Counter()
    for m, n in zip(unet, folded, strict=True):
        if _CROSS_K.search(n) and (w := _down_width(m, shapes)):
            widths[w] += 1
    te = {}
    for m in mods.values():
        if m.part in ("te1", "te2") and m.kind == "lora" and "down" in m.tensors and _TE_Q.search(_fold(m.name)):
            te.setdefault(m.part, shapes[m.tensors["down"]][1])
    width = widths.most_common(1)[0][0] if widths else None
    fam = FAMILY_BY_WIDTH.get(width) if width else None
    if fam is None and not unet:
        if "te2" in te:
            fam = "SDXL"
        elif te.get("te1") == 768:
            fam = "SD1.5 (or SDXL text encoder 1 only)"
        elif te.get("te1") == 1024:
            fam = "SD2.x"
    if fam in ("SD1.5", "SD2.x") and layout == "SDXL" or fam == "SDXL" and layout == "SD1/SD2":
        fam = f"{fam} width with an {layout} layout (unusual)"
    if fam is None:
        fam = {"SDXL": "SDXL-like layout", "SD1/SD2": "SD1.x/SD2.x-like layout"}.get(layout, "unknown")
    details = []
    if width:
        details.append(f"cross-attention width {width}")
    if "te2" in te or "te1" in te:
        details.append("text encoder widths " + "/".join(str(te[p]) for p in ("te1", "te2") if p in te))
    return fam + (f" ({', '.join(details)})" if details else "")


# the host's stock model classes (comfy.supported_models), most specific first, and what the reports call them
_STOCK = (("SDXLRefiner", "SDXL refiner"), ("SDXL", "SDXL"), ("SD20", "SD2.x"), ("SD15", "SD1.5"),
          ("FluxSchnell", "Flux schnell"), ("Flux", "Flux"), ("SD3", "SD3"))
_SD3_BY_DEPTH = {38: "SD3.5 large", 24: "SD3 medium"}


def model_family(unet_model=None, clip_model=None) -> str:
    if unet_model is None:
        return "unknown (no model)"
    cfg = getattr(unet_model, "model_config", None)
    uc = getattr(cfg, "unet_config", {}) or {}
    sm = comfy.supported_models
    fam = None
    for cls_name, label in _STOCK:
        cls = getattr(sm, cls_name, None)
        if cls is not None and isinstance(cfg, cls):
            fam = label
            break
    own = type(cfg).__name__ if cfg is not None else type(unet_model).__name__
    hidden = uc.get("hidden_size")
    if fam == "SD3":  # SD3 and SD3.5 share the class; depth and the extra self-attention layers tell them apart
        depth = uc.get("depth", 0)
        hidden = hidden or 64 * depth  # the host's own rule (comfy.model_detection: depth = hidden width / 64)
        fam = _SD3_BY_DEPTH.get(depth, f"SD3-type MMDiT of depth {depth}")
        if depth == 24 and uc.get("x_block_self_attn_layers"):
            fam = "SD3.5 medium"
    if fam is None:
        fam = own
    elif own not in dict(_STOCK):
        fam = f"{fam}-type {own}"
    if uc.get("context_dim"):
        return f"{fam} (cross-attention width {uc['context_dim']})"
    return f"{fam} (hidden width {hidden})" if hidden else fam


# --------------------------------------------------------------------------------------------------------------------
def _what_is_it(header: Header) -> str:
    keys = list(header.shapes)
    if any(k.startswith(("model.diffusion_model.", "first_stage_model.", "conditioner.", "cond_stage_model."))
           for k in keys):
        return "a full checkpoint (put it in models/checkpoints and load it with Load Checkpoint)"
    if any(k.startswith(("input_blocks.", "middle_block.", "down_blocks.", "diffusion_model.", "double_blocks.",
                         "joint_blocks.", "transformer_blocks.")) for k in keys):
        return "a bare UNet / diffusion model (put it in models/diffusion_models)"
    if any(k.startswith(("encoder.", "decoder.", "quant_conv", "post_quant_conv")) for k in keys):
        return "a VAE (put it in models/vae)"
    if any(k.startswith(("text_model.", "transformer.", "clip_l.", "clip_g.")) for k in keys):
        return "a text encoder (put it in models/text_encoders)"
    if any(k.startswith(("emb_params", "string_to_param", "clip_l", "clip_g")) for k in keys):
        return "a textual-inversion embedding (put it in models/embeddings)"
    return "not a LoRA"


def _fmt_shape_list(ms, limit=3):
    s = "; ".join(f"{m.name}: {m.problem}" for m in ms[:limit])
    return s + (f"; and {len(ms) - limit} more" if len(ms) > limit else "")


def check_plan(plan: LoraPlan, parts_needed: set) -> None:
    """Raise TCDLoraError (naming the file and both base families) unless every module of every part in
    ``parts_needed`` maps to a weight and fits it."""
    n = plan.name
    fams = f"The LoRA looks like {plan.lora_family}; the model is {plan.model_family}."
    if not plan.modules:
        example = next(iter(plan.header.shapes), None)
        what = _what_is_it(plan.header)
        raise TCDLoraError(f"'{n}' holds no LoRA tensors ({len(plan.header.shapes)} tensors"
                           f"{', e.g. ' + repr(example) if example else ''}): it looks like {what}. Nothing was "
                           f"applied.")
    broken = [m for m in plan.modules.values() if m.problem and m.target is None]
    if broken:
        raise TCDLoraError(f"'{n}' has damaged LoRA modules: {_fmt_shape_list(broken)}. Nothing was applied.")
    counts = plan.counts()
    for part in ("unet", "other", *TE_PARTS):
        if part not in counts or part not in parts_needed:
            continue
        ms = plan.part_modules(part)
        unmatched = [m for m in ms if m.target is None]
        if unmatched:
            matched = sum(1 for m in ms if m.target is not None)
            examples = ", ".join(repr(m.name) for m in unmatched[:3])
            raise TCDLoraError(
                f"'{n}' does not fit this model: only {matched} of {len(ms)} {plan.part_label(part)} modules match "
                f"a weight of the model (not found: {examples}{' and more' if len(unmatched) > 3 else ''}). {fams} "
                f"Use the LoRA made for this model's base. Nothing was applied.")
    bad = [m for m in plan.modules.values() if m.problem and m.part in parts_needed]
    if bad:
        raise TCDLoraError(f"'{n}' does not fit this model: {len(bad)} module(s) have the wrong shape "
                           f"({_fmt_shape_list(bad)}). {fams} Nothing was applied.")
    spans = {}
    for m in plan.modules.values():
        if m.target is not None and m.part in parts_needed:
            spans.setdefault(_target_key(m.target), []).append(_module_span(m))
    twice = [k for k, ss in spans.items() if _overlap(sorted(ss))]
    if twice:
        raise TCDLoraError(f"'{n}' holds {len(twice)} weight(s) twice under different names (e.g. {twice[0]}): "
                           f"the file mixes two LoRA formats. Use a file in one format. Nothing was applied.")


def _module_span(m: Module):
    """(dim, start, stop): the rows of its weight a matched module changes (a slice, or all of them)."""
    if isinstance(m.target, tuple) and m.target[1] is not None:
        dim, off, size = m.target[1]
        return dim, off, off + size
    return 0, 0, m.target_shape[0]


def _overlap(spans) -> bool:
    """Whether any two of these sorted (dim, start, stop) spans of one weight share a row."""
    return any(a[0] != b[0] or b[1] < a[2] for a, b in zip(spans, spans[1:], strict=False))


# --------------------------------------------------------------------------------------------------------------------
def _g(x: float) -> str:
    return f"{x:g}"


def rank_alpha_text(plan: LoraPlan) -> str:
    ranks, alphas, scales = Counter(), Counter(), Counter()
    for m in plan.modules.values():
        if m.kind != "lora" or "down" not in m.tensors:
            continue
        r = plan.header.shapes[m.tensors["down"]][0]
        ranks[r] += 1
        a = plan.header.alphas.get(m.tensors.get("alpha"))
        alphas[a] += 1
        scales[(a / r) if a is not None else 1.0] += 1
    if not ranks:
        return "no rank (not a low-rank LoRA)"

    def many(c, f):
        if len(c) == 1:
            return f(next(iter(c)))
        top = c.most_common(1)[0][0]
        vals = sorted(c, key=lambda v: (v is None, v or 0))
        return f"{', '.join(f(v) for v in vals)} (mostly {f(top)})"

    rank = many(ranks, str)
    if set(alphas) == {None}:
        alpha = "no alpha stored (scale 1)"
    else:
        alpha = "alpha " + many(alphas, lambda v: "none" if v is None else _g(v))
        alpha += " (scale " + many(scales, lambda v: _g(round(v, 6))) + ")"
    return f"rank {rank}, {alpha}"


def make_report(plan: LoraPlan, strength_model: float, strength_clip: float | None, applied: dict) -> str:
    """One readable paragraph: matches per part, families, format, rank/alpha, strengths, what was applied."""
    counts = plan.counts()
    bits = []
    for part, (ok, total) in counts.items():
        label = plan.part_label(part)
        if part in plan.te_names:
            label += f" ({plan.te_names[part]})"
        if part not in plan.checked:
            bits.append(f"{label} {total} modules not checked or applied (no CLIP input)")
        else:
            bits.append(f"{label} {ok}/{total} modules matched ({100 * ok / total:.0f}%)")
    if "unet" not in counts:
        bits.append(f"no {plan.unet_label} modules")
    conv = plan.converted()
    conv_txt = ""
    if conv:
        n_conv, n_all = sum(conv.values()), sum(1 for m in plan.modules.values() if m.target is not None)
        spell = ", ".join(f"{n} in {fmt} spelling" for fmt, n in conv.items())
        rest = f", the other {n_all - n_conv} by the host's key map" if n_all > n_conv else ""
        conv_txt = f" ({spell} mapped by this loader where the host's key map has no entry{rest})"
    strengths = f"strength_model {_g(strength_model)}"
    if strength_clip is not None:
        strengths += f", strength_clip {_g(strength_clip)}"
    app = ", ".join(f"{n} {what}" for what, n in applied.items() if n) or "nothing (strength 0)"
    extra = ""
    if plan.extra:
        extra = (f" {len(plan.extra)} tensor(s) that are not LoRA weights were ignored (e.g. '{plan.extra[0]}').")
    return (f"TCD LoRA '{plan.name}': {'; '.join(bits)}. Format {file_format(plan)}{conv_txt}. LoRA base "
            f"{plan.lora_family}; model {plan.model_family}. {rank_alpha_text(plan)}; {strengths}. Patched "
            f"lazily through the host's ModelPatcher: {app}.{extra}")
