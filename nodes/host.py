"""Thin adapters between the pure TCD math in ``samplers/`` and the ComfyUI host (sampler and scheduler plumbing)."""
from __future__ import annotations

import inspect

import comfy.model_sampling
import comfy.sample
import comfy.samplers
import torch

from ..samplers import (
    DEFAULT_GAMMA,
    GAMMA_RANGE,
    NUM_TRAIN_TIMESTEPS,
    ORIGINAL_INFERENCE_STEPS,
    TCDInputError,
    check_gamma,
    check_grid,
    flow_tcd_sigmas,
    range_text,
    sample_tcd,
    sample_tcd_flow,
    tcd_sigmas,
)

PACK = "tcd-exact"  # this pack's registry name ([project] name in pyproject.toml), as its log lines name it
SAMPLER_NAME = "tcd"
SCHEDULER_NAME = "tcd"
# What newer hosts' empty-latent nodes add to a LATENT (v0.33.0: the VAE downscale ratios its zeros were sized for):
# the host's samplers resize an empty latent by them for the model (a Wan 2.2 latent is 16x smaller, not 8x) and
# leave them out of their output.
EMPTY_LATENT_HINTS = ("downscale_ratio_spacial", "downscale_ratio_temporal")
GAMMA_TOOLTIP = (
    "gamma (diffusers calls it eta): how much fresh noise each TCD step re-injects. 0 = deterministic (sharpest "
    f"detail), 1 = LCM-style multistep (softest). Default {DEFAULT_GAMMA:g}; higher step counts want higher gamma "
    f"(about 0.2-0.3 at 4 steps, 0.5+ at 8 or more). Allowed range {range_text(*GAMMA_RANGE)}.")


def sampling_kind(ms) -> str:
    """'ddpm' (a discrete DDPM schedule of NUM_TRAIN_TIMESTEPS steps, eps or v) or 'flow' (rectified flow, CONST) for
    a model sampling object; a clear error naming its class for anything else (EDM, Stable Cascade, x0 prediction)."""
    MS = comfy.model_sampling
    if (isinstance(ms, MS.ModelSamplingDiscrete)
            and not isinstance(ms, (MS.ModelSamplingDiscreteEDM, MS.StableCascadeSampling))
            and isinstance(ms, (MS.EPS, MS.V_PREDICTION)) and not isinstance(ms, (MS.EDM, MS.X0))):
        return "ddpm"
    odd_flows = tuple(getattr(MS, n) for n in ("IMG_TO_IMG_FLOW",) if hasattr(MS, n))  # CONST, not x = (1-s)x0 + s e
    if (isinstance(ms, MS.CONST) and isinstance(ms, (MS.ModelSamplingDiscreteFlow, MS.ModelSamplingFlux))
            and not isinstance(ms, odd_flows) and float(getattr(ms, "noise_scale", 1.0)) == 1.0):
        return "flow"
    bases = ", ".join(c.__name__ for c in type(ms).__mro__[1:3])
    raise TCDInputError(
        f"TCD needs a model with a discrete {NUM_TRAIN_TIMESTEPS}-step DDPM noise schedule and eps or v prediction "
        f"(SD1.5, SD2.x, SDXL) or a rectified-flow schedule (SD3/SD3.5, Flux and the host's other flow models); this "
        f"model samples with {type(ms).__name__} ({bases}), which TCD cannot drive. Use the host's KSampler with a "
        f"sampler made for this model.")


def model_sampling(model):
    """The model's sampling object, checked: TCD refuses what it cannot drive before anything runs."""
    ms = model.get_model_object("model_sampling")
    sampling_kind(ms)
    return ms


def host_latent(model, latent: dict) -> torch.Tensor:
    """The samples as the host's samplers sample them: an empty latent given the model's channels and dimensions, and
    resized by its empty-latent hints where this host's fix_empty_latent_channels reads them."""
    params = inspect.signature(comfy.sample.fix_empty_latent_channels).parameters
    hints = {k: latent.get(k) for k in EMPTY_LATENT_HINTS if k in params}
    return comfy.sample.fix_empty_latent_channels(model, latent["samples"], **hints)


def output_latent(latent: dict, samples: torch.Tensor) -> dict:
    """An output LATENT: the input's entries with new samples, less the empty-latent hints (as the host's)."""
    out = {k: v for k, v in latent.items() if k not in EMPTY_LATENT_HINTS}
    out["samples"] = samples
    return out


def sample_tcd_host(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                    gamma=DEFAULT_GAMMA, noise_stream=None, **options):
    """The host-facing TCD sampler, for DDPM-grid and rectified-flow models alike. Step noise: the pack's own stream
    (``noise_stream``, whose initial noise our nodes drew, else one seeded with extra_args['seed']), never the host's
    default noise sampler (whose seeding differs between host versions and devices)."""
    extra_args = {} if extra_args is None else extra_args
    if noise_sampler is None and noise_stream is not None:
        noise_sampler = noise_stream.step_noise_sampler(x)
    # The guider's ModelPatcher, by its public accessor (as the host's own sample_lcm reads it).
    ms = model.inner_model.model_patcher.get_model_object("model_sampling")
    common = dict(extra_args=extra_args, callback=callback, disable=disable, noise_sampler=noise_sampler, gamma=gamma)
    if sampling_kind(ms) == "flow":
        x = sample_tcd_flow(model, x, sigmas, **common, **options)
    else:
        x = sample_tcd(model, x, sigmas, sigma_table=ms.sigmas, **common, **options)
    mask = extra_args.get("denoise_mask")
    if mask is not None and getattr(model, "latent_image", None) is not None:
        # On DDPM models TCD ends at sigma(t=0), not 0, so its result is not the inpaint wrapper's blended x0: put the
        # kept region back exactly, as the host's KSampler (and diffusers' inpaint) leave it (a no-op at sigma 0).
        x = x * mask + model.latent_image * (1.0 - mask)
    return x


def tcd_ksampler(gamma: float, **options) -> comfy.samplers.KSAMPLER:
    """A host SAMPLER object running TCD with this gamma (and, optionally, ``gamma_end`` for a per-step ramp)."""
    err = check_gamma(gamma) or check_gamma(options.get("gamma_end"), "gamma_end")
    if err:
        raise TCDInputError(err)
    return comfy.samplers.KSAMPLER(sample_tcd_host, extra_options={"gamma": float(gamma), **options})


def tcd_schedule(model_sampling, steps: int, denoise: float = 1.0,
                 original_inference_steps: int = ORIGINAL_INFERENCE_STEPS, timesteps=None) -> torch.Tensor:
    """Sigmas on the reference TCD grid (or custom ``timesteps``) for this model's own noise schedule (host
    scheduler-handler signature): the DDPM grid's sigmas, or the same grid as fractions of a flow model's schedule
    (shift included), ending at 0."""
    grid = flow_tcd_sigmas if sampling_kind(model_sampling) == "flow" else tcd_sigmas
    return grid(model_sampling.sigmas, steps, denoise, original_inference_steps, timesteps=timesteps)


def schedule_sigmas(model, scheduler: str, steps: int, denoise: float) -> torch.Tensor:
    """Sigmas for TCDKSampler: the reference grid for 'tcd', else the host's scheduler with the host's denoise rule."""
    ms = model_sampling(model)
    if scheduler == SCHEDULER_NAME:
        return tcd_schedule(ms, steps, denoise)
    msg = check_grid(steps, denoise, None)  # a host scheduler: the ranges only, not the TCD grid's length
    if msg:
        raise TCDInputError(msg)
    ks = comfy.samplers.KSampler(model, steps=steps, device=model.load_device, sampler="euler", scheduler=scheduler,
                                 denoise=denoise, model_options=model.model_options)
    return ks.sigmas.cpu()

