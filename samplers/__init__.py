"""Pure-torch TCD math (no ComfyUI import): the reference timestep grid, the noise stream, and the strategic
stochastic sampler for DDPM-grid models (``tcd.py``) and rectified-flow models (``flow.py``)."""
from .flow import flow_jump, flow_predict_noise, flow_renoise, flow_strategic_sigma, flow_tcd_sigmas, sample_tcd_flow
from .loop import (
    DEFAULT_GAMMA,
    GAMMA_RANGE,
    TCDInputError,
    check_gamma,
    check_range,
    gamma_schedule,
    range_text,
    run_steps,
)
from .noise import NoiseStream, draw, initial_noise, noise_generator, step_noise_sampler
from .tcd import (
                   MAX_STEPS,
                   NUM_TRAIN_TIMESTEPS,
                   ORIGINAL_INFERENCE_STEPS,
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
    "DEFAULT_GAMMA", "GAMMA_RANGE", "TCDInputError", "check_gamma", "check_range", "gamma_schedule", "range_text",
    "run_steps",
    "NoiseStream", "noise_generator", "draw", "initial_noise", "step_noise_sampler",
    "MAX_STEPS", "NUM_TRAIN_TIMESTEPS", "ORIGINAL_INFERENCE_STEPS", "check_grid", "parse_timesteps", "tcd_timesteps",
    "tcd_sigmas",
    "timestep_from_sigma", "strategic_timestep", "predict_noise", "trajectory_jump", "renoise", "sample_tcd",
    "flow_predict_noise", "flow_strategic_sigma", "flow_jump", "flow_renoise", "flow_tcd_sigmas", "sample_tcd_flow",
]
