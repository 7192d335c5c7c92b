"""The pack's one registration point: node classes, display names, and the host's sampler/scheduler names."""
from .host import register_host_names
from .sampling import TCDKSampler, TCDSampler, TCDSigmas

NODE_CLASS_MAPPINGS = {
    "TCDKSampler": TCDKSampler,
    "TCDSampler": TCDSampler,
    "TCDSigmas": TCDSigmas,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "TCDKSampler": "TCD Sampler",
    "TCDSampler": "SamplerTCD",
    "TCDSigmas": "TCD Scheduler",
}

register_host_names()
