"""ComfyUI-TCD: Trajectory Consistency Distillation sampling for ComfyUI, exact to diffusers' TCDScheduler."""
import importlib.util

if importlib.util.find_spec("comfy") is not None:  # inside ComfyUI
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:  # imported without the host (e.g. by pytest): the pure math in samplers/ still works
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
