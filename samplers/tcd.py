"""Trajectory Consistency Distillation sampling (Zheng et al., arXiv 2402.19159), written in sigma space.

Notation. The model was trained on a discrete DDPM schedule of ``T = 1000`` timesteps with cumulative
products ``alpha_bar_t``.  ComfyUI works in "sigma space": ``sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)``
and the latent ``x = x_ddpm / sqrt(alpha_bar_t)``, so that ``x = x0 + sigma_t * eps``.  In that space the
paper's Strategic Stochastic Sampling (SSS, the paper's section of that name) becomes

    eps_hat   = (x_t - x0_hat) / sigma_t                      (noise implied by the model's x0 prediction)
    x_s       = x0_hat + sigma_s * eps_hat,  s = floor((1 - gamma) * t_prev)   (SSS: deterministic jump)
    x_t_prev  = x_s + sqrt(sigma_t_prev^2 - sigma_s^2) * z,    z ~ N(0, I)      (SSS: forward re-noising)

which is algebraically identical to the reference ``TCDScheduler.step`` in DDPM space.  The functions here take
the training sigmas (``sigma_table[t]`` for t = 0..T-1) as an argument; they never import the host.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from .loop import DEFAULT_GAMMA, TCDInputError, run_steps

NUM_TRAIN_TIMESTEPS = 1000  # T, the training schedule's timesteps
ORIGINAL_INFERENCE_STEPS = 50  # the distillation grid of the published TCD LoRAs (timesteps 19, 39, ..., 999)

MAX_STEPS = NUM_TRAIN_TIMESTEPS  # the training grid has 1000 timesteps; the reference grid never holds more


def _int_in(value, lo, hi) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def check_grid(steps, denoise=1.0, original_inference_steps=ORIGINAL_INFERENCE_STEPS,
               num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> Optional[str]:
    """None when the TCD grid holds ``steps`` at this denoise, else a message naming the value and the allowed range
    (the one rule for TCD Sampler, TCD Scheduler, the sweep and ``tcd_timesteps``; None skips a linked input)."""
    if steps is not None and not _int_in(steps, 1, MAX_STEPS):
        return f"steps={steps!r} is outside the allowed range 1..{MAX_STEPS}"
    if original_inference_steps is not None and not _int_in(original_inference_steps, 1, num_train_timesteps):
        return (f"original_inference_steps={original_inference_steps!r} is outside the allowed range "
                f"1..{num_train_timesteps}")
    if denoise is not None and not (isinstance(denoise, (int, float)) and not isinstance(denoise, bool)
                                    and math.isfinite(denoise) and 0.0 < denoise <= 1.0):
        return f"denoise={denoise!r} is outside the allowed range: greater than 0 and at most 1 (0 would not sample)"
    if None in (steps, denoise, original_inference_steps):
        return None
    grid_len = int(original_inference_steps * denoise)
    if steps > grid_len:
        return (f"steps={steps} is more than the TCD grid holds: original_inference_steps {original_inference_steps} "
                f"x denoise {denoise:g} leaves {grid_len} timesteps, so steps must be 1..{grid_len}"
                + (" (raise denoise or original_inference_steps, or lower steps)" if grid_len >= 1 else
                   f" (denoise {denoise:g} is too small for a grid of {original_inference_steps}; raise it)"))
    return None


def tcd_timesteps(steps: int, denoise: float = 1.0, original_inference_steps: int = ORIGINAL_INFERENCE_STEPS,
                  num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> list[int]:
    """The reference TCD timestep grid (diffusers ``TCDScheduler.set_timesteps``, with the paper's skipping step k).

    The distillation grid is ``k*i - 1`` for ``i = 1 .. int(original_inference_steps * denoise)`` with skipping step
    ``k = num_train_timesteps // original_inference_steps``; ``steps`` indices are taken evenly from it, high to low.
    """
    msg = check_grid(steps, denoise, original_inference_steps, num_train_timesteps)
    if msg:
        raise TCDInputError(msg)
    k = num_train_timesteps // original_inference_steps
    grid_len = int(original_inference_steps * denoise)
    origin = [k * i - 1 for i in range(1, grid_len + 1)][::-1]
    # np.linspace(0, n, steps, endpoint=False) is j * (n / steps) in float64; floor it the same way.
    idx = [math.floor(j * (grid_len / steps)) for j in range(steps)]
    return [origin[i] for i in idx]


def parse_timesteps(text, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> Optional[list[int]]:
    """Custom timesteps ('999, 749, 499, 249'; diffusers ``set_timesteps(timesteps=...)``): strictly descending
    integers in 0..T-1, used in order; None for empty text (the usual grid). TCDInputError names a bad value."""
    if text is None or not str(text).strip():
        return None
    rule = (f"write strictly descending whole numbers below {num_train_timesteps}, separated by commas, "
            "e.g. '999, 749, 499, 249'")
    items = [p.strip() for p in str(text).split(",")]
    if any(not p for p in items):
        raise TCDInputError(f"timesteps={text!r} has an empty item: {rule}")
    out = []
    for p in items:
        try:
            t = int(p)
        except ValueError:
            raise TCDInputError(f"timesteps: {p!r} is not a whole number: {rule}") from None
        if not 0 <= t < num_train_timesteps:
            raise TCDInputError(f"timesteps: {t} is outside the allowed range 0..{num_train_timesteps - 1}: {rule}")
        if out and t >= out[-1]:
            raise TCDInputError(f"timesteps: {t} after {out[-1]} is not descending: {rule}")
        out.append(t)
    return out


def tcd_sigmas(sigma_table: torch.Tensor, steps: int, denoise: float = 1.0,
               original_inference_steps: int = ORIGINAL_INFERENCE_STEPS,
               timesteps: Optional[list[int]] = None) -> torch.Tensor:
    """Sigmas of the reference TCD grid (or of custom ``timesteps``), ``sigma_table[t]`` for each, followed by 0."""
    ts = timesteps or tcd_timesteps(steps, denoise, original_inference_steps, num_train_timesteps=len(sigma_table))
    table = sigma_table.detach().float().cpu()
    return torch.cat([table[ts], table.new_zeros(1)])


def timestep_from_sigma(sigma: float, sigma_table: torch.Tensor) -> int:
    """The integer training timestep whose sigma is nearest (in log space) to ``sigma``; 0 at or below the first."""
    table = sigma_table.detach().float().cpu()
    sigma = float(sigma)
    if sigma <= float(table[0]):
        return 0
    return int(torch.argmin((table.log() - math.log(sigma)).abs()).item())


def strategic_timestep(t_prev: int, gamma: float) -> int:
    """s = floor((1 - gamma) * t_prev), the intermediate timestep (paper: SSS).

    Evaluated in float32 like the reference (an integer tensor times a Python float), so ties round identically.
    """
    return int(torch.floor(torch.tensor(int(t_prev)) * (1.0 - float(gamma))).item())


def predict_noise(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """eps_hat = (x_t - x0_hat) / sigma_t: the noise implied by the denoised prediction (x_t = x0 + sigma_t eps)."""
    return (x - denoised) / sigma


def trajectory_jump(denoised: torch.Tensor, eps: torch.Tensor, sigma_s: torch.Tensor) -> torch.Tensor:
    """x_s = x0_hat + sigma_s * eps_hat: the deterministic jump along the PF-ODE to time s (paper: SSS)."""
    return denoised + eps * sigma_s


def renoise(x_s: torch.Tensor, sigma_s: torch.Tensor, sigma_prev: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t_prev = x_s + sqrt(sigma_prev^2 - sigma_s^2) * z: forward diffusion from s up to t_prev (paper: SSS)."""
    return x_s + noise * (sigma_prev ** 2 - sigma_s ** 2).clamp(min=0).sqrt()


def sample_tcd(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
               gamma=DEFAULT_GAMMA, gamma_end=None, sigma_table: Optional[torch.Tensor] = None,
               first_denoised: Optional[torch.Tensor] = None,
               on_first_denoised: Optional[Callable[[torch.Tensor], None]] = None):
    """Strategic Stochastic Sampling (paper: SSS) with the k-diffusion sampler signature.

    ``model(x, sigma, **extra_args)`` returns the denoised prediction x0_hat.  ``sigma_table`` (required) holds the
    training sigmas, sigma of timestep 0..T-1. Per-step noise: one draw per step while that step's gamma > 0, none
    after the last step (see ``loop.run_steps`` for the noise stream, ``gamma_end`` and the first-step options).
    """
    if sigma_table is None:
        raise TCDInputError("sample_tcd needs sigma_table, the model's training sigmas for timesteps 0..T-1")
    table = sigma_table.detach().to(device=x.device, dtype=torch.float32)
    table_cpu = table.cpu()  # integer-timestep lookups happen on the CPU, once per step
    n = len(sigmas) - 1

    def step(x, denoised, i, sigma, sigma_next_t, gamma_i, draw_noise):
        sigma_next = float(sigma_next_t)
        t_prev = timestep_from_sigma(sigma_next, table_cpu)  # exact integer; 0 for the final target (sigma of t=0)
        sigma_prev = table[t_prev] if sigma_next <= float(table_cpu[0]) else sigma_next_t.to(table)
        s = strategic_timestep(t_prev, gamma_i)
        sigma_s = sigma_prev if s == t_prev else torch.minimum(table[s], sigma_prev)
        x = trajectory_jump(denoised, predict_noise(x, denoised, sigma), sigma_s)
        if gamma_i > 0 and not (i == n - 1 and sigma_next <= float(table_cpu[0])):
            x = renoise(x, sigma_s, sigma_prev, draw_noise())
        return x

    return run_steps(model, x, sigmas, step, extra_args, callback, disable, noise_sampler, gamma, gamma_end,
                     first_denoised, on_first_denoised,
                     where=lambda sigma: f"sigma {float(sigma):.4g} (timestep {timestep_from_sigma(sigma, table_cpu)})")
