"""The pack's one registration point: node classes, display names, and the host's sampler/scheduler names."""
from .grid import TCDImageGrid
from .host_names import register_host_names
from .lora import TCDLoraLoader, TCDLoraLoaderModelOnly
from .sampling import TCDKSampler, TCDSampler, TCDSigmas
from .sweep import TCDGammaSweep

NODE_CLASS_MAPPINGS = {
    "TCDLoraLoader": TCDLoraLoader,
    "TCDLoraLoaderModelOnly": TCDLoraLoaderModelOnly,
    "TCDKSampler": TCDKSampler,
    "TCDSampler": TCDSampler,
    "TCDSigmas": TCDSigmas,
    "TCDGammaSweep": TCDGammaSweep,
    "TCDImageGrid": TCDImageGrid,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "TCDLoraLoader": "Load TCD LoRA",
    "TCDLoraLoaderModelOnly": "Load TCD LoRA (model only)",
    "TCDKSampler": "TCD Sampler",
    "TCDSampler": "SamplerTCD",
    "TCDSigmas": "TCD Scheduler",
    "TCDGammaSweep": "TCD Gamma Sweep",
    "TCDImageGrid": "Labelled Image Grid",
}

register_host_names()
