"""The refusal policy: a LoRA is applied in full or not at all, and a refusal says first what decides it (another
family, another width), then what else is wrong (modules without a weight, deltas of the wrong shape)."""
from __future__ import annotations

from .errors import TCDLoraError
from .families import bare_names
from .grammar import TE_PARTS, target_key
from .plan import LoraPlan, Module

_CHECKPOINT = ("model.diffusion_model.", "first_stage_model.", "conditioner.", "cond_stage_model.")


def what_is_it(keys) -> str:
    """What a file without LoRA tensors is by its key prefixes: checkpoint, bare model, VAE, text encoder, embedding."""
    keys = list(keys)
    if any(k.startswith(_CHECKPOINT) for k in keys):
        return "a full checkpoint (put it in models/checkpoints and load it with Load Checkpoint)"
    bare = bare_names()
    if any(k.startswith("diffusion_model.") or k.split(".", 1)[0] in bare for k in keys):
        return "a bare UNet / diffusion model (put it in models/diffusion_models)"
    if any(k.startswith(("encoder.", "decoder.", "quant_conv", "post_quant_conv")) for k in keys):
        return "a VAE (put it in models/vae)"
    if any(k.startswith(("text_model.", "transformer.", "clip_l.", "clip_g.")) for k in keys):
        return "a text encoder (put it in models/text_encoders)"
    if any(k.startswith(("emb_params", "string_to_param", "clip_l", "clip_g")) for k in keys):
        return "a textual-inversion embedding (put it in models/embeddings)"
    return "not a LoRA"


def listed(ms, limit=3) -> str:
    """'name: problem; name: problem; and N more'."""
    s = "; ".join(f"{m.name}: {m.damage or m.problem}" for m in ms[:limit])
    return s + (f"; and {len(ms) - limit} more" if len(ms) > limit else "")


def family_reason(plan: LoraPlan):
    """The LoRA is recognised as rows of the family table the model's row is not among: the decisive reason."""
    rows, row = plan.lora.rows, plan.model.row
    if rows and row is not None and row not in rows:
        return f"the LoRA looks like {plan.lora_family}; the model is {plan.model_family}, another family"
    return None


def width_reason(plan: LoraPlan):
    """The LoRA's width (cross-attention or hidden) differs from the model's: decisive where no family decides."""
    lw, mw = plan.lora.width, plan.model.width
    if lw and mw and lw != mw and plan.lora.width_kind == plan.model.width_kind:
        return f"the LoRA's {plan.lora.width_kind} width is {lw}, the model's is {mw}"
    return None


def unmatched_reason(plan: LoraPlan, part: str):
    """Modules of a part that match no weight of the model."""
    ms = plan.part_modules(part)
    unmatched = [m for m in ms if m.target is None]
    if not unmatched:
        return None
    examples = ", ".join(repr(m.name) for m in unmatched[:3])
    return (f"only {len(ms) - len(unmatched)} of {len(ms)} {plan.part_label(part)} modules match a weight of the "
            f"model (not found: {examples}{' and more' if len(unmatched) > 3 else ''})")


def shape_reason(bad: list):
    """Modules whose deltas do not fit what they change."""
    return f"{len(bad)} module(s) have the wrong shape ({listed(bad)})" if bad else None


def refusal(plan: LoraPlan, reasons: list, by_family: bool) -> TCDLoraError:
    """'<file>' does not fit this model: <decisive reason>. Also, <the others>. <both families>. Nothing applied."""
    lead, rest = reasons[0], reasons[1:]
    also = f" Also, {'; '.join(rest)}." if rest else ""
    if by_family and not rest:
        lead += " (its modules would all fit by name and shape)"
    fams = "" if by_family else f" The LoRA looks like {plan.lora_family}; the model is {plan.model_family}."
    return TCDLoraError(f"'{plan.name}' does not fit this model: {lead}.{also}{fams} Use the LoRA made for this "
                        f"model's base. Nothing was applied.")


def check_plan(plan: LoraPlan, parts_needed: set) -> None:
    """All or nothing: TCDLoraError unless every module of the parts needed maps to a weight and every delta fits."""
    # in this order: an empty or damaged file; the family, else the width; the unmatched modules; the shapes; a weight
    # changed twice
    n = plan.name
    if not plan.modules:
        example = next(iter(plan.header.shapes), None)
        raise TCDLoraError(f"'{n}' holds no LoRA tensors ({len(plan.header.shapes)} tensors"
                           f"{', e.g. ' + repr(example) if example else ''}): it looks like "
                           f"{what_is_it(plan.header.shapes)}. Nothing was applied.")
    damaged = [m for m in plan.modules.values() if m.damage]
    if damaged:
        raise TCDLoraError(f"'{n}' has damaged LoRA modules: {listed(damaged)}. Nothing was applied.")
    needed = [p for p in ("unet", "other", *TE_PARTS) if p in parts_needed and plan.part_modules(p)]
    family = family_reason(plan)
    reasons = [r for r in (family, width_reason(plan)) if r][:1]
    reasons += [r for r in (unmatched_reason(plan, p) for p in needed) if r]
    reasons += [r for r in [shape_reason([m for m in plan.modules.values() if m.problem and m.part in needed])] if r]
    if reasons:
        raise refusal(plan, reasons, by_family=family is not None)
    twice = changed_twice([m for m in plan.modules.values()
                           if m.target is not None and m.weight_kind is not None and m.part in needed])
    if twice:
        raise TCDLoraError(f"'{n}' holds {len(twice)} weight(s) twice under different names (e.g. {twice[0]}): "
                           f"the file mixes two LoRA formats. Use a file in one format. Nothing was applied.")


def module_span(m: Module):
    """(dim, start, stop): the rows of its weight a matched module changes (a slice, or all of them)."""
    if isinstance(m.target, tuple) and m.target[1] is not None:
        dim, off, size = m.target[1]
        return dim, off, off + size
    return 0, 0, m.target_shape[0]


def changed_twice(ms) -> list:
    """The weights two modules change in overlapping rows (the host would add both)."""
    spans = {}
    for m in ms:
        spans.setdefault(target_key(m.target), []).append(module_span(m))
    return [k for k, ss in spans.items() if overlap(sorted(ss))]


def overlap(spans) -> bool:
    """Whether any two of these sorted (dim, start, stop) spans of one weight share a row."""
    return any(a[0] != b[0] or b[1] < a[2] for a, b in zip(spans, spans[1:], strict=False))
