"""Pure-torch TCD math (no ComfyUI import): the reference timestep grid and the strategic stochastic sampler."""
from .noise import draw, initial_noise, noise_generator, step_noise_sampler
from .tcd import (
    TCDInputError,
    tcd_timesteps,
    tcd_sigmas,
    timestep_from_sigma,
    strategic_timestep,
    predict_noise,
    trajectory_jump,
    renoise,
    sample_tcd,
)

__all__ = [
    "noise_generator",
    "draw",
    "initial_noise",
    "step_noise_sampler",
    "TCDInputError",
    "tcd_timesteps",
    "tcd_sigmas",
    "timestep_from_sigma",
    "strategic_timestep",
    "predict_noise",
    "trajectory_jump",
    "renoise",
    "sample_tcd",
]
