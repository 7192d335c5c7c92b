"""The TCD sampling nodes: TCDKSampler (all-in-one), TCDSampler (SAMPLER) and TCDSigmas (SIGMAS)."""
from __future__ import annotations

import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview

from ..samplers import MAX_STEPS, TCDInputError, check_grid, initial_noise, parse_timesteps
from . import cache as first_step_cache
from .host import (
    DEFAULT_GAMMA,
    GAMMA_TOOLTIP,
    SCHEDULER_NAME,
    check_float_range,
    check_gamma,
    host_latent,
    model_sampling,
    output_latent,
    schedule_sigmas,
    tcd_ksampler,
    tcd_schedule,
)

CATEGORY = "sampling/TCD"


def gamma_input(default=DEFAULT_GAMMA):
    return ("FLOAT", {"default": default, "min": 0.0, "max": 1.0, "step": 0.01, "round": 0.001,
                      "display": "slider", "tooltip": GAMMA_TOOLTIP})


def steps_input(default=4):
    return ("INT", {"default": default, "min": 1, "max": MAX_STEPS,
                    "tooltip": "Number of TCD steps (model calls at cfg 1). TCD LoRAs work from 1 to 8 steps; "
                               "4 is the usual choice. On the 'tcd' scheduler at most original_inference_steps "
                               "x denoise (50 at denoise 1)."})


def denoise_input():
    return ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                      "tooltip": "How much of the image to re-create: 1 = from pure noise (text to image); lower "
                                 "keeps more of the input latent (image to image). On the 'tcd' scheduler this is "
                                 "diffusers' `strength`: it shortens the TCD grid. Must be above 0."})


def scheduler_names() -> list:
    """'tcd' first (the default), then the host's schedulers."""
    return [SCHEDULER_NAME] + [s for s in comfy.samplers.KSampler.SCHEDULERS if s != SCHEDULER_NAME]


def validate_grid(steps, denoise, original_inference_steps=50, scheduler=SCHEDULER_NAME):
    """Validation-time check (True or a message naming the value and the allowed range): the TCD grid's rule for the
    'tcd' scheduler; with a host scheduler only the ranges of steps and denoise."""
    return check_grid(steps, denoise, original_inference_steps if scheduler == SCHEDULER_NAME else None) or True


class TCDKSampler:
    DESCRIPTION = ("TCD Sampler: samples a latent with Trajectory Consistency Distillation's strategic stochastic "
                   "sampling, exactly as diffusers' TCDScheduler does. Use with a TCD (or Hyper-SD) LoRA, 2-8 "
                   "steps, cfg 1; sweep gamma to trade detail for smoothness.")
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The denoised latent (decode it with VAE Decode).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The model to sample with, normally a checkpoint with a TCD LoRA applied."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True,
                             "tooltip": "Seed of the initial noise and of every step's fresh noise."}),
            "steps": steps_input(),
            "cfg": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                              "tooltip": "Classifier-free guidance scale. TCD LoRAs are distilled for 1.0 (the "
                                         "negative prompt is then ignored and each step costs one model call); "
                                         "values above 1 double the calls."}),
            "gamma": gamma_input(),
            "scheduler": (scheduler_names(),
                          {"default": SCHEDULER_NAME,
                           "tooltip": "'tcd' is the reference TCD timestep grid (999, 759, 499, 259 at 4 steps). "
                                      "The host's schedulers are offered too; with them denoise follows the host's "
                                      "KSampler rule."}),
            "positive": ("CONDITIONING", {"tooltip": "What the image should show."}),
            "negative": ("CONDITIONING", {"tooltip": "What to avoid; only used when cfg is not 1."}),
            "latent_image": ("LATENT", {"tooltip": "The latent to start from: Empty Latent Image for text to "
                                                   "image, or an encoded image (noise masks are honoured)."}),
            "denoise": denoise_input(),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, steps=None, cfg=None, gamma=None, scheduler=None, denoise=None):
        # Naming an input here turns off the host's own min/max and list checks for it, so they are done here (NaN
        # too: the host's min/max check lets NaN through, and an unknown scheduler would only fail at run time).
        if scheduler is not None and scheduler not in scheduler_names():
            return f"scheduler={scheduler!r} is not one of {scheduler_names()}"
        return (check_float_range("cfg", cfg, 0.0, 100.0) or check_gamma(gamma)
                or validate_grid(steps, denoise, 50, scheduler))

    def sample(self, model, seed, steps, cfg, gamma, scheduler, positive, negative, latent_image, denoise=1.0):
        sigmas = schedule_sigmas(model, scheduler, steps, denoise)
        # Reuse the first model evaluation of an earlier run that differed only in gamma (see nodes/cache.py).
        first = first_step_cache.sampler_options(model, seed, cfg, sigmas, positive, negative, latent_image)
        return (run_sampler(model, seed, cfg, tcd_ksampler(gamma, **first), sigmas, positive, negative, latent_image),)


def run_sampler(model, seed, cfg, sampler, sigmas, positive, negative, latent):
    """Sample like the host's KSampler (noise, batch indices, noise mask, previews, progress) with our SAMPLER."""
    latent_image = host_latent(model, latent)
    if getattr(latent_image, "is_nested", False):
        raise TCDInputError("TCD samples one latent tensor; this latent is nested (several latents in one), "
                            "which TCD does not support")
    # The pack's own noise stream (samplers/noise.py), the same on every host: its first draw is the initial noise.
    noise = initial_noise(seed, latent_image.shape, latent.get("batch_index")).to(latent_image.dtype)
    callback = latent_preview.prepare_callback(model, sigmas.shape[-1] - 1)
    samples = comfy.sample.sample_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent_image,
                                         noise_mask=latent.get("noise_mask"), callback=callback,
                                         disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    return output_latent(latent, samples)


class TCDSampler:
    DESCRIPTION = ("SamplerTCD: the TCD sampler as a SAMPLER for SamplerCustom / SamplerCustomAdvanced. Pair it "
                   "with TCD Scheduler for the reference timestep grid. Connect a number to gamma_end to ramp gamma "
                   "linearly from gamma at the first step to gamma_end at the last.")
    CATEGORY = CATEGORY
    FUNCTION = "get_sampler"
    RETURN_TYPES = ("SAMPLER",)
    OUTPUT_TOOLTIPS = ("A TCD sampler with this gamma (or gamma ramp).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"gamma": gamma_input()},
                "optional": {"gamma_end": ("FLOAT", {
                    "forceInput": True, "min": 0.0, "max": 1.0,
                    "tooltip": "Optional per-step gamma ramp: gamma moves linearly from gamma at the first step to "
                               "gamma_end at the last (0..1). Not connected: gamma_end equals gamma (no ramp). "
                               "E.g. 0.6 -> 0.1 re-injects more noise early and keeps detail at the end."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, gamma=None, gamma_end=None):
        return check_gamma(gamma) or check_gamma(gamma_end, "gamma_end") or True

    def get_sampler(self, gamma, gamma_end=None):
        return (tcd_ksampler(gamma) if gamma_end is None else tcd_ksampler(gamma, gamma_end=float(gamma_end)),)


class TCDSigmas:
    DESCRIPTION = ("TCD Scheduler: the reference TCD timestep grid (1000 training steps, original_inference_steps "
                   "distillation grid, shortened by denoise) as SIGMAS of the model's own noise schedule.")
    CATEGORY = CATEGORY
    FUNCTION = "get_sigmas"
    RETURN_TYPES = ("SIGMAS",)
    OUTPUT_TOOLTIPS = ("Sigmas for SamplerCustom / SamplerCustomAdvanced, ending in 0: the TCD grid, or the custom "
                       "timesteps when given (steps and denoise then ignored).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
                    "model": ("MODEL", {"tooltip": "The model whose noise schedule the sigmas are taken from."}),
                    "steps": steps_input(),
                    "denoise": denoise_input()},
                "optional": {
                    "original_inference_steps": ("INT", {
                        "default": 50, "min": 1, "max": 1000,
                        "tooltip": "Size of the distillation grid TCD was trained on (50 for the published TCD "
                                   "LoRAs): timesteps 19, 39, ..., 999."}),
                    "timesteps": ("STRING", {
                        "default": "", "multiline": False,
                        "tooltip": "Optional custom timesteps, e.g. '999, 749, 499, 249' (the grid DMD2-style "
                                   "few-step LoRAs were trained on): strictly descending whole numbers below 1000, "
                                   "used in order; the last step lands on timestep 0. When given, steps and denoise "
                                   "are ignored. Empty: the usual TCD grid."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, steps=None, denoise=None, original_inference_steps=50, timesteps=None):
        try:
            if parse_timesteps(timesteps) is not None:
                return check_grid(None, None, original_inference_steps) or True  # steps and denoise are ignored
        except TCDInputError as e:
            return str(e)
        return validate_grid(steps, denoise, original_inference_steps)

    def get_sigmas(self, model, steps, denoise, original_inference_steps=50, timesteps=""):
        return (tcd_schedule(model_sampling(model), steps, denoise, original_inference_steps,
                             timesteps=parse_timesteps(timesteps)),)
