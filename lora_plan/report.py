"""The one-paragraph report: modules matched per part, the key format, both families, rank and alpha, the strengths
and what was patched."""
from __future__ import annotations

from collections import Counter

from .plan import LoraPlan

# key format by the prefix most module names carry, in the order they are tried
_FORMATS = (("kohya", ("lora_unet_", "lora_te")), ("PEFT", ("base_model.model.", "unet.base_model.model.")),
            ("diffusers (attention processors)", None), ("diffusers", ("unet.", "text_encoder", "transformer.")),
            ("OneTrainer", ("lora_transformer_",)), ("LyCORIS", ("lycoris_",)),
            ("LDM (diffusion_model.)", ("diffusion_model.",)))


def g(x: float) -> str:
    """A number as short as it reads: 1, 0.8, 1e-05."""
    return f"{x:g}"


def file_format(plan: LoraPlan) -> str:
    """The LoRA's key format by its module-name prefixes (the first format any module has), with the delta kinds
    when the file holds more than plain low-rank modules, and the host function that renamed its keys, if any."""
    names = list(plan.modules)
    fmt = "unprefixed"
    for label, prefixes in _FORMATS:
        if any((".processor." in n) if prefixes is None else n.startswith(prefixes) for n in names):
            fmt = label
            break
    kinds = Counter(k for m in plan.modules.values() for k in m.kinds)
    if set(kinds) - {"lora"}:
        fmt += " (" + ", ".join(f"{k} {n}" for k, n in kinds.most_common()) + ")"
    if plan.header.converted_by:
        fmt += f", keys renamed by {plan.header.converted_by}"
    return fmt


def many(c: Counter, f) -> str:
    """One value, or all of them with the most common: '4, 8 (mostly 4)'."""
    if len(c) == 1:
        return f(next(iter(c)))
    top = c.most_common(1)[0][0]
    vals = sorted(c, key=lambda v: (v is None, v or 0))
    return f"{', '.join(f(v) for v in vals)} (mostly {f(top)})"


def rank_alpha_text(plan: LoraPlan) -> str:
    """'rank 32, alpha 16 (scale 0.5)' over the low-rank (lora) modules; scale = alpha / rank, 1 without alpha."""
    ranks, alphas, scales = Counter(), Counter(), Counter()
    for m in plan.modules.values():
        if "lora" not in m.kinds or "down" not in m.tensors:
            continue
        r = plan.header.shapes[m.tensors["down"]][0]
        ranks[r] += 1
        a = plan.header.alphas.get(m.tensors.get("alpha"))
        alphas[a] += 1
        scales[(a / r) if a is not None else 1.0] += 1
    if not ranks:
        return "no rank (not a low-rank LoRA)"
    if set(alphas) == {None}:
        alpha = "no alpha stored (scale 1)"
    else:
        alpha = "alpha " + many(alphas, lambda v: "none" if v is None else g(v))
        alpha += " (scale " + many(scales, lambda v: g(round(v, 6))) + ")"
    return f"rank {many(ranks, str)}, {alpha}"


def parts_text(plan: LoraPlan) -> list:
    """'UNet 788/788 modules matched (100%)' per part, or why a part was not checked."""
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
    return bits


def converted_text(plan: LoraPlan) -> str:
    """' (560 in diffusers attention-projection spelling mapped by this loader ...)' for the aliases that matched."""
    conv = plan.converted()
    if not conv:
        return ""
    n_conv, n_all = sum(conv.values()), sum(1 for m in plan.modules.values() if m.target is not None)
    spell = ", ".join(f"{n} in {fmt} spelling" for fmt, n in conv.items())
    rest = f", the other {n_all - n_conv} by the host's key map" if n_all > n_conv else ""
    return f" ({spell} mapped by this loader where the host's key map has no entry{rest})"


def make_report(plan: LoraPlan, strength_model: float, strength_clip: float | None, applied: dict) -> str:
    """One readable paragraph: matches per part, format, both families, rank/alpha, strengths, what was applied."""
    strengths = f"strength_model {g(strength_model)}"
    if strength_clip is not None:
        strengths += f", strength_clip {g(strength_clip)}"
    app = ", ".join(f"{n} {what}" for what, n in applied.items() if n) or "nothing (strength 0)"
    extra = ""
    if plan.extra:
        extra = f" {len(plan.extra)} tensor(s) that are not LoRA weights were ignored (e.g. '{plan.extra[0]}')."
    return (f"TCD LoRA '{plan.name}': {'; '.join(parts_text(plan))}. Format {file_format(plan)}"
            f"{converted_text(plan)}. LoRA base {plan.lora_family}; model {plan.model_family}. "
            f"{rank_alpha_text(plan)}; {strengths}. Patched lazily through the host's ModelPatcher: {app}.{extra}")
