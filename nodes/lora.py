"""Load TCD LoRA / Load TCD LoRA (model only): LoRA loaders that check the whole file against the model before
applying it through the host's own machinery, refuse what does not fit, and say what they did in a report."""
from __future__ import annotations

import os
import threading
from collections import OrderedDict

import comfy.lora
import comfy.utils
import folder_paths
from comfy_api.latest import io

from ..lora_plan import patch_keys
from .lora_keys import TE_PARTS, TCDLoraError, check_plan, host_tensors, log, make_report, plan_lora, read_header

CATEGORY = "loaders/TCD"
STRENGTH_RANGE = {"min": -100.0, "max": 100.0, "step": 0.01}
CACHE_SIZE = 4

# What has been read, per file path: (size, mtime_ns) -> header (and the tensors once loaded). A changed file (new size
# or modification time) is read again; an unchanged one never is, whatever changes downstream.
_CACHE: OrderedDict = OrderedDict()
_LOCK = threading.Lock()
# header_reads / tensor_reads: files read; patch_builds: calls of the host's load_lora; patch_adds: add_patches calls.
# A refusal is decided from the header alone: no tensor read (of a safetensors file), no patch built or added.
STATS = {"header_reads": 0, "tensor_reads": 0, "patch_builds": 0, "patch_adds": 0}


def file_signature(path: str):
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def clear_cache():
    with _LOCK:
        _CACHE.clear()


def _entry(path: str, display: str) -> dict:
    try:
        sig = file_signature(path)
    except OSError as e:
        raise TCDLoraError(f"LoRA file '{display}' cannot be opened: {e}") from None
    with _LOCK:
        hit = _CACHE.get(path)
        if hit is not None and hit["sig"] == sig:
            _CACHE.move_to_end(path)
            return hit
    header = read_header(path, display)
    STATS["header_reads"] += 1
    entry = {"sig": sig, "header": header, "sd": header.state_dict}
    if header.state_dict is not None:
        STATS["tensor_reads"] += 1
    with _LOCK:
        _CACHE[path] = entry
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return entry


def _tensors(entry: dict, path: str, display: str) -> dict:
    if entry["sd"] is None:
        try:
            sd = comfy.utils.load_torch_file(path, safe_load=True)
        except Exception as e:
            raise TCDLoraError(f"LoRA file '{display}' cannot be read ({type(e).__name__}: {e}). Re-download or "
                               f"re-copy it. Nothing was applied.") from None
        if set(sd) != set(entry["header"].shapes):
            raise TCDLoraError(f"LoRA file '{display}' changed while it was being read; run the prompt again.")
        entry["sd"] = sd
        STATS["tensor_reads"] += 1
    return entry["sd"]


def _patched(target, patches, strength, lora_name, what):
    """A clone of ``target`` (ModelPatcher or CLIP) with every patch added, or TCDLoraError if any is refused."""
    new = target.clone()
    STATS["patch_adds"] += 1
    added = new.add_patches(patches, strength)
    if len(added) != len(patches):
        raise TCDLoraError(f"'{lora_name}': the {what} took {len(added)} of {len(patches)} weight patches. "
                           f"Nothing was applied.")
    return new, len(added)


def _host_patches(plan, sd, to_load, lora_name):
    """The host's weight patches (comfy.lora.load_lora) for the planned modules, or TCDLoraError when it builds fewer
    than the plan says: every weight and bias each module changes must get its patch."""
    STATS["patch_builds"] += 1
    patches = comfy.lora.load_lora(host_tensors(sd, plan.renames()), to_load, log_missing=False)
    lost = [name for name in to_load if any(k not in patches for k in patch_keys(plan.modules[name]))]
    if lost:
        raise TCDLoraError(f"'{lora_name}': the host built no weight patch for {len(lost)} module(s) (e.g. "
                           f"{lost[0]!r}); its weight adapters do not know this module type. Nothing was "
                           f"applied.")
    return patches


def apply_tcd_lora(model, clip, lora_name: str, strength_model: float, strength_clip: float | None):
    """(model, clip, report): every module of the LoRA mapped, shape-checked and patched, or TCDLoraError."""
    if model is None:
        raise TCDLoraError("Load TCD LoRA needs a MODEL input.")
    path = folder_paths.get_full_path("loras", lora_name)
    if path is None:
        raise TCDLoraError(f"LoRA file '{lora_name}' is not in the loras folder(s): "
                           f"{', '.join(folder_paths.get_folder_paths('loras'))}.")
    entry = _entry(path, lora_name)
    plan = plan_lora(entry["header"], model.model, clip.cond_stage_model if clip is not None else None, lora_name)
    needed = {"unet", "other"} | (set(TE_PARTS) if clip is not None else set())
    check_plan(plan, needed)
    counts = plan.counts()
    if clip is None and "unet" not in counts and "other" not in counts:
        raise TCDLoraError(f"'{lora_name}' holds only text-encoder modules, which the model-only loader cannot "
                           f"apply: use Load TCD LoRA with a CLIP input. Nothing was applied.")

    parts = set()
    if strength_model != 0:
        parts |= {"unet", "other"}
    if clip is not None and strength_clip:
        parts |= set(TE_PARTS)
    to_load = plan.to_load(parts)
    unet_w = f"{plan.unet_label} weights"
    new_model, new_clip, applied = model, clip, {unet_w: 0, "text-encoder weights": 0}
    if to_load:
        patches = _host_patches(plan, _tensors(entry, path, lora_name), to_load, lora_name)
        unet_p = {k: v for k, v in patches.items()
                  if (k if isinstance(k, str) else k[0]).startswith("diffusion_model.")}
        clip_p = {k: v for k, v in patches.items() if k not in unet_p}
        if unet_p:
            new_model, applied[unet_w] = _patched(model, unet_p, strength_model, lora_name, "model")
        if clip_p:
            new_clip, applied["text-encoder weights"] = _patched(clip, clip_p, strength_clip, lora_name,
                                                                 "text encoders")
    report = make_report(plan, strength_model, strength_clip if clip is not None else None, applied)
    log.info(report)
    return new_model, new_clip, report


def _lora_signature(lora_name):
    path = folder_paths.get_full_path("loras", lora_name) if lora_name else None
    if path is None:
        return lora_name
    try:
        size, mtime = file_signature(path)
    except OSError:
        return lora_name
    return f"{lora_name}|{size}|{mtime}"


REPORT_TOOLTIP = ("One paragraph: modules matched per part (UNet or transformer, each text encoder), the LoRA's and "
                  "the model's base family, key format, rank, alpha, strengths and what was patched. Also written to "
                  "the log.")


def _lora_inputs(with_clip: bool) -> list:
    """The loaders' inputs, in order: model, (clip,) lora_name, strength_model, (strength_clip)."""
    def strength(name, tooltip):
        return io.Float.Input(name, default=1.0, **STRENGTH_RANGE, tooltip=tooltip)
    return [
        io.Model.Input("model", tooltip="The diffusion model (for example from Load Checkpoint) to apply the LoRA to."),
        *([io.Clip.Input("clip", tooltip="The text encoders to apply the LoRA's text-encoder part to (TCD LoRAs have "
                                         "none; pass it through).")] if with_clip else []),
        io.Combo.Input("lora_name", options=folder_paths.get_filename_list("loras"),
                       tooltip="The LoRA file, from the models/loras folder. .safetensors is read header first; other "
                               "formats only with the host's weights-only loader."),
        strength("strength_model", "How strongly the LoRA changes the diffusion model: 1 = as trained (use 1 for TCD "
                                   "LoRAs), 0 = not at all, negative inverts it."),
        *([strength("strength_clip", "How strongly the LoRA changes the text encoders (only matters when the LoRA "
                                     "has a text-encoder part).")] if with_clip else []),
    ]


MODEL_TOOLTIP = "The model with the LoRA patched in (lazily: weights change only when sampling loads them)."


class _LoraFileChecks:
    """What both loaders check before running: the file name, and whether the file changed since the last run."""

    @classmethod
    def validate_inputs(cls, lora_name=None):
        # ComfyUI v0.3.75 checks no V3 combo against its options, so the name is checked here (on every host).
        names = folder_paths.get_filename_list("loras")
        if lora_name is not None and lora_name not in names:
            return (f"lora_name={lora_name!r} is not in the loras folder(s) "
                    f"({', '.join(folder_paths.get_folder_paths('loras'))}), which hold {len(names)} files")
        return True

    @classmethod
    def fingerprint_inputs(cls, lora_name=None, **kwargs):
        # Same file, same size and modification time: the host may reuse the cached result. A rewritten file runs
        # again (and is read again); downstream changes (gamma, steps) never re-run this node.
        return _lora_signature(lora_name)


class TCDLoraLoader(_LoraFileChecks, io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TCDLoraLoader", display_name="Load TCD LoRA", category=CATEGORY,
            description="Load TCD LoRA: applies a LoRA (TCD, Hyper-SD, LCM or any style LoRA) to the model and text "
                        "encoders, but only after checking that every module of the file maps to a weight of this "
                        "model with the right shape. A LoRA for another base (SD1.5 on SDXL, Flux on SD3.5), a "
                        "checkpoint or a truncated file is refused with a clear error instead of being half-applied. "
                        "SD1.5, SD2.x, SDXL, SD3/SD3.5, Flux, Qwen-Image, Wan 2.1 and Wan 2.2; reads kohya, "
                        "diffusers, PEFT and the other key formats the host maps; chain several loaders to stack "
                        "LoRAs.",
            inputs=_lora_inputs(with_clip=True),
            outputs=[io.Model.Output(tooltip=MODEL_TOOLTIP),
                     io.Clip.Output(tooltip="The text encoders with the LoRA's text-encoder part patched in "
                                            "(unchanged when the LoRA has none)."),
                     io.String.Output(display_name="report", tooltip=REPORT_TOOLTIP)])

    @classmethod
    def execute(cls, model, clip, lora_name, strength_model, strength_clip) -> io.NodeOutput:
        return io.NodeOutput(*apply_tcd_lora(model, clip, lora_name, strength_model, strength_clip))


class TCDLoraLoaderModelOnly(_LoraFileChecks, io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TCDLoraLoaderModelOnly", display_name="Load TCD LoRA (model only)", category=CATEGORY,
            description="Load TCD LoRA (model only): applies a LoRA's diffusion-model part after checking that every "
                        "UNet or transformer module maps to a weight of this model with the right shape; refuses "
                        "LoRAs for another base, checkpoints and damaged files with a clear error. Text-encoder "
                        "modules are counted in the report but not applied.",
            inputs=_lora_inputs(with_clip=False),
            outputs=[io.Model.Output(tooltip=MODEL_TOOLTIP),
                     io.String.Output(display_name="report", tooltip=REPORT_TOOLTIP)])

    @classmethod
    def execute(cls, model, lora_name, strength_model) -> io.NodeOutput:
        new_model, _clip, report = apply_tcd_lora(model, None, lora_name, strength_model, None)
        return io.NodeOutput(new_model, report)
