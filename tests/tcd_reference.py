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


def flow_reference_loop(sigmas: torch.Tensor, velocity, shape, gamma: float, seed: int,
                        image: torch.Tensor | None = None) -> torch.Tensor:
    """diffusers' FlowMatchEulerDiscreteScheduler over these sigmas (gamma 0: its Euler step; gamma 1: its
    ``stochastic_sampling`` step). One CPU generator seeded with ``seed`` draws the initial latents, then feeds the
    scheduler's ``randn_like`` noise (it takes no generator). ``velocity(x, sigma)`` is the model's raw output."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    assert gamma in (0.0, 1.0), "diffusers has flow steps for gamma 0 and 1 only"
    sch = FlowMatchEulerDiscreteScheduler(shift=1.0, stochastic_sampling=gamma == 1.0)
    sch.set_timesteps(sigmas=sigmas[:-1].tolist())
    assert torch.allclose(sch.sigmas, sigmas.float()), (sch.sigmas, sigmas)
    gen = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn(tuple(shape), generator=gen)
    s0 = sch.sigmas[0]
    x = s0 * noise if image is None else sch.scale_noise(image, sch.timesteps[:1], noise)
    saved = torch.get_rng_state()
    try:
        for t in sch.timesteps:
            sigma = sch.sigmas[sch.index_for_timestep(t)]
            torch.set_rng_state(gen.get_state())  # randn_like(sample) takes the stream's next draw
            x = sch.step(velocity(x, sigma), t, x).prev_sample
            gen.set_state(torch.get_rng_state())
    finally:
        torch.set_rng_state(saved)
    return x


def flow_equations_reference(sigmas: torch.Tensor, velocity, shape, gammas, seed: int,
                             image: torch.Tensor | None = None) -> torch.Tensor:
    """The flow TCD step written again in float64 from the formulas (any gamma per step), with the same noise stream:
    eps = (x - (1-s_t) x0) / s_t; s' = (1-g) s_next; x' = (1-s') x0 + s' eps;
    x_next = (1-s_next)/(1-s') x' + sqrt(s_next^2 - ((1-s_next) s'/(1-s'))^2) z (no z when s_next = 0)."""
    gen = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn(tuple(shape), generator=gen).double()
    s = sigmas.double()
    x = s[0] * noise if image is None else s[0] * noise + (1 - s[0]) * image.double()
    for i in range(len(s) - 1):
        st, sn, g = s[i], s[i + 1], gammas[i]
        x0 = x - st * velocity(x, st).double()
        eps = (x - (1 - st) * x0) / st
        sp = (1 - g) * sn
        x = (1 - sp) * x0 + sp * eps
        if g > 0 and sn > 0:
            a = (1 - sn) / (1 - sp)
            x = a * x + torch.sqrt(sn ** 2 - (a * sp) ** 2) * torch.randn(tuple(shape), generator=gen).double()
    return x
