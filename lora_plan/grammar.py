"""The key grammar of LoRA files: which tensor of which module a key is, which part of the base model a module is
meant for, and the few spellings the host's key maps lack. Pure string rules; no host, no tensors."""
from __future__ import annotations

import re

# Key suffix -> (kind, role). Longest suffixes are tried first, so '.lora_linear_layer.up.weight' wins over anything
# shorter. Every spelling is one the host reads: its weight adapters (comfy/weight_adapter/*.py: lora, loha, lokr) or
# comfy.lora.load_lora itself ('diff', 'diff_b', 'set_weight', 'alpha', 'dora_scale', 'reshape_weight'). 'diff_b'
# changes the module's bias, every other kind its weight.
SUFFIXES = {
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
    ".diff": ("diff", "diff"), ".diff_b": ("diff_b", "diff_b"), ".set_weight": ("set", "set"),
    ".alpha": (None, "alpha"), ".dora_scale": (None, "dora_scale"), ".reshape_weight": (None, "reshape"),
}
_SUFFIX_ORDER = sorted(SUFFIXES, key=len, reverse=True)
# '<block>.diff_m' (Wan LoRAs from lightx2v / Kijai): the difference of the block's 'modulation' parameter. The host's
# load_lora has no such key; it reads the same tensor as '<block>.modulation.diff', a 'diff' on that parameter.
DIFF_M = ".diff_m"
# the kinds that change a module's weight; the host keeps one patch per weight (load_lora: the last one it builds)
WEIGHT_KINDS = ("lora", "loha", "lokr", "diff", "set")

TE_PARTS = ("te1", "te2", "te3")
PARTS = ("unet", *TE_PARTS, "other")
PART_NAMES = {"unet": "UNet", "te1": "text encoder 1", "te2": "text encoder 2", "te3": "text encoder 3",
              "other": "other"}
# format prefixes a module of the diffusion model starts with (kohya, diffusers, PEFT, LDM, LyCORIS, OneTrainer, ...)
UNET_PREFIXES = ("lora_unet_", "unet.", "base_model.model.", "diffusion_model.", "lycoris_", "lora_prior_unet_",
                 "transformer.", "lora_transformer_")
TE_PREFIXES = {"te3": ("lora_te3_", "text_encoder_3.", "text_encoders.t5xxl."),
               "te2": ("lora_te2_", "text_encoder_2.", "text_encoders.clip_g.", "lora_prior_te_"),
               "te1": ("lora_te1_", "lora_te_", "text_encoder.", "text_encoders.")}


def split_key(key: str):
    """(module name, kind, role, key the host reads) for a LoRA key by its longest known suffix, else None."""
    if key.endswith(DIFF_M) and len(key) > len(DIFF_M):
        module = key[:-len(DIFF_M)] + ".modulation"
        return module, "diff", "diff", module + ".diff"
    for suf in _SUFFIX_ORDER:
        if key.endswith(suf) and len(key) > len(suf):
            kind, role = SUFFIXES[suf]
            return key[:-len(suf)], kind, role, key
    return None


def part_of(name: str, bare_names) -> str:
    """A module's part by its name: a text-encoder prefix, a diffusion-model prefix or bare name, else 'other'."""
    for part, prefixes in TE_PREFIXES.items():
        if name.startswith(prefixes):
            return part
    return "unet" if name.startswith(UNET_PREFIXES) or name.split(".", 1)[0] in bare_names else "other"


def fold(name: str) -> str:
    """A module name with '.' folded into '_', so kohya and diffusers spellings read alike."""
    return name.replace(".", "_")


# Spellings the host's key map lacks, as candidate aliases of a module name. For SD1.x/2.x/SDXL UNets the host knows
# diffusers attention projections only as '<block>.processor.to_q' (the old attention-processor form) and knows no
# 'base_model.model.' (PEFT) prefix; for Flux it knows diffusers names only under 'transformer.' (no PEFT prefix, and
# the bare DiffSynth spelling only on newer hosts); for SD3 it knows no bare diffusers names; for Qwen-Image no PEFT
# prefix. An alias counts only where the host's key map has it, so each one maps just for the models whose map holds
# its target spelling.
_ATTN_PROJ = re.compile(r"\.(to_q|to_k|to_v|to_out)(\.0)?$")
_PREFIXED = ("unet.", "transformer.", "text_encoder", "lora_", "lycoris_", "base_model.", "diffusion_model.")
_PEFT = ("unet.base_model.model.", "base_model.model.")


def aliases(name: str) -> list:
    """A name's other spellings: PEFT prefix dropped, 'transformer.' on bare names, attention in processor form."""
    bases = [name]
    peft = next((p for p in _PEFT if name.startswith(p)), None)
    if peft:
        rest = name[len(peft):]
        bases = [rest, "unet." + rest, "transformer." + rest]
    elif not name.startswith(_PREFIXED):
        bases.append("transformer." + name)
    out = []
    for b in bases:
        out.append(b)
        if _ATTN_PROJ.search(b) and ".processor." not in b:
            out.append(_ATTN_PROJ.sub(lambda m: f".processor.{m.group(1)}", b))
    return [a for a in out if a != name]


def alias_format(name: str, alias: str) -> str:
    """What an alias that matched is called in the report: the spelling of the file's name."""
    if name.startswith(_PEFT):
        return "PEFT base_model.model."
    if alias == "transformer." + name:
        return "unprefixed diffusers"
    return "diffusers attention-projection"


def target_key(target) -> str:
    """The model weight a key-map target names (a key, (key, slice) or (key, None, reorder function))."""
    return target if isinstance(target, str) else target[0]


def bias_key(target):
    """Where the host puts a 'diff_b': the target key less '.weight' (7 characters) plus '.bias'; None for slices."""
    return target[:-len(".weight")] + ".bias" if isinstance(target, str) else None
