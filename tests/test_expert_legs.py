"""The two-expert rule and the legs of one trajectory, without the host (samplers/experts.py, loop.Leg): the model of
each step by diffusers' WanPipeline rule, and a trajectory run in legs equal, bit for bit, to the same run in one
call, on both of TCD's samplers."""
import math

import pytest
import torch

from samplers import (
    HIGH,
    LOW,
    Handover,
    Leg,
    NoiseStream,
    TCDInputError,
    check_boundary,
    describe_legs,
    expert_legs,
    flow_tcd_sigmas,
    sample_tcd,
    sample_tcd_flow,
    step_timesteps,
    tcd_sigmas,
)


@pytest.mark.parametrize("timesteps,boundary,legs", [
    ([1000, 940.6, 833.3, 637.3], 0.875, [(HIGH, 0, 2), (LOW, 2, 4)]),
    ([1000, 940.6, 833.3, 637.3], 0.0, [(HIGH, 0, 4)]),
    ([1000, 940.6, 833.3, 637.3], 1.0, [(HIGH, 0, 1), (LOW, 1, 4)]),
    ([800, 600], 0.875, [(LOW, 0, 2)]),  # img2img below the boundary: the low-noise model only, as diffusers
    ([900, 875, 874.9], 0.875, [(HIGH, 0, 2), (LOW, 2, 3)]),  # t == boundary x 1000 is the high-noise model's
    ([900, 700, 900], 0.875, [(HIGH, 0, 1), (LOW, 1, 2), (HIGH, 2, 3)]),  # a custom grid that climbs back
])
def test_expert_legs_follow_diffusers_rule(timesteps, boundary, legs):
    assert expert_legs(timesteps, boundary) == legs


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, math.inf, "0.9", True])
def test_a_bad_boundary_is_named_with_the_range(bad):
    assert check_boundary(bad).startswith(f"boundary={bad!r} is outside the allowed range 0..1")
    with pytest.raises(TCDInputError, match="allowed range 0..1"):
        expert_legs([1000, 500], bad)


def test_step_timesteps_and_the_report():
    sigmas = torch.tensor([1.0, 0.9406, 0.8333, 0.6373, 0.0])
    times = step_timesteps(sigmas)
    assert times == pytest.approx([1000.0, 940.6, 833.3, 637.3], abs=1e-3)
    assert describe_legs(expert_legs(times, 0.875), times, 0.875) == (
        "4 TCD steps, boundary 0.875 (timestep 875): steps 1-2 on the high-noise model (timesteps 1000, 941); "
        "steps 3-4 on the low-noise model (timesteps 833, 637)")
    assert describe_legs([(LOW, 0, 1)], [600.0], 0.875).endswith(
        "none on the high-noise model; step 1 on the low-noise model (timesteps 600)")
    table = torch.linspace(0.03, 14.6, 1000)  # a DDPM table: the timestep of each sigma is its index
    assert step_timesteps(torch.cat([table[[999, 759, 499]], torch.zeros(1)]), table) == [999.0, 759.0, 499.0]


def toy_denoisers(channels=4):
    """Two fixed, different x0 predictions of order one, seen the host's way: model(x, sigma) -> x0_hat."""
    def make(seed):
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(channels, channels, generator=g) * 0.5
        return lambda x, sigma, **_: torch.tanh(torch.einsum("oc,bchw->bohw", w, x)) * (1 + sigma.view(-1, 1, 1, 1))
    return make(1), make(2)


def by_step(models, legs):
    """One model that switches by step, as the reference: the expert whose leg holds the step of this sigma."""
    def model(x, sigma, sigmas, **kw):
        i = int((sigmas[:-1] - sigma[0]).abs().argmin())
        e = next(e for e, a, b in legs if a <= i < b)
        return models[e](x, sigma, **kw)
    return model


@pytest.mark.parametrize("kind", ["flow", "ddpm"])
@pytest.mark.parametrize("gamma,boundary", [(0.3, 0.875), (1.0, 0.875), (0.3, 1.0), (0.0, 0.5)])
def test_legs_are_one_trajectory(kind, gamma, boundary):
    table = ((1 - torch.linspace(0.9991, 0.0047, 1000)) / torch.linspace(0.9991, 0.0047, 1000)).sqrt()
    if kind == "flow":
        shift = 5.0
        flow = torch.arange(1, 1001) / 1000
        sigmas = flow_tcd_sigmas(shift * flow / (1 + (shift - 1) * flow), 4)
        sampler, extra, times = sample_tcd_flow, {}, step_timesteps(sigmas)
    else:
        sigmas = tcd_sigmas(table, 4)
        sampler, extra, times = sample_tcd, {"sigma_table": table}, step_timesteps(sigmas, table)
    legs = expert_legs(times, boundary)
    models = toy_denoisers()
    shape = (1, 4, 6, 6)

    def run(whole):
        stream = NoiseStream(7)
        x = stream.initial_noise(shape) * sigmas[0]
        if whole:
            model = by_step(models, legs)
            return sampler(lambda xx, s: model(xx, s, sigmas), x, sigmas, noise_sampler=stream.step_noise_sampler(x),
                           gamma=gamma, **extra)
        handover = Handover()
        for e, a, b in legs:
            out = sampler(models[e], x, sigmas, noise_sampler=stream.step_noise_sampler(x), gamma=gamma,
                          leg=Leg(a, b, handover), **extra)
        return out

    assert torch.equal(run(False), run(True))


def test_a_leg_must_follow_the_leg_before():
    sigmas = torch.tensor([1.0, 0.5, 0.0])
    x = torch.zeros(1, 4, 2, 2)
    with pytest.raises(TCDInputError, match="follows a leg that ended after step 0"):
        sample_tcd_flow(lambda xx, s: xx, x, sigmas, gamma=0.0, leg=Leg(1, 2, Handover()))
    with pytest.raises(TCDInputError, match="outside the schedule"):
        sample_tcd_flow(lambda xx, s: xx, x, sigmas, gamma=0.0, leg=Leg(0, 3, Handover()))
