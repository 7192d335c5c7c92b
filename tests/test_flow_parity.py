"""samplers/flow.py against diffusers' FlowMatchEulerDiscreteScheduler (gamma 0: its Euler step; gamma 1: its
stochastic_sampling step), same sigmas and the same noise, and against an independent float64 implementation of the
flow TCD equations for 0 < gamma < 1; a Monte-Carlo check of the re-noise (no host)."""
import math

import pytest
import torch

import samplers.flow
import tcd_figures
from samplers import flow_renoise, flow_tcd_sigmas, initial_noise, sample_tcd_flow, tcd_timesteps
from tcd_reference import flow_equations_reference, flow_reference_loop, rel_max_err, simple_tail_sigmas, toy_velocity

SHAPE = (2, 16, 6, 5)
SEED = 77
WORST = {}
NEAR_MISSES = {}
# Relative max error bounds, set from what was measured (2026-12, 2-core CPU; diffusers 0.36.0; torch 2.14.1 and
# 2.11.0): against FlowMatchEulerDiscreteScheduler worst 3.4e-7 at gamma 0 (gamma 1 is bit-identical), against the
# float64 equations worst 1.4e-7. Each bound is about 3x its worst; a jump off by 3e-4 in sigma_s gives 1e-5 .. 1e-3
# (see test_bound_rejects_known_near_misses).
BOUND_DIFFUSERS = 1e-6
BOUND_FLOAT64 = 5e-7


def sd3_table(shift, n=1000):
    """ModelSamplingDiscreteFlow's sigmas: shift * t / (1 + (shift - 1) * t) at t = k/n, k = 1..n."""
    t = torch.arange(1, n + 1, dtype=torch.float64) / n
    return (shift * t / (1 + (shift - 1) * t)).float()


def flux_table(mu, n=10000):
    """ModelSamplingFlux's sigmas: e^mu / (e^mu + (1/t - 1)) at t = k/n, k = 1..n."""
    t = torch.arange(1, n + 1, dtype=torch.float64) / n
    return (math.exp(mu) / (math.exp(mu) + (1 / t - 1))).float()


def denoiser(v):
    """The host's view of the same model (CONST): denoised = x - sigma * v."""
    return lambda x, sigma, **_: x - sigma.view(-1, 1, 1, 1) * v(x, sigma[0])


def start(sigmas, seed, image=None):
    noise = initial_noise(seed, SHAPE)
    s0 = sigmas[0]
    return s0 * noise if image is None else s0 * noise + (1 - s0) * image  # the host's CONST noise_scaling


def test_latents_of_any_rank():
    """A 5-D (video) latent samples exactly as the same values laid out in 4-D."""
    sigmas = flow_tcd_sigmas(TABLES["sd3 shift 3"], 4)
    x5 = start(sigmas, SEED).reshape(2, 16, 3, 2, 5)

    def lin(x, sigma, **_):  # any model acting elementwise
        return 0.5 * x
    out5 = sample_tcd_flow(lin, x5, sigmas, extra_args={"seed": SEED}, gamma=0.4)
    out4 = sample_tcd_flow(lin, x5.reshape(SHAPE), sigmas, extra_args={"seed": SEED}, gamma=0.4)
    assert out5.shape == x5.shape and torch.equal(out5.reshape(SHAPE), out4)


TABLES = {"sd3 shift 3": sd3_table(3.0), "shift 1": sd3_table(1.0), "sd3 shift 6": sd3_table(6.0),
          "flux mu 1.15": flux_table(1.15)}


@pytest.mark.parametrize("table", list(TABLES))
@pytest.mark.parametrize("steps", [1, 2, 4, 8])
@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_matches_flow_match_euler(table, steps, gamma):
    sigmas = flow_tcd_sigmas(TABLES[table], steps)
    v = toy_velocity()
    x = start(sigmas, SEED)
    ref = flow_reference_loop(sigmas, v, SHAPE, gamma, SEED)
    ours = sample_tcd_flow(denoiser(v), x.clone(), sigmas, extra_args={"seed": SEED}, gamma=gamma)
    err = rel_max_err(ours, ref)
    WORST[("diffusers", table, steps, gamma)] = err
    assert err <= BOUND_DIFFUSERS, f"relative max error {err:.3g} (bound {BOUND_DIFFUSERS:g})"


@pytest.mark.parametrize("table", ["sd3 shift 3", "flux mu 1.15"])
@pytest.mark.parametrize("steps", [2, 4, 8])
@pytest.mark.parametrize("gamma,gamma_end", [(0.3, None), (0.5, None), (0.8, None), (0.2, 0.9)])
def test_matches_float64_equations(table, steps, gamma, gamma_end):
    sigmas = flow_tcd_sigmas(TABLES[table], steps)
    v = toy_velocity()
    image = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))
    x = start(sigmas, SEED, image)
    n = len(sigmas) - 1
    gammas = [gamma if gamma_end is None or n == 1 else gamma + (gamma_end - gamma) * i / (n - 1) for i in range(n)]
    ours = sample_tcd_flow(denoiser(v), x.clone(), sigmas, extra_args={"seed": SEED}, gamma=gamma,
                           gamma_end=gamma_end)
    err = rel_max_err(ours, flow_equations_reference(sigmas, v, SHAPE, gammas, SEED, image))
    WORST[("float64", table, steps, gamma, gamma_end)] = err
    assert err <= BOUND_FLOAT64, f"relative max error {err:.3g} (bound {BOUND_FLOAT64:g})"


def near_miss_error(table, steps, gamma, grid=flow_tcd_sigmas):
    """Our sampler over ``grid``'s sigmas against the reference over the TCD grid (diffusers at gamma 0 and 1, the
    float64 equations in between), from pure noise."""
    sigmas = flow_tcd_sigmas(TABLES[table], steps)
    ours_sigmas = grid(TABLES[table], steps)
    v = toy_velocity()
    ours = sample_tcd_flow(denoiser(v), start(ours_sigmas, SEED), ours_sigmas, extra_args={"seed": SEED},
                           gamma=gamma)
    if gamma in (0.0, 1.0):
        return rel_max_err(ours, flow_reference_loop(sigmas, v, SHAPE, gamma, SEED)), BOUND_DIFFUSERS
    return rel_max_err(ours, flow_equations_reference(sigmas, v, SHAPE, [gamma] * steps, SEED)), BOUND_FLOAT64


def test_bound_rejects_known_near_misses(monkeypatch):
    """Each near miss is rejected by the bound the parity tests use:
    - a JettHu-style grid on a flow schedule: the host's 'simple' schedule (every len/steps-th sigma of the model's
      table from the top) instead of TCD's fractions (0.75 for 0.76 at 4 steps);
    - a jump that lands on sigma_s * (1 + 3e-4) in every step, and a re-noise whose noise is 3e-4 too strong (at
      gamma 1 sigma_s is 0, so only the re-noise can be off there): systematic errors of a few 1e-4."""
    for case in [("sd3 shift 3", 4, 0.0), ("flux mu 1.15", 4, 1.0)]:
        NEAR_MISSES[("JettHu-style grid", *case)] = near_miss_error(*case, grid=simple_tail_sigmas)
    jump, renoise = samplers.flow.flow_jump, samplers.flow.flow_renoise
    with monkeypatch.context() as m:
        m.setattr(samplers.flow, "flow_jump", lambda d, e, sigma_s: jump(d, e, sigma_s * (1 + 3e-4)))
        for case in [("sd3 shift 3", 2, 0.0), ("flux mu 1.15", 4, 0.0), ("sd3 shift 3", 4, 0.3),
                     ("flux mu 1.15", 8, 0.8)]:
            NEAR_MISSES[("sigma_s off by 3e-4", *case)] = near_miss_error(*case)
    with monkeypatch.context() as m:
        m.setattr(samplers.flow, "flow_renoise", lambda x, s, sn, z: renoise(x, s, sn, z * (1 + 3e-4)))
        for case in [("sd3 shift 3", 2, 1.0), ("flux mu 1.15", 4, 1.0), ("sd3 shift 3", 4, 0.3)]:
            NEAR_MISSES[("re-noise off by 3e-4", *case)] = near_miss_error(*case)
    accepted = {k: e for k, (e, b) in NEAR_MISSES.items() if e <= b}
    assert not accepted, f"the flow parity bounds accept near misses: {accepted}"


@pytest.mark.parametrize("sigma_next,gamma", [(0.75, 0.3), (0.5, 0.6), (0.2, 0.9)])
def test_renoise_gives_the_marginal_of_sigma_next(sigma_next, gamma):
    """From x_s = (1 - s) x0 + s eps, the re-noise alone gives mean (1 - sigma_next) x0 and std sigma_next."""
    g = torch.Generator().manual_seed(11)
    n, x0 = 100_000, 0.7
    sigma_s = (1 - gamma) * sigma_next
    x_s = (1 - sigma_s) * x0 + sigma_s * torch.randn(n, generator=g, dtype=torch.float64)
    out = flow_renoise(x_s, torch.tensor(sigma_s, dtype=torch.float64), torch.tensor(sigma_next, dtype=torch.float64),
                       torch.randn(n, generator=g, dtype=torch.float64))
    mean, std = float(out.mean()), float(out.std())
    WORST[("monte carlo", sigma_next, gamma)] = (mean, std)
    assert abs(mean - (1 - sigma_next) * x0) <= 0.01 * (1 - sigma_next) * x0
    assert abs(std - sigma_next) <= 0.01 * sigma_next


def test_flow_grid_is_the_tcd_grid_on_the_models_schedule():
    table = TABLES["sd3 shift 3"]
    sig = flow_tcd_sigmas(table, 4)
    assert tcd_timesteps(4) == [999, 759, 499, 259]
    want = [3 * f / (1 + 2 * f) for f in (1.0, 0.76, 0.5, 0.26)] + [0.0]
    assert torch.allclose(sig, torch.tensor(want), atol=1e-6)
    flux = flow_tcd_sigmas(TABLES["flux mu 1.15"], 4)  # a 10000-entry table: the same fractions
    want = [math.exp(1.15) / (math.exp(1.15) + 1 / f - 1) for f in (1.0, 0.76, 0.5, 0.26)] + [0.0]
    assert torch.allclose(flux, torch.tensor(want), atol=1e-6)


@tcd_figures.reporter("FLOW PARITY vs FlowMatchEulerDiscreteScheduler / float64 (tests/test_flow_parity.py)")
def report():
    lines = []
    for kind, b in (("diffusers", BOUND_DIFFUSERS), ("float64", BOUND_FLOAT64)):
        cases = {k: e for k, e in WORST.items() if k[0] == kind}
        for g in sorted({k[3] for k in cases}, key=str):
            worst = max((e, k) for k, e in cases.items() if k[3] == g)
            lines.append(f"vs {kind} (gamma {g}): worst relative max error {worst[0]:.3e} over "
                         f"{sum(1 for k in cases if k[3] == g)} settings (bound {b:g}; worst at {worst[1][1:]})")
    for k, (mean, std) in ((k, v) for k, v in WORST.items() if k[0] == "monte carlo"):
        lines.append(f"re-noise Monte Carlo sigma_next {k[1]} gamma {k[2]}: mean {mean:.5f} (want "
                     f"{(1 - k[1]) * 0.7:.5f}), std {std:.5f} (want {k[1]:.5f})")
    lines += [f"near miss, {k[0]}, at {k[1:]}: {e:.3e} ({'rejected' if e > b else 'ACCEPTED'} by the bound {b:g})"
              for k, (e, b) in NEAR_MISSES.items()]
    return lines
