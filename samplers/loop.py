"""The sampling loop every TCD sampler shares, whatever the noise schedule (DDPM grid or rectified flow).

One model call per step (the first one may be supplied: it does not depend on gamma), a finite check that names the
step, the host's callback, then the schedule's own step function. gamma may move linearly from ``gamma`` at the first
step to ``gamma_end`` at the last. Step noise comes from ``noise_sampler``, by default the pack's own stream seeded
with ``extra_args['seed']`` (``noise.py``), and is drawn only where the step uses it. A ``Leg`` runs only some steps
of the trajectory (one model per leg, e.g. Wan 2.2's two experts), from the latent the leg before it handed over.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from .noise import NoiseStream

try:  # the console progress bar, as the host's samplers draw it (tqdm comes with every host)
    from tqdm.auto import trange
except ImportError:  # pragma: no cover - plain range without tqdm
    def trange(*args, disable=None):
        return range(*args)


class TCDInputError(ValueError):
    """A TCD setting outside what the reference sampler allows (the message names the value and the range)."""


GAMMA_RANGE = (0.0, 1.0)
DEFAULT_GAMMA = 0.3  # the paper's default


def range_text(lo: float, hi: float) -> str:
    """'lo..hi', the way every message and tooltip of the pack writes a range."""
    return f"{lo:g}..{hi:g}"


def check_range(value, lo: float, hi: float, name: str, label: Optional[str] = None, note: str = "") -> Optional[str]:
    """None when ``value`` is a finite number in lo..hi (or None: a linked input), else a message naming the value
    (``label``, by default ``name=value``) and the range."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        return f"{label or f'{name}={value!r}'} is outside the allowed range {range_text(lo, hi)}{note}"
    return None


def check_gamma(gamma, name: str = "gamma", label: Optional[str] = None) -> Optional[str]:
    """The one gamma rule: None when ``gamma`` is a number in GAMMA_RANGE (or None), else a message naming it."""
    return check_range(gamma, *GAMMA_RANGE, name, label, " (0 deterministic, 1 LCM-like)")


def gamma_schedule(gamma: float, gamma_end: Optional[float], steps: int) -> list[float]:
    """gamma of each step: linear from ``gamma`` at the first step to ``gamma_end`` at the last (constant if None)."""
    for name, value in (("gamma", gamma), ("gamma_end", gamma_end)):
        msg = check_gamma(value, name)
        if msg:
            raise TCDInputError(msg)
    if gamma_end is None or steps <= 1:
        return [float(gamma)] * steps
    # (1 - f) * gamma + f * gamma_end hits both ends exactly (no 1e-17 below 0 or above 1), f = i / (steps - 1)
    return [(1 - i / (steps - 1)) * float(gamma) + i / (steps - 1) * float(gamma_end) for i in range(steps)]


class Handover:
    """The latent one leg of a trajectory ends on and the next leg starts from (as the sampler holds it: on its
    device, in the model's own latent space, before any host un-scaling)."""

    def __init__(self):
        self.x: Optional[torch.Tensor] = None
        self.steps_done = 0


@dataclass
class Leg:
    """Steps ``start .. stop - 1`` of one trajectory, run as a sampler call of their own. Every leg gets the whole
    sigma schedule, so step numbers, gamma ramps, callbacks and the host's view of the schedule are those of one run;
    a leg that does not start the trajectory starts from ``handover.x``, not from the host's noised latent."""
    start: int
    stop: int
    handover: Handover = field(default_factory=Handover)

    def steps(self, n: int) -> range:
        """The leg's step indices, checked against a schedule of ``n`` steps and the leg handed over before it."""
        if not 0 <= self.start < self.stop <= n:
            raise TCDInputError(f"leg steps {self.start}..{self.stop - 1} are outside the schedule's 0..{n - 1}")
        if self.start != self.handover.steps_done:
            raise TCDInputError(f"leg starting at step {self.start + 1} follows a leg that ended after step "
                                f"{self.handover.steps_done}")
        return range(self.start, self.stop)


StepFn = Callable[[torch.Tensor, torch.Tensor, int, torch.Tensor, torch.Tensor, float, Callable], torch.Tensor]


@torch.no_grad()
def run_steps(model, x, sigmas, step: StepFn, extra_args=None, callback=None, disable=None, noise_sampler=None,
              gamma=DEFAULT_GAMMA, gamma_end=None, first_denoised: Optional[torch.Tensor] = None,
              on_first_denoised: Optional[Callable[[torch.Tensor], None]] = None,
              where: Callable[[torch.Tensor], str] = lambda sigma: f"sigma {float(sigma):.4g}",
              leg: Optional[Leg] = None):
    """The shared loop: ``step(x, denoised, i, sigma, sigma_next, gamma_i, draw_noise)`` makes each move (every step,
    or the steps of ``leg``)."""
    extra_args = {} if extra_args is None else extra_args
    n = len(sigmas) - 1
    gammas = gamma_schedule(gamma, gamma_end, n)
    steps = range(n) if leg is None else leg.steps(n)
    if steps.start > 0:  # a later leg: carry on from the latent the leg before it ended on
        x = leg.handover.x.to(device=x.device, dtype=x.dtype)
    if noise_sampler is None:  # the seed's stream, whose initial noise someone else drew
        noise_sampler = NoiseStream(extra_args.get("seed")).step_noise_sampler(x)
    s_in = x.new_ones([x.shape[0]])
    for i in trange(steps.start, steps.stop, disable=disable):
        sigma = sigmas[i]
        if i == 0 and first_denoised is not None:
            denoised = first_denoised
        else:
            denoised = model(x, sigma * s_in, **extra_args)
            if i == 0 and on_first_denoised is not None:
                on_first_denoised(denoised)
        if not bool(torch.isfinite(denoised).all()):
            raise FloatingPointError(f"TCD step {i + 1} of {n}: the model returned NaN or inf at {where(sigma)}; "
                                     "refusing to continue with a broken latent")
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        sigma_next = sigmas[i + 1]
        x = step(x, denoised, i, sigma, sigma_next, gammas[i],
                 lambda s=sigma, s_next=sigma_next: noise_sampler(s, s_next))
    if leg is not None:
        leg.handover.x, leg.handover.steps_done = x, steps.stop
    return x
