"""Two experts in one TCD trajectory: Wan 2.2 A14B's high-noise model for the first steps, its low-noise model for
the rest, switched the way diffusers' ``WanPipeline`` switches them.

One grid, one noise stream, one loop; each step is run by the expert its timestep picks:

    expert(t) = high-noise  if t >= boundary_ratio * T   (T = 1000 training timesteps)
                low-noise   otherwise

where t is the step's timestep on the training scale: sigma * T on a flow model (diffusers' flow timesteps), the DDPM
timestep of sigma on a DDPM model. The steps of one expert in a row form a *leg*; each leg is one sampler call
(``loop.Leg``), so only that leg's model is needed while it runs.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .loop import TCDInputError, check_range
from .tcd import NUM_TRAIN_TIMESTEPS, timestep_from_sigma

BOUNDARY_RANGE = (0.0, 1.0)
T2V_BOUNDARY = 0.875  # Wan 2.2 T2V A14B: diffusers' WanPipeline boundary_ratio (its model_index.json)
I2V_BOUNDARY = 0.9  # Wan 2.2 I2V A14B
HIGH, LOW = 0, 1  # the experts, in the order they run
EXPERT_NAMES = ("high-noise", "low-noise")


def check_boundary(boundary, name: str = "boundary") -> Optional[str]:
    """The one boundary rule: None when ``boundary`` is a number in BOUNDARY_RANGE (or None), else a message."""
    note = (f" (a fraction of the {NUM_TRAIN_TIMESTEPS} training timesteps: {T2V_BOUNDARY:g} for Wan 2.2 T2V A14B, "
            f"{I2V_BOUNDARY:g} for I2V; 0 runs every step on the high-noise model)")
    return check_range(boundary, *BOUNDARY_RANGE, name, note=note)


def step_timesteps(sigmas: torch.Tensor, sigma_table: Optional[torch.Tensor] = None) -> list[float]:
    """Each step's timestep t on the training scale: sigma * T on a flow model, or the DDPM timestep of sigma when
    ``sigma_table`` (a DDPM model's training sigmas) is given. The last sigma is where the last step ends."""
    steps = [float(s) for s in sigmas[:-1]]
    if sigma_table is None:
        return [s * NUM_TRAIN_TIMESTEPS for s in steps]
    return [float(timestep_from_sigma(s, sigma_table)) for s in steps]


def expert_of_step(t: float, boundary: float) -> int:
    """diffusers' WanPipeline rule: HIGH while t >= boundary_ratio * T, else LOW."""
    return HIGH if t >= boundary * NUM_TRAIN_TIMESTEPS else LOW


def expert_legs(timesteps: Sequence[float], boundary: float) -> list[tuple[int, int, int]]:
    """(expert, first step, stop) of every run of consecutive steps on one expert, in order (two at most on a
    descending grid: the high-noise leg, then the low-noise leg)."""
    msg = check_boundary(boundary)
    if msg:
        raise TCDInputError(msg)
    legs: list[tuple[int, int, int]] = []
    for i, t in enumerate(timesteps):
        e = expert_of_step(t, boundary)
        if legs and legs[-1][0] == e:
            legs[-1] = (e, legs[-1][1], i + 1)
        else:
            legs.append((e, i, i + 1))
    return legs


def describe_legs(legs: Sequence[tuple[int, int, int]], timesteps: Sequence[float], boundary: float) -> str:
    """One line saying which steps each expert runs, with their timesteps, e.g. for the node's text output."""
    n = len(timesteps)
    parts = []
    for e, a, b in legs:
        span = f"step {a + 1}" if b - a == 1 else f"steps {a + 1}-{b}"
        ts = ", ".join(f"{timesteps[i]:.0f}" for i in range(a, b))
        parts.append(f"{span} on the {EXPERT_NAMES[e]} model (timesteps {ts})")
    if not any(e == LOW for e, _, _ in legs):
        parts.append("none on the low-noise model")
    if not any(e == HIGH for e, _, _ in legs):
        parts.insert(0, "none on the high-noise model")
    return (f"{n} TCD steps, boundary {boundary:g} (timestep {boundary * NUM_TRAIN_TIMESTEPS:g}): "
            + "; ".join(parts))
