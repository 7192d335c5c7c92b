"""The ground truth: diffusers' TCDScheduler driven the way its pipelines drive it, and the sigma-space mapping.

A DDPM-space sample relates to the host's sigma-space sample by x_sigma = x_ddpm / sqrt(alpha_bar_t); every
comparison below maps the reference into sigma space with that exact factor at the timestep it belongs to.
"""
from __future__ import annotations

import torch
from diffusers import TCDScheduler


def make_scheduler(prediction_type: str = "epsilon") -> TCDScheduler:
    # The SD1.5/SDXL/SD2.1 training schedule (scaled_linear 0.00085..0.012, 1000 steps); TCD's published config.
    return TCDScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                        prediction_type=prediction_type, timestep_spacing="leading", original_inference_steps=50)


def sigma_table(scheduler: TCDScheduler) -> torch.Tensor:
    ac = scheduler.alphas_cumprod.double()
    return ((1 - ac) / ac).sqrt().float()


def reference_loop(scheduler: TCDScheduler, model_output, shape, steps: int, gamma: float, seed: int,
                   strength: float = 1.0, image_latent: torch.Tensor | None = None):
    """diffusers' TCD loop driven the way its float32 pipelines drive it: one CPU generator seeded with ``seed`` draws
    the initial latents (``prepare_latents``), then every ``TCDScheduler.step`` draws its noise from it.
    ``model_output(x_ddpm, t)`` is the model's eps (or v). Returns (timesteps, final DDPM-space sample, initial noise)."""
    from diffusers.utils.torch_utils import randn_tensor

    gen = torch.Generator("cpu").manual_seed(seed)
    scheduler.set_timesteps(steps, strength=strength)
    timesteps = scheduler.timesteps
    noise = randn_tensor(tuple(shape), generator=gen, device=torch.device("cpu"), dtype=torch.float32)
    if image_latent is None:
        x = noise * scheduler.init_noise_sigma
    else:  # img2img pipelines: the encoded image noised to the first timestep
        x = scheduler.add_noise(image_latent, noise, timesteps[:1])
    for t in timesteps:
        out = model_output(scheduler.scale_model_input(x, t), int(t))
        x = scheduler.step(out, t, x, eta=gamma, generator=gen).prev_sample
    return [int(t) for t in timesteps], x, noise


def to_sigma_space(x_ddpm: torch.Tensor, scheduler: TCDScheduler, t: int) -> torch.Tensor:
    return x_ddpm / scheduler.alphas_cumprod[t].sqrt()


def rel_max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())
