"""TCD Exact (tcd-exact): Trajectory Consistency Distillation sampling for ComfyUI, exact to diffusers' TCDScheduler."""
import importlib.util

# Inside ComfyUI the pack is one V3 extension behind ``comfy_entrypoint`` (and nothing else: the host takes any
# NODE_CLASS_MAPPINGS first). Without the host (e.g. under pytest) nothing is imported, and the pure math in samplers/
# still works.
if importlib.util.find_spec("comfy") is not None:
    from .nodes import comfy_entrypoint

    __all__ = ["comfy_entrypoint"]
else:
    __all__ = []
