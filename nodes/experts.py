"""TCD Sampler (two experts): Wan 2.2 A14B's high- and low-noise models in one TCD trajectory (samplers/experts.py)."""
from __future__ import annotations

import logging

from comfy_api.latest import io

from ..samplers import (
    BOUNDARY_RANGE,
    EXPERT_NAMES,
    HIGH,
    I2V_BOUNDARY,
    LOW,
    NUM_TRAIN_TIMESTEPS,
    ORIGINAL_INFERENCE_STEPS,
    T2V_BOUNDARY,
    Handover,
    Leg,
    TCDInputError,
    check_boundary,
    check_gamma,
    check_range,
    describe_legs,
    expert_legs,
    step_timesteps,
)
from . import cache as first_step_cache
from .host import model_sampling, sampling_kind, schedule_sigmas
from .replacements import schema_aliases
from .sampling import (
    CATEGORY,
    CFG_RANGE,
    cfg_input,
    check_scheduler,
    conditioning_inputs,
    denoise_input,
    gamma_input,
    run_sampler,
    scheduler_input,
    seed_input,
    steps_input,
    validate_grid,
)

log = logging.getLogger(__name__)


def expert_cfg_input(name: str, expert: int) -> io.Float.Input:
    return cfg_input(name, f"Classifier-free guidance scale of the {EXPERT_NAMES[expert]} model's steps (diffusers' "
                           f"{'guidance_scale' if expert == HIGH else 'guidance_scale_2'}). 1.0 for Lightning / "
                           "lightx2v LoRAs (the negative prompt is then ignored and each step costs one model call); "
                           "above 1 doubles that model's calls.")


def step_times(model, sigmas) -> list[float]:
    """The steps' timesteps on the training scale, as the boundary reads them (samplers/experts.py)."""
    ms = model_sampling(model)
    return step_timesteps(sigmas, None if sampling_kind(ms) == "flow" else ms.sigmas)


class TCDTwoExpertSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        T = NUM_TRAIN_TIMESTEPS
        return io.Schema(
            node_id="TCDTwoExpertSampler", display_name="TCD Sampler (two experts)", category=CATEGORY,
            description="TCD with two experts in one trajectory, as Wan 2.2 A14B is sampled: the high-noise model "
                        f"runs the steps whose timestep is at least boundary x {T}, the low-noise model the rest "
                        "(diffusers' WanPipeline rule), on one TCD grid with one noise stream from one seed. Each "
                        "model is loaded for its own steps only, one after the other, as the host's "
                        "two-KSamplerAdvanced template does, so the two never need to be in memory together. With "
                        "the same model twice it gives exactly TCD Sampler's result.",
            inputs=[
                io.Model.Input("high_noise_model",
                               tooltip="The high-noise expert (e.g. Wan 2.2 A14B's high_noise model with its "
                                       "Lightning LoRA), for the first steps. The TCD grid is taken from this "
                                       "model's noise schedule (its shift)."),
                io.Model.Input("low_noise_model",
                               tooltip="The low-noise expert (e.g. Wan 2.2 A14B's low_noise model with its Lightning "
                                       "LoRA), for the steps below the boundary. It must sample the same way as the "
                                       "high-noise model (both flow models, as Wan's are)."),
                seed_input(),
                steps_input(),
                expert_cfg_input("cfg_high_noise", HIGH),
                expert_cfg_input("cfg_low_noise", LOW),
                gamma_input(),
                io.Float.Input("boundary", default=T2V_BOUNDARY, min=BOUNDARY_RANGE[0], max=BOUNDARY_RANGE[1],
                               step=0.005, round=0.001,
                               tooltip=f"Where the low-noise model takes over, as a fraction of the {T} training "
                                       "timesteps (diffusers' boundary_ratio): a step runs on the high-noise model "
                                       f"while its timestep (sigma x {T} on a flow model) is at least boundary x "
                                       f"{T}. {T2V_BOUNDARY:g} for Wan 2.2 T2V A14B, {I2V_BOUNDARY:g} for I2V. The "
                                       "split follows the noise level, so it holds at any step count and shift; "
                                       "the text output says which steps each model ran."),
                scheduler_input(),
                *conditioning_inputs(),
                denoise_input(),
            ],
            outputs=[io.Latent.Output(tooltip="The denoised latent (decode it with VAE Decode)."),
                     io.String.Output(display_name="experts",
                                      tooltip="Which steps each model ran, with their timesteps (connect a Preview "
                                              "as Text to see it).")],
            **schema_aliases("TCDTwoExpertSampler"))

    @classmethod
    def validate_inputs(cls, steps=None, cfg_high_noise=None, cfg_low_noise=None, gamma=None, boundary=None,
                        scheduler=None, denoise=None):
        # As TCD Sampler: naming an input here turns off the host's own checks for it, so every range is checked.
        return (check_scheduler(scheduler) or check_range(cfg_high_noise, *CFG_RANGE, "cfg_high_noise")
                or check_range(cfg_low_noise, *CFG_RANGE, "cfg_low_noise") or check_gamma(gamma)
                or check_boundary(boundary) or validate_grid(steps, denoise, ORIGINAL_INFERENCE_STEPS, scheduler))

    @classmethod
    def execute(cls, high_noise_model, low_noise_model, seed, steps, cfg_high_noise, cfg_low_noise, gamma, boundary,
                scheduler, positive, negative, latent_image, denoise=1.0) -> io.NodeOutput:
        models, cfgs = (high_noise_model, low_noise_model), (cfg_high_noise, cfg_low_noise)
        kinds = [sampling_kind(model_sampling(m)) for m in models]
        if kinds[0] != kinds[1]:
            raise TCDInputError(f"the two experts must sample the same way: the high-noise model is a {kinds[0]} "
                                f"model, the low-noise model a {kinds[1]} model")
        sigmas = schedule_sigmas(high_noise_model, scheduler, steps, denoise)  # one grid: the high-noise model's
        times = step_times(high_noise_model, sigmas)
        legs = expert_legs(times, boundary)
        report = describe_legs(legs, times, boundary)
        log.info("TCD Sampler (two experts): %s", report)
        first_model, first_cfg = models[legs[0][0]], cfgs[legs[0][0]]
        # The first evaluation (which gamma does not change) is reused across gamma-only changes, as in TCD Sampler.
        first = first_step_cache.first_step(first_model, seed, first_cfg, sigmas, positive, negative, latent_image)
        handover = Handover()
        runs = [(models[e], cfgs[e], Leg(a, b, handover)) for e, a, b in legs]
        out = run_sampler(first_model, seed, first_cfg, gamma, first.sampler_options(), sigmas, positive, negative,
                          latent_image, legs=runs)
        return io.NodeOutput(out, report)
