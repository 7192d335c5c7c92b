"""TCD Sampler + Scheduler: SamplerTCD and TCD Scheduler in one node, with the model passed on, for SamplerCustom (the
node JettHu/ComfyUI-TCD's TCD Model Sampling Discrete is replaced by: the same three outputs in the same order)."""
from __future__ import annotations

from comfy_api.latest import io

from .replacements import schema_aliases
from .sampling import CATEGORY, TCDSampler, TCDSigmas, denoise_input, gamma_input, steps_input


class TCDSamplerScheduler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TCDSamplerScheduler", display_name="TCD Sampler + Scheduler", category=CATEGORY,
            description="TCD Sampler + Scheduler: SamplerTCD and TCD Scheduler in one node for SamplerCustom. It "
                        "passes the model on unchanged and gives a TCD sampler at this gamma and the reference TCD "
                        "grid's sigmas for steps and denoise. Workflows made with TCD Model Sampling Discrete "
                        "(JettHu/ComfyUI-TCD) open with this node in its place (its eta is gamma).",
            inputs=[
                io.Model.Input("model", tooltip="The model to sample with (normally with a TCD LoRA applied): passed "
                                                "on unchanged, and the sigmas are taken from its noise schedule."),
                steps_input(),
                denoise_input(),
                gamma_input(),
            ],
            outputs=[
                io.Model.Output(tooltip="The input model, unchanged: connect it to SamplerCustom's model."),
                io.Sampler.Output(tooltip="A TCD sampler with this gamma (as SamplerTCD gives it)."),
                io.Sigmas.Output(tooltip="The reference TCD grid's sigmas for steps and denoise, ending in 0 (as TCD "
                                         "Scheduler gives them)."),
            ],
            **schema_aliases("TCDSamplerScheduler"))

    @classmethod
    def validate_inputs(cls, steps=None, denoise=None, gamma=None):
        # Naming an input here turns off the host's own checks for it: SamplerTCD's and TCD Scheduler's do them.
        ok = TCDSampler.validate_inputs(gamma=gamma)
        return TCDSigmas.validate_inputs(steps=steps, denoise=denoise) if ok is True else ok

    @classmethod
    def execute(cls, model, steps, denoise, gamma) -> io.NodeOutput:
        """The model, then exactly what SamplerTCD and TCD Scheduler give for these inputs."""
        (sampler,) = TCDSampler.execute(gamma).result
        (sigmas,) = TCDSigmas.execute(model, steps, denoise).result
        return io.NodeOutput(model, sampler, sigmas)
