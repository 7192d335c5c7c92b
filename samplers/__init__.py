"""Pure-torch TCD math (no ComfyUI import): the reference timestep grid, the noise stream, and the strategic
stochastic sampler for DDPM-grid models (``tcd.py``) and rectified-flow models (``flow.py``)."""
from .flow import flow_jump, flow_predict_noise, flow_renoise, flow_strategic_sigma, flow_tcd_sigmas, sample_tcd_flow
from .loop import GAMMA_RANGE, TCDInputError, check_gamma, gamma_schedule, run_steps
from .noise import draw, initial_noise, noise_generator, step_noise_sampler
from .tcd import (
                   MAX_STEPS,
                   NUM_TRAIN_TIMESTEPS,
                   check_grid,
                   parse_timesteps,
                   predict_noise,
                   renoise,
                   sample_tcd,
                   strategic_timestep,
                   tcd_sigmas,
                   tcd_timesteps,
                   timestep_from_sigma,
                   trajectory_jump,
)

__all__ = [
    "GAMMA_RANGE", "TCDInputError", "check_gamma", "gamma_schedule", "run_steps",
    "noise_generator", "draw", "initial_noise", "step_noise_sampler",
    "MAX_STEPS", "NUM_TRAIN_TIMESTEPS", "check_grid", "parse_timesteps", "tcd_timesteps", "tcd_sigmas",
    "timestep_from_sigma", "strategic_timestep", "predict_noise", "trajectory_jump", "renoise", "sample_tcd",
    "flow_predict_noise", "flow_strategic_sigma", "flow_jump", "flow_renoise", "flow_tcd_sigmas", "sample_tcd_flow",
]
