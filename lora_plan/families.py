"""The model families the LoRA loader knows, as one table, and the two readings of it: which rows a LoRA can be for,
from its module names and widths, and which row a model is, from what its host config says (class and unet_config).

A row is one model a user loads. Rows whose LoRAs look alike share ``lora`` (a LoRA for Flux dev or Flux schnell is
a "Flux" LoRA); ``marks`` are what only LoRAs of the rows carrying them have (SD3.5 medium's second attention, the
image cross-attention of Wan 2.1 I2V). Rows of one architecture share its key layout, the modules whose input is the
row's width, and the bare top-level names of its weights. Adding a family is adding a row (docs/development.md).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

# -- what rows of one architecture share -------------------------------------------------------------------------
# UNets: the width is the cross-attention width (the input width of attn2's k/v projections)
_UNET = dict(
    arch="SD UNet", width_kind="cross-attention", layout=None, config_width=("context_dim", 1),
    width_in=r".*attn2_(to_k|to_v|processor_to_k|processor_to_v)",
    bare=("input_blocks", "middle_block", "output_blocks", "down_blocks", "mid_block", "up_blocks", "conv_in",
          "conv_out", "time_embedding", "add_embedding"))
# the blocks of a rectified-flow transformer whose input is the hidden width (not the MLP down-projections, 4x wider,
# nor Flux's linear2 / proj_out)
_MMDIT_IN = (r"(.*_)?(to_[qkv]|add_[qkv]_proj|qkv|linear1(_qkv)?|lin|linear|to_out_0|to_add_out|attn2?_proj|"
             r"net_0_proj|mlp_0|mlp_fc1|proj_mlp|mod_1)")
_FLUX = dict(
    arch="Flux", width_kind="hidden", config_width=("hidden_size", 1), width_in=_MMDIT_IN,
    layout=r"(double_blocks_(img|txt)|single_blocks|single_transformer_blocks|"
           r"transformer_blocks_(attn|ff|ff_context|norm1|norm1_context))_.+",
    bare=("double_blocks", "single_blocks", "single_transformer_blocks", "transformer_blocks", "img_in", "txt_in",
          "final_layer"))
_SD3 = dict(
    arch="SD3", width_kind="hidden", config_width=("depth", 64), width_in=_MMDIT_IN,  # hidden = 64 x depth (the host)
    layout=r"(joint_blocks_(x_block|context_block)|transformer_blocks_(attn2?|ff|ff_context|norm1|norm1_context))_.+",
    bare=("joint_blocks", "transformer_blocks", "x_embedder", "context_embedder", "final_layer"))
_QWEN = dict(
    arch="Qwen-Image", width_kind="hidden", config_width=None, width_in=_MMDIT_IN,
    layout=r"transformer_blocks_(attn|img_mlp|txt_mlp|img_mod|txt_mod)_.+",
    bare=("transformer_blocks", "img_in", "txt_in", "txt_norm", "time_text_embed", "norm_out", "proj_out"))
_WAN = dict(
    arch="Wan", width_kind="hidden", config_width=("dim", 1),
    width_in=r"(self_attn|cross_attn)_([qkvo]|k_img|v_img)|ffn_0",
    layout=r"blocks_(self_attn|cross_attn|ffn|norm1|norm2|norm3|modulation)(_.+)?",
    bare=("blocks", "head", "patch_embedding", "text_embedding", "time_embedding", "time_projection", "img_emb"))

# SD1.x/SD2.x UNets have attention at the first level and four levels; SDXL has none at the first level, three levels
# and more than one transformer block per attention (kohya and diffusers names alike, '.' folded to '_')
_SD1_MARK = (r"(down_blocks_0_attentions|down_blocks_3_|up_blocks_3_|input_blocks_[12]_1_|input_blocks_1[01]_|"
             r"output_blocks_(9|10|11)_)")
_SDXL_MARK = r"(transformer_blocks_[1-9]|up_blocks_0_attentions|input_blocks_[45]_1_transformer_blocks_1)"


@dataclass(frozen=True)
class Family:
    """One row: a model people load, how its LoRAs and its host config are recognised, and what reports call it."""
    name: str                # what the report calls the model
    lora: str                # what a LoRA for it is called while its keys cannot tell this row from rows sharing it
    width: int               # cross-attention width (UNets) or hidden width (transformers)
    host: tuple              # the host's supported-model class names (comfy.supported_models) it is detected as
    arch: str
    width_kind: str
    width_in: str            # regex: block-relative names of the modules whose input width is the row's width
    layout: str | None       # regex: what every block module of its LoRAs is called ('<group>_<rest>'), None: UNet
    bare: tuple              # top-level names of its weights, as a bare LoRA or model file spells them
    config_width: tuple | None = None  # (unet_config key, factor) giving the width from a config of another size
    depth: tuple = ()        # ((block group, number of blocks), ...)
    config: tuple = ()       # ((unet_config key, value), ...) the model's config must have; a bool: truthiness
    marks: tuple = ()        # regexes on folded module names: what only LoRAs of rows carrying them have
    te: tuple = ()           # ((text-encoder part, hidden width), ...)


FAMILIES = (
    Family("SD1.5", "SD1.5", 768, ("SD15",), **_UNET, config=(("context_dim", 768),), marks=(_SD1_MARK,),
           te=(("te1", 768),)),
    Family("SD2.x", "SD2.x", 1024, ("SD20",), **_UNET, config=(("context_dim", 1024),), marks=(_SD1_MARK,),
           te=(("te1", 1024),)),
    Family("SDXL", "SDXL", 2048, ("SDXL",), **_UNET, config=(("context_dim", 2048),), marks=(_SDXL_MARK,),
           te=(("te1", 768), ("te2", 1280))),
    Family("SDXL refiner", "SDXL refiner", 1280, ("SDXLRefiner",), **_UNET, config=(("context_dim", 1280),),
           marks=(_SD1_MARK, _SDXL_MARK)),
    Family("Flux", "Flux", 3072, ("Flux",), **_FLUX, config=(("hidden_size", 3072),),
           depth=(("double_blocks", 19), ("single_blocks", 38), ("transformer_blocks", 19),
                  ("single_transformer_blocks", 38))),
    Family("Flux schnell", "Flux", 3072, ("FluxSchnell",), **_FLUX, config=(("hidden_size", 3072),),
           depth=(("double_blocks", 19), ("single_blocks", 38), ("transformer_blocks", 19),
                  ("single_transformer_blocks", 38))),
    Family("SD3 medium", "SD3/SD3.5 medium", 1536, ("SD3",), **_SD3,
           config=(("depth", 24), ("x_block_self_attn_layers", False)),
           depth=(("joint_blocks", 24), ("transformer_blocks", 24))),
    Family("SD3.5 medium", "SD3/SD3.5 medium", 1536, ("SD3",), **_SD3,
           config=(("depth", 24), ("x_block_self_attn_layers", True)),
           depth=(("joint_blocks", 24), ("transformer_blocks", 24)), marks=(r"attn2_",)),
    Family("SD3.5 large", "SD3.5 large", 2432, ("SD3",), **_SD3, config=(("depth", 38),),
           depth=(("joint_blocks", 38), ("transformer_blocks", 38))),
    Family("Qwen-Image", "Qwen-Image", 3072, ("QwenImage",), **_QWEN, config=(("num_layers", 60),),
           depth=(("transformer_blocks", 60),)),
    Family("Wan 2.1 1.3B", "Wan 2.1 1.3B", 1536, ("WAN21_T2V",), **_WAN, config=(("dim", 1536),),
           depth=(("blocks", 30),)),
    Family("Wan 2.1 14B T2V / Wan 2.2 A14B T2V expert", "Wan 14B", 5120, ("WAN21_T2V",), **_WAN,
           config=(("dim", 5120), ("in_dim", 16)), depth=(("blocks", 40),)),
    Family("Wan 2.2 A14B I2V expert", "Wan 14B", 5120, ("WAN21_T2V",), **_WAN,
           config=(("dim", 5120), ("in_dim", 36)), depth=(("blocks", 40),)),
    Family("Wan 2.1 14B I2V", "Wan 14B", 5120, ("WAN21_I2V",), **_WAN, config=(("dim", 5120),),
           depth=(("blocks", 40),), marks=(r"(cross_attn_[kv]_img|img_emb)",)),
    Family("Wan 2.2 TI2V 5B", "Wan 2.2 5B", 3072, ("WAN22_T2V",), **_WAN, config=(("dim", 3072),),
           depth=(("blocks", 30),)),
)


# -- reading the table ------------------------------------------------------------------------------------------
def bare_names() -> frozenset:
    """Every family's bare top-level weight names (the first dotted part of a bare LoRA module or model key)."""
    return frozenset(n for f in FAMILIES for n in f.bare)


def _block_groups() -> list:
    return sorted({g for f in FAMILIES for g, _n in f.depth}, key=len, reverse=True)


_BLOCK = re.compile(r"(?:^|_)(" + "|".join(_block_groups()) + r")_(\d+)_(.+)$")
_UNET_BLOCK = re.compile(r"(?:^|_)(down_blocks|up_blocks|mid_block|input_blocks|middle_block|output_blocks)_")


def parse_block(folded: str):
    """(block group, index, rest of the name) of a transformer block module's folded name; None for UNet blocks."""
    if _UNET_BLOCK.search(folded):
        return None
    m = _BLOCK.search(folded)
    return (m.group(1), int(m.group(2)), m.group(3)) if m else None


def is_unet_module(folded: str) -> bool:
    """A module of an SD UNet block (diffusers or LDM names)."""
    return bool(_UNET_BLOCK.search(folded))


def _most_common(values):
    c = Counter(v for v in values if v)
    return c.most_common(1)[0][0] if c else None


def block_width(row: Family, modules) -> int | None:
    """The LoRA's width as the row reads it: the most common input width of the modules its ``width_in`` names."""
    pat = re.compile(row.width_in)
    if row.layout is None:
        return _most_common(w for n, _b, w in modules if pat.fullmatch(n))
    return _most_common(w for _n, b, w in modules if b and pat.fullmatch(b[2]))


def depth_used(modules) -> dict:
    """{block group: highest index + 1} over the LoRA's block modules."""
    out = {}
    for _n, b, _w in modules:
        if b:
            out[b[0]] = max(out.get(b[0], 0), b[1] + 1)
    return out


def layout_share(row: Family, modules) -> float:
    """The share of the block modules named as this row's blocks are, within its block counts."""
    if row.layout is None:
        return 0.0
    pat, depth = re.compile(row.layout), dict(row.depth)
    blocks = [b for _n, b, _w in modules if b]
    fit = sum(1 for b in blocks if pat.fullmatch(f"{b[0]}_{b[2]}") and b[1] < depth.get(b[0], 0))
    return fit / len(blocks) if blocks else 0.0


def marks_shown(rows, names) -> set:
    """The marks of these rows that some module name carries."""
    return {m for r in rows for m in r.marks if any(re.search(m, n) for n in names)}


def fills_depth(row: Family, used: dict) -> bool:
    """The LoRA's blocks run to exactly the row's block count in every group it uses."""
    depth = dict(row.depth)
    return bool(used) and all(depth.get(g) == n for g, n in used.items())


@dataclass
class LoraFamily:
    """What a LoRA's keys say about its base: the rows it can be for, its architecture and width, and a label."""
    rows: tuple
    arch: str | None
    width: int | None
    width_kind: str | None
    label: str


def lora_family(modules, te_widths: dict) -> LoraFamily:
    """The rows a LoRA can be for: best layout share, then width, marks, text encoders, then exact block counts."""
    # ``modules``: [(folded name, block parse or None, input width or None)] of the diffusion-model modules. Rows
    # naming most of its transformer blocks as theirs (within their block counts), or the UNet rows; of those, the
    # ones its width, marks and text-encoder widths agree with; of rows whose LoRAs look alike by name, those whose
    # block counts the LoRA fills exactly (a diffusers LoRA on transformer blocks 0-18 is Flux's 19 double blocks, not
    # the first 19 of Qwen-Image's 60)
    blocks = [m for m in modules if m[1]]
    if blocks and 2 * len(blocks) >= len(modules):
        share = {f: layout_share(f, blocks) for f in FAMILIES}
        best = max(share.values())
        arch_rows = [f for f in FAMILIES if best >= 0.5 and share[f] == best]
    elif te_widths or any(is_unet_module(n) for n, _b, _w in modules):
        arch_rows = [f for f in FAMILIES if f.layout is None]
    else:
        return LoraFamily((), None, None, None, "unknown")
    names = [n for n, _b, _w in modules]
    shown = marks_shown(arch_rows, names)
    rows = [f for f in arch_rows if shown <= set(f.marks) and block_width(f, modules) in (None, f.width)
            and all(dict(f.te).get(p, w) == w for p, w in te_widths.items() if w) and (modules or f.te)]
    used = depth_used(blocks)
    exact = {f.lora for f in rows if fills_depth(f, used)}
    if len({f.lora for f in rows}) > 1 and exact:
        rows = [f for f in rows if f.lora in exact]
    ref = rows[0] if rows else arch_rows[0] if arch_rows else None
    width = block_width(ref, modules) if ref else None
    return LoraFamily(tuple(rows), ref.arch if ref else None, width, ref.width_kind if ref else None,
                      lora_label(rows, arch_rows, shown, width, te_widths))


def lora_label(rows, arch_rows, shown, width, te_widths) -> str:
    """'Flux (hidden width 3072)', 'Wan 14B (hidden width 5120)', 'SD3- or Flux-like layout (hidden width 128)'."""
    if rows:
        loras = list(dict.fromkeys(f.lora for f in rows))
        siblings = [f for f in FAMILIES if f.lora == rows[0].lora]
        name = rows[0].name if len(rows) == 1 and len(siblings) > 1 else " or ".join(loras)
    elif shown:
        like = [f for f in arch_rows if shown == set(f.marks)] or [f for f in arch_rows if shown <= set(f.marks)]
        names = [like[0].name] if len(like) == 1 else list(dict.fromkeys(f.lora for f in like))
        name = "- or ".join(names) + "-like layout" if like else "unknown"
    elif arch_rows and arch_rows[0].layout is not None:
        name = "- or ".join(dict.fromkeys(f.arch for f in arch_rows)) + "-like layout"
    else:
        name = "unknown"
    ref = rows[0] if rows else arch_rows[0] if arch_rows else None
    details = [f"{ref.width_kind} width {width}"] if width and ref else []
    if te_widths and (ref is None or ref.layout is None):
        details.append("text encoder widths " + "/".join(str(w) for _p, w in sorted(te_widths.items())))
    return name + (f" ({', '.join(details)})" if details else "")


@dataclass
class ModelFamily:
    """What the host's config says about the model: its row (None when no row matches), width and a label."""
    row: Family | None
    width: int | None
    width_kind: str | None
    label: str


def config_matches(row: Family, config: dict) -> bool:
    """Every (key, value) the row asks of the model's unet_config holds (a bool value: the entry's truthiness)."""
    return all((bool(config.get(k)) == v) if isinstance(v, bool) else config.get(k) == v for k, v in row.config)


def config_width(row: Family, config: dict) -> int | None:
    """The model's width from its config by the row's rule (SD3: 64 x depth, as the host's detection has it)."""
    if row.config_width is None:
        return None
    key, factor = row.config_width
    return config[key] * factor if config.get(key) else None


def model_family(classes, config: dict) -> ModelFamily:
    """The model's row: the first of its classes (most specific first) rows list, with matching config entries."""
    # labelled '<row>' for the stock class, '<row>-type <class>' for a subclass, '<class> of another size' for a class
    # whose config no row matches
    if not classes:
        return ModelFamily(None, None, None, "unknown (no model)")
    own = classes[0]
    for cls in classes:
        listed = [f for f in FAMILIES if cls in f.host]
        if not listed:
            continue
        row = next((f for f in listed if config_matches(f, config)), None)
        ref = row or listed[0]
        width = config_width(ref, config) or (row.width if row else None)
        if row is None:
            name = f"{own} of another size" if own == cls else f"{cls}-type {own}"
        else:
            name = row.name if own == cls else f"{row.name}-type {own}"
        return ModelFamily(row, width, ref.width_kind, name + (f" ({ref.width_kind} width {width})" if width else ""))
    width = next((config[k] for k in ("context_dim", "hidden_size", "dim") if config.get(k)), None)
    return ModelFamily(None, width, None, own + (f" (width {width})" if width else ""))
