"""The TCD sampling nodes: TCDKSampler (all-in-one), TCDSampler (SAMPLER) and TCDSigmas (SIGMAS)."""
from __future__ import annotations

import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
from comfy_api.latest import io

from ..samplers import (
    DEFAULT_GAMMA,
    GAMMA_RANGE,
    MAX_STEPS,
    NUM_TRAIN_TIMESTEPS,
    ORIGINAL_INFERENCE_STEPS,
    NoiseStream,
    TCDInputError,
    check_gamma,
    check_grid,
    check_range,
    parse_timesteps,
    range_text,
)
from . import cache as first_step_cache
from .host import (
    GAMMA_TOOLTIP,
    SCHEDULER_NAME,
    host_latent,
    model_sampling,
    output_latent,
    schedule_sigmas,
    tcd_ksampler,
    tcd_schedule,
)
from .replacements import schema_aliases

CATEGORY = "sampling/TCD"
CFG_RANGE = (0.0, 100.0)


def gamma_input(default=DEFAULT_GAMMA) -> io.Float.Input:
    return io.Float.Input("gamma", default=default, min=GAMMA_RANGE[0], max=GAMMA_RANGE[1], step=0.01, round=0.001,
                          display_mode=io.NumberDisplay.slider, tooltip=GAMMA_TOOLTIP)


def steps_input(default=4) -> io.Int.Input:
    return io.Int.Input("steps", default=default, min=1, max=MAX_STEPS,
                        tooltip="Number of TCD steps (model calls at cfg 1). TCD LoRAs work from 1 to 8 steps; 4 is "
                                "the usual choice. On the 'tcd' scheduler at most original_inference_steps x "
                                f"denoise ({ORIGINAL_INFERENCE_STEPS} at denoise 1).")


def denoise_input() -> io.Float.Input:
    return io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                          tooltip="How much of the image to re-create: 1 = from pure noise (text to image); lower "
                                  "keeps more of the input latent (image to image). On the 'tcd' scheduler this is "
                                  "diffusers' `strength`: it shortens the TCD grid. Must be above 0.")


def seed_input() -> io.Int.Input:
    return io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=True,
                        tooltip="Seed of the initial noise and of every step's fresh noise.")


CFG_TOOLTIP = ("Classifier-free guidance scale. TCD LoRAs are distilled for 1.0 (the negative prompt is then ignored "
               "and each step costs one model call); values above 1 double the calls.")


def cfg_input(name="cfg", tooltip=CFG_TOOLTIP) -> io.Float.Input:
    return io.Float.Input(name, default=1.0, min=CFG_RANGE[0], max=CFG_RANGE[1], step=0.1, round=0.01,
                          tooltip=tooltip)


def scheduler_input() -> io.Combo.Input:
    return io.Combo.Input("scheduler", options=scheduler_names(), default=SCHEDULER_NAME,
                          tooltip="'tcd' is the reference TCD timestep grid (999, 759, 499, 259 at 4 steps). The "
                                  "host's schedulers are offered too; with them denoise follows the host's KSampler "
                                  "rule.")


def conditioning_inputs() -> list:
    """positive, negative and latent_image, as TCD Sampler takes them."""
    return [io.Conditioning.Input("positive", tooltip="What the image should show."),
            io.Conditioning.Input("negative", tooltip="What to avoid; only used when cfg is not 1."),
            io.Latent.Input("latent_image", tooltip="The latent to start from: Empty Latent Image for text to image, "
                                                    "or an encoded image (noise masks are honoured).")]


def check_scheduler(scheduler):
    """None for a known scheduler name (or None), else a message listing them (validate_inputs turns off the host's
    own list check, and v0.3.75 checks no V3 combo at all)."""
    if scheduler is not None and scheduler not in scheduler_names():
        return f"scheduler={scheduler!r} is not one of {scheduler_names()}"
    return None


def scheduler_names() -> list:
    """'tcd' first (the default), then the host's schedulers."""
    return [SCHEDULER_NAME] + [s for s in comfy.samplers.KSampler.SCHEDULERS if s != SCHEDULER_NAME]


def validate_grid(steps, denoise, original_inference_steps=ORIGINAL_INFERENCE_STEPS, scheduler=SCHEDULER_NAME):
    """Validation-time check (True or a message naming the value and the allowed range): the TCD grid's rule for the
    'tcd' scheduler; with a host scheduler only the ranges of steps and denoise."""
    return check_grid(steps, denoise, original_inference_steps if scheduler == SCHEDULER_NAME else None) or True


class TCDKSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TCDKSampler", display_name="TCD Sampler", category=CATEGORY,
            description="TCD Sampler: samples a latent with Trajectory Consistency Distillation's strategic "
                        "stochastic sampling, exactly as diffusers' TCDScheduler does. Use with a TCD (or Hyper-SD) "
                        "LoRA, 2-8 steps, cfg 1; sweep gamma to trade detail for smoothness.",
            inputs=[
                io.Model.Input("model", tooltip="The model to sample with, normally a checkpoint with a TCD LoRA "
                                                "applied."),
                seed_input(),
                steps_input(),
                cfg_input(),
                gamma_input(),
                scheduler_input(),
                *conditioning_inputs(),
                denoise_input(),
            ],
            outputs=[io.Latent.Output(tooltip="The denoised latent (decode it with VAE Decode).")],
            **schema_aliases("TCDKSampler"))

    @classmethod
    def validate_inputs(cls, steps=None, cfg=None, gamma=None, scheduler=None, denoise=None):
        # Naming an input here turns off the host's own min/max and list checks for it, so they are done here (NaN
        # too: the host's min/max check lets NaN through, and an unknown scheduler would only fail at run time).
        return (check_scheduler(scheduler) or check_range(cfg, *CFG_RANGE, "cfg") or check_gamma(gamma)
                or validate_grid(steps, denoise, ORIGINAL_INFERENCE_STEPS, scheduler))

    @classmethod
    def execute(cls, model, seed, steps, cfg, gamma, scheduler, positive, negative, latent_image,
                denoise=1.0) -> io.NodeOutput:
        sigmas = schedule_sigmas(model, scheduler, steps, denoise)
        # Reuse the first model evaluation of an earlier run that differed only in gamma (see nodes/cache.py).
        first = first_step_cache.first_step(model, seed, cfg, sigmas, positive, negative, latent_image)
        return io.NodeOutput(run_sampler(model, seed, cfg, gamma, first.sampler_options(), sigmas, positive,
                                         negative, latent_image))


def run_sampler(model, seed, cfg, gamma, options: dict, sigmas, positive, negative, latent, legs=None):
    """Sample like the host's KSampler (noise, batch indices, noise mask, previews, progress) with TCD at this gamma
    (``options``: tcd_ksampler's first-step options). ``legs``: [(model, cfg, Leg)], run in order as one trajectory
    with one noise stream, one host sampling call per leg (TCD Sampler (two experts)); ``model`` is the first leg's."""
    latent_image = host_latent(model, latent)
    if getattr(latent_image, "is_nested", False):
        raise TCDInputError("TCD samples one latent tensor; this latent is nested (several latents in one), "
                            "which TCD does not support")
    # The pack's own noise stream (samplers/noise.py), the same on every host: its first draw is the initial noise,
    # and the sampler's step noise carries on from the same generator.
    stream = NoiseStream(seed)
    noise = stream.initial_noise(latent_image.shape, latent.get("batch_index")).to(latent_image.dtype)
    callback = latent_preview.prepare_callback(model, sigmas.shape[-1] - 1)
    for leg_model, leg_cfg, leg in legs or [(model, cfg, None)]:
        # Every leg gets the whole schedule and the same initial noise (the host's inpainting blend reads it); a
        # later leg starts from the latent the one before it handed over, and draws on from the same stream.
        sampler = tcd_ksampler(gamma, noise_stream=stream, leg=leg, **options)
        samples = comfy.sample.sample_custom(leg_model, noise, leg_cfg, sampler, sigmas, positive, negative,
                                             latent_image, noise_mask=latent.get("noise_mask"), callback=callback,
                                             disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    return output_latent(latent, samples)


class TCDSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TCDSampler", display_name="SamplerTCD", category=CATEGORY,
            description="SamplerTCD: the TCD sampler as a SAMPLER for SamplerCustom / SamplerCustomAdvanced. Pair it "
                        "with TCD Scheduler for the reference timestep grid. Connect a number to gamma_end to ramp "
                        "gamma linearly from gamma at the first step to gamma_end at the last.",
            inputs=[
                gamma_input(),
                io.Float.Input("gamma_end", optional=True, force_input=True, min=GAMMA_RANGE[0], max=GAMMA_RANGE[1],
                               tooltip="Optional per-step gamma ramp: gamma moves linearly from gamma at the first "
                                       f"step to gamma_end at the last ({range_text(*GAMMA_RANGE)}). Not connected: "
                                       "gamma_end equals gamma (no ramp). E.g. 0.6 -> 0.1 re-injects more noise early "
                                       "and keeps detail at the end."),
            ],
            outputs=[io.Sampler.Output(tooltip="A TCD sampler with this gamma (or gamma ramp).")],
            **schema_aliases("TCDSampler"))

    @classmethod
    def validate_inputs(cls, gamma=None, gamma_end=None):
        return check_gamma(gamma) or check_gamma(gamma_end, "gamma_end") or True

    @classmethod
    def execute(cls, gamma, gamma_end=None) -> io.NodeOutput:
        return io.NodeOutput(tcd_ksampler(gamma) if gamma_end is None
                             else tcd_ksampler(gamma, gamma_end=float(gamma_end)))


class TCDSigmas(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        T = NUM_TRAIN_TIMESTEPS
        return io.Schema(
            node_id="TCDSigmas", display_name="TCD Scheduler", category=CATEGORY,
            description=f"TCD Scheduler: the reference TCD timestep grid ({T} training steps, "
                        "original_inference_steps distillation grid, shortened by denoise) as SIGMAS of the model's "
                        "own noise schedule.",
            inputs=[
                io.Model.Input("model", tooltip="The model whose noise schedule the sigmas are taken from."),
                steps_input(),
                denoise_input(),
                io.Int.Input("original_inference_steps", optional=True, default=ORIGINAL_INFERENCE_STEPS, min=1,
                             max=T, tooltip="Size of the distillation grid TCD was trained on "
                                            f"({ORIGINAL_INFERENCE_STEPS} for the published TCD LoRAs): timesteps 19, "
                                            "39, ..., 999."),
                io.String.Input("timesteps", optional=True, default="", multiline=False,
                                tooltip="Optional custom timesteps, e.g. '999, 749, 499, 249' (the grid DMD2-style "
                                        "few-step LoRAs were trained on): strictly descending whole numbers below "
                                        f"{T}, used in order; the last step lands on timestep 0. When given, steps "
                                        "and denoise are ignored. Empty: the usual TCD grid."),
            ],
            outputs=[io.Sigmas.Output(tooltip="Sigmas for SamplerCustom / SamplerCustomAdvanced, ending in 0: the TCD "
                                              "grid, or the custom timesteps when given (steps and denoise then "
                                              "ignored).")],
            **schema_aliases("TCDSigmas"))

    @classmethod
    def validate_inputs(cls, steps=None, denoise=None, original_inference_steps=ORIGINAL_INFERENCE_STEPS,
                        timesteps=None):
        try:
            if parse_timesteps(timesteps) is not None:
                return check_grid(None, None, original_inference_steps) or True  # steps and denoise are ignored
        except TCDInputError as e:
            return str(e)
        return validate_grid(steps, denoise, original_inference_steps)

    @classmethod
    def execute(cls, model, steps, denoise, original_inference_steps=ORIGINAL_INFERENCE_STEPS,
                timesteps="") -> io.NodeOutput:
        return io.NodeOutput(tcd_schedule(model_sampling(model), steps, denoise, original_inference_steps,
                                          timesteps=parse_timesteps(timesteps)))
