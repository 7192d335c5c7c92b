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


def reference_loop(scheduler: TCDScheduler, eps_model, init_noise: torch.Tensor, steps: int, gamma: float,
                   seed: int, strength: float = 1.0, image_latent: torch.Tensor | None = None):
    """Run diffusers' TCD loop; returns (timesteps, final DDPM-space sample)."""
    scheduler.set_timesteps(steps, strength=strength)
    timesteps = scheduler.timesteps
    if image_latent is None:
        x = init_noise * scheduler.init_noise_sigma
    else:
        x = scheduler.add_noise(image_latent, init_noise, timesteps[:1])
    gen = torch.Generator().manual_seed(seed)
    for t in timesteps:
        out = eps_model(scheduler.scale_model_input(x, t), int(t))
        x = scheduler.step(out, t, x, eta=gamma, generator=gen).prev_sample
    return [int(t) for t in timesteps], x


def to_sigma_space(x_ddpm: torch.Tensor, scheduler: TCDScheduler, t: int) -> torch.Tensor:
    return x_ddpm / scheduler.alphas_cumprod[t].sqrt()


def rel_max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())
