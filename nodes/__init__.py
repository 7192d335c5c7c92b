"""The pack's one registration point: every node, in one V3 extension, the host's sampler/scheduler names, and the
replacements for other TCD packs' nodes (where the host has them)."""
from comfy_api.latest import ComfyExtension, io

from .experts import TCDTwoExpertSampler
from .grid import TCDImageGrid
from .host_names import register_host_names
from .lora import TCDLoraLoader, TCDLoraLoaderModelOnly
from .replacements import register_replacements
from .sampler_scheduler import TCDSamplerScheduler
from .sampling import TCDKSampler, TCDSampler, TCDSigmas
from .sweep import TCDGammaSweep

NODES = [TCDLoraLoader, TCDLoraLoaderModelOnly, TCDKSampler, TCDSampler, TCDSigmas, TCDSamplerScheduler,
         TCDGammaSweep, TCDImageGrid, TCDTwoExpertSampler]


class TCDExtension(ComfyExtension):
    async def on_load(self) -> None:
        """Called by hosts that have node replacements (v0.33.0; v0.3.75 never calls it), as core registers its own."""
        await register_replacements()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> TCDExtension:
    """Called once by the host when it loads the pack (both hosts; v0.3.75 never calls ``on_load``)."""
    register_host_names()
    return TCDExtension()
