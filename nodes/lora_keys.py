"""The LoRA planner's host side: what only the host can say, gathered as data for ``lora_plan`` (which decides).

The host builds the key maps (``comfy.lora.model_lora_keys_unet`` / ``model_lora_keys_clip``), renames the keys of a
few LoRA spellings (``comfy.lora_convert.convert_lora``: Wan-Fun, BFL control, USO), reads non-safetensors files
(``comfy.utils.load_torch_file``, weights only) and knows the model's config and weight shapes; ``lora_plan`` groups,
maps, checks and reports.
"""
from __future__ import annotations

import logging
import os

import comfy.lora
import comfy.lora_convert
import comfy.utils
import torch

from ..lora_plan import (
    TE_PARTS,
    Header,
    ModelData,
    TCDLoraError,
    check_plan,
    header_from_tensors,
    is_safetensors,
    make_report,
    missing_file,
)
from ..lora_plan import plan_lora as plan_from_data
from ..lora_plan import read_header as read_safetensors_header
from .host import PACK

log = logging.getLogger(f"{PACK}.lora")
HOST_CONVERT = "the host's comfy.lora_convert.convert_lora"

__all__ = ["TE_PARTS", "Header", "TCDLoraError", "check_plan", "make_report", "log", "read_header", "plan_lora",
           "model_data", "host_spelling", "host_tensors"]


def read_header(path: str, display: str | None = None) -> Header:
    """A LoRA file's header: safetensors read by lora_plan, any other format by the host's weights-only loader."""
    display = display or os.path.basename(path)
    if is_safetensors(path):
        return read_safetensors_header(path, display)
    err = missing_file(path, display)
    if err:
        raise err
    try:
        sd = comfy.utils.load_torch_file(path, safe_load=True)
    except Exception as e:
        raise TCDLoraError(f"LoRA file '{display}' cannot be read with the host's weights-only loader "
                           f"({type(e).__name__}: {e}). It is truncated, damaged, or holds more than plain tensors; a "
                           f".safetensors copy of the LoRA avoids this.") from None
    return header_from_tensors(path, sd, display)


def host_spelling(header: Header) -> Header:
    """The header with its keys as the host's convert_lora renames them (run on shape-only stand-ins and the alphas)."""
    stand_in = {k: (torch.tensor(header.alphas[k]) if k in header.alphas else torch.empty(s, device="meta"))
                for k, s in header.shapes.items()}
    keys = set(stand_in)
    out = comfy.lora_convert.convert_lora(stand_in)  # it may rename in place
    if set(out) == keys:
        return header
    return Header(header.path, {k: tuple(v.shape) for k, v in out.items()}, {k: str(v.dtype) for k, v in out.items()},
                  {k: float(v) for k, v in out.items() if k.endswith(".alpha") and v.device.type != "meta"},
                  header.metadata, converted_by=HOST_CONVERT)


def host_tensors(sd: dict, renames: dict) -> dict:
    """The tensors as load_lora reads them: renamed by convert_lora (as the stock loader does), then by the plan."""
    sd = comfy.lora_convert.convert_lora(dict(sd))
    return {renames.get(k, k): v for k, v in sd.items()} if renames else sd


def model_data(unet_model=None, clip_model=None) -> ModelData:
    """The host's key maps, weight shapes, config classes and unet_config of a BaseModel and/or a CLIP model."""
    key_map, shapes, checked = {}, {}, set()
    if unet_model is not None:
        comfy.lora.model_lora_keys_unet(unet_model, key_map)
        shapes.update({k: tuple(v.shape) for k, v in unet_model.state_dict().items()})
        checked.add("unet")
    if clip_model is not None:
        comfy.lora.model_lora_keys_clip(clip_model, key_map)
        shapes.update({k: tuple(v.shape) for k, v in clip_model.state_dict().items()})
        checked.update(TE_PARTS)
    if unet_model is not None and clip_model is not None:
        checked.add("other")
    cfg = getattr(unet_model, "model_config", None)
    classes = tuple(c.__name__ for c in type(cfg if cfg is not None else unet_model).__mro__) if unet_model else ()
    return ModelData(key_map, shapes, checked, classes, dict(getattr(cfg, "unet_config", None) or {}))


def plan_lora(header: Header, unet_model=None, clip_model=None, name: str | None = None):
    """The plan (lora_plan.plan_lora) of a LoRA against host models, in the key spelling the host reads."""
    return plan_from_data(host_spelling(header), model_data(unet_model, clip_model), name)
