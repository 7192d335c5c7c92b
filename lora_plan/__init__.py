"""The LoRA planner, without the host: the key grammar, header reading, the family table, the plan and its shape
checks, the refusal policy and the report. The host's key maps, the model's weight shapes and config come in as data
(``ModelData``); ``nodes/lora_keys.py`` gathers them from the host. Nothing here imports ComfyUI."""
from .errors import TCDLoraError
from .families import FAMILIES, Family, LoraFamily, ModelFamily, lora_family, model_family
from .grammar import PART_NAMES, PARTS, TE_PARTS, split_key
from .header import Header, header_from_tensors, is_safetensors, missing_file, read_header
from .plan import LoraPlan, ModelData, Module, patch_keys, plan_lora
from .policy import check_plan, what_is_it
from .report import make_report

__all__ = [
    "TCDLoraError", "FAMILIES", "Family", "LoraFamily", "ModelFamily", "lora_family", "model_family",
    "PART_NAMES", "PARTS", "TE_PARTS", "split_key", "Header", "header_from_tensors", "is_safetensors", "missing_file",
    "read_header", "LoraPlan", "ModelData", "Module", "patch_keys", "plan_lora", "check_plan", "what_is_it",
    "make_report",
]
