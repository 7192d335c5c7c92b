"""What a LoRA file says about itself, without loading it: tensor shapes, dtypes and the tiny alpha scalars. A
safetensors file is read from its header here; any other format is read by the host's weights-only loader in the
adapter, which hands the tensors in (``header_from_tensors``)."""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass

from .errors import TCDLoraError


@dataclass
class Header:
    """Shapes and dtypes by key, alphas, metadata (and a non-safetensors file's tensors, read whole)."""
    path: str
    shapes: dict
    dtypes: dict
    alphas: dict
    metadata: dict
    state_dict: dict | None = None
    converted_by: str | None = None  # the host function that renamed the file's keys, if one did


def is_safetensors(path: str) -> bool:
    """A .safetensors (or .sft) file: its header can be read alone."""
    return path.lower().endswith((".safetensors", ".sft"))


def safetensors_detail(path: str) -> str:
    """Why a safetensors file cannot be read, from its bytes: too short, not a header, truncated header or data."""
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


def missing_file(path: str, display: str):
    """TCDLoraError for a LoRA path that is not a file, else None."""
    return None if os.path.isfile(path) else TCDLoraError(f"LoRA file '{display}' does not exist ({path}).")


def read_header(path: str, display: str | None = None) -> Header:
    """Shapes, dtypes and alphas of a safetensors LoRA from its header (plus the alpha scalars), nothing else read."""
    import safetensors  # the file format's own reader (torch comes with it)

    display = display or os.path.basename(path)
    err = missing_file(path, display)
    if err:
        raise err
    try:
        with safetensors.safe_open(path, framework="pt", device="cpu") as f:
            shapes, dtypes, alphas = {}, {}, {}
            for k in f.keys():
                sl = f.get_slice(k)
                shapes[k] = tuple(sl.get_shape())
                dtypes[k] = sl.get_dtype()
                if k.endswith(".alpha"):
                    alphas[k] = float(f.get_tensor(k).float().reshape(-1)[0])
            metadata = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error type; the detail comes from the bytes themselves
        raise TCDLoraError(f"LoRA file '{display}' cannot be read: {safetensors_detail(path)}. Re-download or "
                           f"re-copy it. (safetensors said: {e})") from None
    return Header(path, shapes, dtypes, alphas, metadata)


def header_from_tensors(path: str, sd, display: str | None = None) -> Header:
    """The header of a file the host's weights-only loader read whole: its tensors' shapes, dtypes and alphas."""
    if not isinstance(sd, dict):
        raise TCDLoraError(f"LoRA file '{display or os.path.basename(path)}' does not hold a dictionary of tensors.")
    sd = {k: v for k, v in sd.items() if hasattr(v, "shape") and hasattr(v, "dtype")}
    return Header(path, {k: tuple(v.shape) for k, v in sd.items()}, {k: str(v.dtype) for k, v in sd.items()},
                  alphas_of(sd), {}, state_dict=sd)


def alphas_of(tensors: dict) -> dict:
    """{key: value} of every non-empty '.alpha' tensor."""
    return {k: float(v.float().reshape(-1)[0]) for k, v in tensors.items()
            if k.endswith(".alpha") and v.numel() and v.device.type != "meta"}
