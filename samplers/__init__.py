"""Pure-torch TCD math (no ComfyUI import): the reference timestep grid, the noise stream, the strategic
stochastic sampler for DDPM-grid models (``tcd.py``) and rectified-flow models (``flow.py``), and two experts in one
trajectory (``experts.py``)."""
from .experts import (
    BOUNDARY_RANGE,
    EXPERT_NAMES,
    HIGH,
    I2V_BOUNDARY,
    LOW,
    T2V_BOUNDARY,
    check_boundary,
    describe_legs,
    expert_legs,
    expert_of_step,
    step_timesteps,
)
from .flow import flow_jump, flow_predict_noise, flow_renoise, flow_strategic_sigma, flow_tcd_sigmas, sample_tcd_flow
from .loop import (
    DEFAULT_GAMMA,
    GAMMA_RANGE,
    Handover,
    Leg,
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
    "run_steps", "Handover", "Leg",
    "NoiseStream", "noise_generator", "draw", "initial_noise", "step_noise_sampler",
    "MAX_STEPS", "NUM_TRAIN_TIMESTEPS", "ORIGINAL_INFERENCE_STEPS", "check_grid", "parse_timesteps", "tcd_timesteps",
    "tcd_sigmas",
    "timestep_from_sigma", "strategic_timestep", "predict_noise", "trajectory_jump", "renoise", "sample_tcd",
    "BOUNDARY_RANGE", "T2V_BOUNDARY", "I2V_BOUNDARY", "HIGH", "LOW", "EXPERT_NAMES", "check_boundary",
    "step_timesteps", "expert_of_step", "expert_legs", "describe_legs",
    "flow_predict_noise", "flow_strategic_sigma", "flow_jump", "flow_renoise", "flow_tcd_sigmas", "sample_tcd_flow",
]
