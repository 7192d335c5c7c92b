"""Thin adapters between the pure TCD math in ``samplers/`` and the ComfyUI host (sampler and scheduler plumbing)."""
from __future__ import annotations

import math

import torch

import comfy.k_diffusion.sampling as k_sampling
import comfy.model_sampling
import comfy.samplers

from ..samplers import TCDInputError, sample_tcd, tcd_sigmas

SAMPLER_NAME = "tcd"
SCHEDULER_NAME = "tcd"
DEFAULT_GAMMA = 0.3
GAMMA_TOOLTIP = (
    "gamma (diffusers calls it eta): how much fresh noise each TCD step re-injects. 0 = deterministic (sharpest "
    "detail), 1 = LCM-style multistep (softest). Default 0.3; higher step counts want higher gamma "
    "(about 0.2-0.3 at 4 steps, 0.5+ at 8 or more). Allowed range 0..1.")


def check_float_range(name, value, lo, hi, note="") -> str | None:
    """None when ``value`` is a finite number in lo..hi (or None: a linked input), else a message naming both."""
    if value is None:
        return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
        return f"{name}={value!r} is outside the allowed range {lo:g}..{hi:g}{note}"
    return None


def check_gamma(gamma) -> str | None:
    """None when gamma is a number in 0..1, else a message naming the value and the range."""
    return check_float_range("gamma", gamma, 0.0, 1.0, " (0 deterministic, 1 LCM-like)")


def check_int_range(name, value, lo, hi) -> str | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        return f"{name}={value!r} is outside the allowed range {lo}..{hi}"
    return None


def discrete_model_sampling(model):
    """The model's DDPM-style sampling object, or a clear error for models TCD cannot drive (flow, EDM, cascade)."""
    ms = model.get_model_object("model_sampling")
    ok = (isinstance(ms, comfy.model_sampling.ModelSamplingDiscrete)
          and not isinstance(ms, (comfy.model_sampling.ModelSamplingDiscreteEDM,
                                  comfy.model_sampling.StableCascadeSampling))
          and isinstance(ms, (comfy.model_sampling.EPS, comfy.model_sampling.V_PREDICTION))
          and not isinstance(ms, (comfy.model_sampling.EDM, comfy.model_sampling.X0)))
    if not ok:
        bases = ", ".join(c.__name__ for c in type(ms).__mro__[1:3])
        raise TCDInputError(
            f"TCD needs a model with a discrete 1000-step DDPM noise schedule and eps or v prediction "
            f"(SD1.5, SD2.x, SDXL and their TCD/Hyper-SD LoRAs); this model samples with {type(ms).__name__} "
            f"({bases}), which TCD cannot drive. Use the host's KSampler with a sampler made for this model.")
    return ms


def sample_tcd_host(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                    gamma=DEFAULT_GAMMA, **options):
    """The host-facing TCD sampler. Step noise: the pack's own stream seeded with extra_args['seed'], never the
    host's default noise sampler (whose seeding differs between host versions and devices)."""
    extra_args = {} if extra_args is None else extra_args
    ms = model.inner_model.inner_model.model_sampling  # KSamplerX0Inpaint -> CFGGuider -> BaseModel
    x = sample_tcd(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                   noise_sampler=noise_sampler, gamma=gamma, sigma_table=ms.sigmas, **options)
    mask = extra_args.get("denoise_mask")
    if mask is not None and getattr(model, "latent_image", None) is not None:
        # TCD ends at sigma(t=0), not 0, so unlike the host's samplers its result is not the inpaint wrapper's
        # blended x0: put the kept region back exactly, as the host's KSampler (and diffusers' inpaint) leave it.
        x = x * mask + model.latent_image * (1.0 - mask)
    return x


def tcd_ksampler(gamma: float, **options) -> comfy.samplers.KSAMPLER:
    """A host SAMPLER object running TCD with this gamma."""
    err = check_gamma(gamma)
    if err:
        raise TCDInputError(err)
    return comfy.samplers.KSAMPLER(sample_tcd_host, extra_options={"gamma": float(gamma), **options})


def tcd_schedule(model_sampling, steps: int, denoise: float = 1.0, original_inference_steps: int = 50) -> torch.Tensor:
    """Sigmas on the reference TCD grid for this model's own noise schedule (host scheduler-handler signature)."""
    return tcd_sigmas(model_sampling.sigmas, steps, denoise, original_inference_steps)


def schedule_sigmas(model, scheduler: str, steps: int, denoise: float) -> torch.Tensor:
    """Sigmas for TCDKSampler: the reference grid for 'tcd', else the host's scheduler with the host's denoise rule."""
    ms = discrete_model_sampling(model)
    if scheduler == SCHEDULER_NAME:
        return tcd_schedule(ms, steps, denoise)
    if not denoise > 0:
        raise TCDInputError(f"denoise={denoise!r}: allowed range is greater than 0 and at most 1")
    ks = comfy.samplers.KSampler(model, steps=steps, device=model.load_device, sampler="euler", scheduler=scheduler,
                                 denoise=denoise, model_options=model.model_options)
    return ks.sigmas.cpu()


def register_host_names() -> dict:
    """Add sampler 'tcd' and scheduler 'tcd' to the host's dropdowns, once; skip a name the host already has."""
    done = {"sampler": False, "scheduler": False}
    if SAMPLER_NAME not in comfy.samplers.KSAMPLER_NAMES and not hasattr(k_sampling, f"sample_{SAMPLER_NAME}"):
        setattr(k_sampling, f"sample_{SAMPLER_NAME}", sample_tcd_host)
        comfy.samplers.KSAMPLER_NAMES.append(SAMPLER_NAME)
        if SAMPLER_NAME not in comfy.samplers.SAMPLER_NAMES:
            comfy.samplers.SAMPLER_NAMES.append(SAMPLER_NAME)
        done["sampler"] = True
    if SCHEDULER_NAME not in comfy.samplers.SCHEDULER_HANDLERS:
        comfy.samplers.SCHEDULER_HANDLERS[SCHEDULER_NAME] = comfy.samplers.SchedulerHandler(tcd_schedule, use_ms=True)
        if SCHEDULER_NAME not in comfy.samplers.SCHEDULER_NAMES:
            comfy.samplers.SCHEDULER_NAMES.append(SCHEDULER_NAME)
        done["scheduler"] = True
    return done
