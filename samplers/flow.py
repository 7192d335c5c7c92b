"""TCD's strategic stochastic sampling for rectified-flow models (SD3/SD3.5, Flux and other ``CONST`` models).

A flow model's latent at noise level sigma in [0, 1] is ``x_sigma = (1 - sigma) * x0 + sigma * eps``. From the model's
denoised prediction x0_hat at sigma_t, one step to sigma_next is this pack's extension of the paper's Strategic
Stochastic Sampling (SSS) to rectified flow, "flow SSS" below (the paper has no flow form): the DDPM sampler's
jump and re-noise, with gamma scaling the noise level the jump lands on, as TCD's ``s = (1 - gamma) * t_prev`` does
on the DDPM grid:

    eps_hat  = (x_t - (1 - sigma_t) * x0_hat) / sigma_t
    sigma_s  = (1 - gamma) * sigma_next
    x_s      = (1 - sigma_s) * x0_hat + sigma_s * eps_hat                                  (deterministic jump)
    x_next   = (1 - sigma_next) / (1 - sigma_s) * x_s
               + sqrt(sigma_next^2 - ((1 - sigma_next) * sigma_s / (1 - sigma_s))^2) * z   (forward re-noise)

gamma = 0 is exactly a flow-matching Euler step (diffusers' ``FlowMatchEulerDiscreteScheduler``); gamma = 1 is its
``stochastic_sampling`` step, ``x_next = (1 - sigma_next) * x0_hat + sigma_next * z``. No noise after a step that ends
at sigma 0.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from .loop import DEFAULT_GAMMA, run_steps
from .tcd import NUM_TRAIN_TIMESTEPS, ORIGINAL_INFERENCE_STEPS, tcd_timesteps


def flow_predict_noise(x: torch.Tensor, denoised: torch.Tensor, sigma) -> torch.Tensor:
    """eps_hat = (x_t - (1 - sigma_t) * x0_hat) / sigma_t: the noise implied by the denoised prediction."""
    return (x - (1.0 - sigma) * denoised) / sigma


def flow_strategic_sigma(sigma_next, gamma: float):
    """sigma_s = (1 - gamma) * sigma_next: the noise level the jump lands on (flow SSS)."""
    return (1.0 - gamma) * sigma_next


def flow_jump(denoised: torch.Tensor, eps: torch.Tensor, sigma_s) -> torch.Tensor:
    """x_s = (1 - sigma_s) * x0_hat + sigma_s * eps_hat: the deterministic jump along the flow (flow SSS)."""
    return (1.0 - sigma_s) * denoised + sigma_s * eps


def flow_renoise(x_s: torch.Tensor, sigma_s, sigma_next, noise: torch.Tensor) -> torch.Tensor:
    """x_next = (1-s_next)/(1-s') x' + sqrt(s_next^2 - ((1-s_next) s'/(1-s'))^2) z: forward re-noise (flow SSS)."""
    keep = (1.0 - sigma_next) / (1.0 - sigma_s)
    std = (torch.as_tensor(sigma_next) ** 2 - (keep * sigma_s) ** 2).clamp(min=0).sqrt()
    return keep * x_s + std * noise


def flow_tcd_sigmas(sigma_table: torch.Tensor, steps: int, denoise: float = 1.0,
                    original_inference_steps: int = ORIGINAL_INFERENCE_STEPS,
                    timesteps: Optional[list[int]] = None) -> torch.Tensor:
    """The TCD grid (or custom ``timesteps``) as fractions of a flow model's own schedule: timestep t of T = 1000 ->
    sigma_table at (t+1)/T, followed by 0."""
    T = NUM_TRAIN_TIMESTEPS
    ts = timesteps or tcd_timesteps(steps, denoise, original_inference_steps, num_train_timesteps=T)
    table = sigma_table.detach().float().cpu()
    n = len(table)
    return torch.cat([table[[round((t + 1) * n / T) - 1 for t in ts]], table.new_zeros(1)])


def sample_tcd_flow(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                    gamma=DEFAULT_GAMMA, gamma_end=None, first_denoised: Optional[torch.Tensor] = None,
                    on_first_denoised: Optional[Callable[[torch.Tensor], None]] = None):
    """TCD on a rectified-flow model, with the k-diffusion sampler signature (see the module docstring)."""

    def step(x, denoised, i, sigma, sigma_next, gamma_i, draw_noise):
        sigma_next = sigma_next.to(x.dtype)
        sigma_s = flow_strategic_sigma(sigma_next, gamma_i)
        x = flow_jump(denoised, flow_predict_noise(x, denoised, sigma), sigma_s)
        if gamma_i > 0 and float(sigma_next) > 0:
            x = flow_renoise(x, sigma_s, sigma_next, draw_noise())
        return x

    return run_steps(model, x, sigmas, step, extra_args, callback, disable, noise_sampler, gamma, gamma_end,
                     first_denoised, on_first_denoised)
