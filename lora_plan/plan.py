"""The plan: a LoRA's keys grouped into modules, each mapped to the weight (and bias) of the model it changes through
the host's key map, every delta it holds shape-checked against what it changes, and both base families read from the
family table. Nothing is applied; the host's key map, the model's weight shapes and its config come in as data
(``ModelData``), so the same plan runs with or without the host."""
from __future__ import annotations

import math
import os
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from .families import LoraFamily, ModelFamily, bare_names, is_unet_module, lora_family, model_family, parse_block
from .grammar import (
    PART_NAMES,
    PARTS,
    TE_PARTS,
    WEIGHT_KINDS,
    alias_format,
    aliases,
    bias_key,
    fold,
    part_of,
    split_key,
    target_key,
)
from .header import Header


@dataclass
class ModelData:
    """What the host says about the model, as data: key map, weight shapes, parts checked, config classes and dict."""
    key_map: dict
    shapes: dict
    checked: set
    classes: tuple = ()
    config: dict = field(default_factory=dict)


@dataclass
class Module:
    """One LoRA module: its tensors by role, the keys the host reads them under, and what it maps to."""
    name: str
    tensors: dict = field(default_factory=dict)  # role -> key in the file
    reads: dict = field(default_factory=dict)    # role -> key the host reads it under (differs for '.diff_m')
    kinds: set = field(default_factory=set)      # 'lora', 'loha', 'lokr', 'diff', 'set', 'diff_b'
    part: str = "other"
    target: object = None
    target_shape: tuple | None = None
    via: str | None = None       # 'host' (the host's key map) or the spelling an alias matched
    damage: str | None = None    # what is wrong with the module itself (incomplete, mixed, rank mismatch)
    problem: str | None = None   # why it does not fit what it maps to

    @property
    def weight_kind(self):
        """The kind of its weight delta, or None for a module that changes only a bias."""
        return next((k for k in WEIGHT_KINDS if k in self.kinds), None)


# the roles each kind needs before the host can build its patch (its adapters read them unchecked): each entry is one
# of the roles it names
REQUIRED = {"lora": (("up",), ("down",)), "loha": (("w1a",), ("w1b",), ("w2a",), ("w2b",)),
            "lokr": (("w1", "w1a"), ("w1", "w1b"), ("w2", "w2a"), ("w2", "w2b")), "diff": (("diff",),),
            "set": (("set",),), "diff_b": (("diff_b",),)}


def group_modules(header: Header):
    """LoRA modules (name -> Module) and the keys that belong to none (an alpha or dora_scale alone is no module)."""
    mods: dict[str, Module] = OrderedDict()
    extra = []
    for key in header.shapes:
        sp = split_key(key)
        if sp is None:
            extra.append(key)
            continue
        name, kind, role, read = sp
        m = mods.setdefault(name, Module(name))
        if role in m.tensors and m.damage is None:
            m.damage = f"two tensors for its {role} ({m.tensors[role]!r} and {key!r})"
        m.tensors[role], m.reads[role] = key, read
        if kind:
            m.kinds.add(kind)
    for m in [m for m in mods.values() if not m.kinds]:
        del mods[m.name]
        extra.extend(m.tensors.values())
    bare = bare_names()
    for m in mods.values():
        m.part = part_of(m.name, bare)
        m.damage = m.damage or module_damage(m, header.shapes)
    return mods, extra


def module_damage(m: Module, shapes: dict):
    """What keeps the host from patching a module: two weight-delta kinds, a missing tensor, mixed spellings, rank."""
    weight = [k for k in WEIGHT_KINDS if k in m.kinds]
    if len(weight) > 1:
        return f"holds {' and '.join(weight)} deltas for one weight (the host applies only one of them)"
    for kind in m.kinds:
        for need in REQUIRED[kind]:
            if not any(r in m.tensors for r in need):
                return f"incomplete module (no {' / '.join(need)} tensor)"
    if "lora" in m.kinds:
        up, down = m.tensors["up"], m.tensors["down"]
        if up[len(m.name):].replace("up", "down").replace("lora_B", "lora_A") != down[len(m.name):]:
            return f"its up {up!r} and down {down!r} are spelled in two formats (the host pairs them by spelling)"
        if len(shapes[up]) < 2 or len(shapes[down]) < 2 or shapes[up][1] != shapes[down][0]:
            return f"up {list(shapes[up])} and down {list(shapes[down])} do not chain (rank mismatch)"
    if "loha" in m.kinds and ("t1" in m.tensors) != ("t2" in m.tensors):
        return "incomplete module (a hada_t1 without hada_t2, or the reverse)"
    return None


def numel(shape) -> int:
    """Elements of a tensor of this shape."""
    return int(math.prod(shape)) if shape else 1


def low_rank_delta(kind: str, s: dict):
    """(outputs, elements per output) of up @ down (lora), (w1a @ w1b) * (w2a @ w2b) (loha), kron(w1, w2) (lokr)."""
    if kind == "lora":
        inner = numel(s["down"][1:]) if "mid" not in s else s["down"][1] * numel(s["mid"][2:])
        return s["up"][0], inner
    if kind == "loha":
        if "t1" in s:  # einsum('i j k l, j r, i p -> p r k l', t1, w1b, w1a): w1a is (rank, out), w1b (rank, in)
            return s["w1a"][1], s["w1b"][1] * numel(s["t1"][2:])
        return s["w1a"][0], numel(s["w1b"][1:])
    a = s["w1"] if "w1" in s else (s["w1a"][0], s["w1b"][1])
    if "w2" in s:
        b = s["w2"]
    elif "t2" in s:  # the same Tucker form for w2
        b = (s["w2a"][1], s["w2b"][1] * numel(s["t2"][2:]))
    else:
        b = (s["w2a"][0], numel(s["w2b"][1:]))
    return a[0] * b[0], a[1] * numel(b[1:])


def weight_problem(m: Module, shapes: dict, want: tuple):
    """Misfit of a weight delta: low rank needs want[0] x numel(want[1:]); diff / set need the exact shape."""
    # a low-rank delta the file says how to reshape is not checked; the host skips a diff of another shape
    s = {role: shapes[key] for role, key in m.tensors.items()}
    kind = m.weight_kind
    if kind in ("diff", "set"):
        got = tuple(s[kind])
        return None if got == tuple(want) else f"its {kind} is {fmt_shape(got)}, the weight is {fmt_shape(want)}"
    if "reshape" in s:
        return None
    out, per = low_rank_delta(kind, s)
    if out != want[0] or per != numel(want[1:]):
        return f"the LoRA changes a {out}x{per} weight, the weight is {fmt_shape(want)}"
    return None


def bias_problem(m: Module, shapes: dict, model_shapes: dict):
    """Misfit of a 'diff_b': the bias the host puts it on is missing or has another shape."""
    key = bias_key(m.target)
    if key is None or key not in model_shapes:
        return f"its diff_b has no bias to change ({key or 'a slice of a fused weight'} is not in the model)"
    got, want = tuple(shapes[m.tensors["diff_b"]]), tuple(model_shapes[key])
    return None if got == want else f"its diff_b is {fmt_shape(got)}, the model's {key} is {fmt_shape(want)}"


def fmt_shape(shape) -> str:
    """'3072x3072'."""
    return "x".join(map(str, shape)) or "a scalar"


def target_shape(target, model_shapes: dict) -> tuple:
    """The shape a target names: its weight's, or the slice's rows of it."""
    shape = list(model_shapes[target_key(target)])
    if isinstance(target, tuple) and target[1] is not None:
        dim, _off, size = target[1]
        shape[dim] = size
    return tuple(shape)


def fit_problem(m: Module, shapes: dict, model_shapes: dict):
    """The first misfit of a mapped module: its weight delta against the target, its diff_b against the bias."""
    tkey = target_key(m.target)
    if m.weight_kind is not None:
        p = weight_problem(m, shapes, m.target_shape)
        if p:
            return p.replace("the weight is", f"the model's {tkey} is")
    return bias_problem(m, shapes, model_shapes) if "diff_b" in m.kinds else None


def patch_keys(m: Module) -> list:
    """The model keys the host patches for a mapped module: its target (weight delta) and its bias (diff_b)."""
    out = [m.target] if m.weight_kind is not None else []
    return out + ([bias_key(m.target)] if "diff_b" in m.kinds else [])


def lookup(name: str, key_map: dict):
    """(target, via) of a module name in the host's key map, directly or through one of its aliases."""
    if name in key_map:
        return key_map[name], "host"
    for alias in aliases(name):
        if alias in key_map:
            return key_map[alias], alias_format(name, alias)
    return None, None


def part_of_target(tkey: str) -> str:
    """The part a host weight key belongs to: the diffusion model, CLIP-G, T5 or CLIP-L."""
    return ("unet" if tkey.startswith("diffusion_model.") else "te2" if tkey.startswith("clip_g.")
            else "te3" if tkey.startswith("t5xxl.") else "te1")


@dataclass
class LoraPlan:
    """Every module of one LoRA, mapped and checked, and both families."""
    name: str
    header: Header
    modules: dict
    extra: list
    lora: LoraFamily
    model: ModelFamily
    te_names: dict          # lora part -> the model's text encoder it maps to ('clip_l', ...)
    checked: set            # parts that were checked against a model ('unet', 'te1', ...)
    unet_label: str = PART_NAMES["unet"]  # what the LoRA's diffusion-model modules are: 'UNet' or 'transformer'

    @property
    def lora_family(self) -> str:
        return self.lora.label

    @property
    def model_family(self) -> str:
        return self.model.label

    def part_modules(self, part):
        return [m for m in self.modules.values() if m.part == part]

    def part_label(self, part):
        return self.unet_label if part == "unet" else PART_NAMES[part]

    def counts(self):
        """part -> (matched with every delta fitting, total)."""
        out = OrderedDict()
        for part in PARTS:
            ms = self.part_modules(part)
            if ms:
                out[part] = (sum(1 for m in ms if m.target is not None and not m.problem and not m.damage), len(ms))
        return out

    def converted(self):
        return Counter(m.via for m in self.modules.values() if m.via and m.via != "host")

    def renames(self) -> dict:
        """{key in the file: key the host reads} where they differ ('.diff_m' read as '.modulation.diff')."""
        return {k: m.reads[r] for m in self.modules.values() for r, k in m.tensors.items() if m.reads[r] != k}

    def to_load(self, parts) -> dict:
        """{module name: target} for the host's load_lora, for the modules of these parts."""
        return {m.name: m.target for m in self.modules.values() if m.part in parts}


def map_modules(mods: dict, model: ModelData, shapes: dict) -> dict:
    """Map and check each module against a weight the model has; {lora part: the text encoder it maps to}."""
    te_names = {}
    for m in mods.values():
        target, via = lookup(m.name, model.key_map)
        if target is None or target_key(target) not in model.shapes:
            # the host's key map also names weights this model does not have (e.g. a downsampler at SDXL's last
            # level, from the generic diffusers mapping): such a module does not match
            continue
        tkey = target_key(target)
        if m.part == "other":
            m.part = part_of_target(tkey)
        if m.part in TE_PARTS:
            te_names.setdefault(m.part, tkey.split(".", 1)[0])
        m.target, m.via = target, via
        m.target_shape = target_shape(target, model.shapes)
        if m.damage is None:
            m.problem = fit_problem(m, shapes, model.shapes)
    return te_names


def input_width(m: Module, shapes: dict):
    """The input width of a lora module's weight (its down's elements per rank), None for other kinds."""
    return numel(shapes[m.tensors["down"]][1:]) if "lora" in m.kinds and "down" in m.tensors else None


def diffusion_modules(mods: dict, shapes: dict) -> list:
    """[(folded name, block parse, input width)] of the modules meant for the diffusion model."""
    out = []
    for m in mods.values():
        if m.part == "unet" or (m.part == "other" and m.target is None):
            f = fold(m.name)
            out.append((f, parse_block(f), input_width(m, shapes)))
    return out


_TE_Q = ("self_attn_q_proj", "self_attn_k_proj")


def te_widths(mods: dict, shapes: dict) -> dict:
    """{'te1' | 'te2': hidden width} of the text encoders a LoRA's q/k projections read."""
    out = {}
    for m in mods.values():
        if m.part in ("te1", "te2") and fold(m.name).endswith(_TE_Q) and input_width(m, shapes):
            out.setdefault(m.part, input_width(m, shapes))
    return out


def unet_label(diffusion: list, config: dict) -> str:
    """'UNet' or 'transformer': what the LoRA's diffusion-model modules are by their names, else what the model is."""
    if diffusion and 2 * sum(1 for _n, b, _w in diffusion if b) >= len(diffusion):
        return "transformer"
    if any(is_unet_module(n) for n, _b, _w in diffusion) or not config:
        return PART_NAMES["unet"]
    return "transformer" if "num_res_blocks" not in config else PART_NAMES["unet"]


def plan_lora(header: Header, model: ModelData | None, name: str | None = None) -> LoraPlan:
    """Every module of a LoRA grouped, mapped and checked against the model's data (None: no model); nothing applied."""
    name = name or os.path.basename(header.path)
    model = model or ModelData({}, {}, set())
    mods, extra = group_modules(header)
    te_names = map_modules(mods, model, header.shapes)
    diffusion = diffusion_modules(mods, header.shapes)
    return LoraPlan(name, header, mods, extra, lora_family(diffusion, te_widths(mods, header.shapes)),
                    model_family(model.classes, model.config), te_names, set(model.checked),
                    unet_label=unet_label(diffusion, model.config))
