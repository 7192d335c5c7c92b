"""TCD on rectified-flow models through the real host: small SD3-shaped and Flux-shaped models (seeded weights, the
real key names, loaded by the host's UNETLoader) and the small SDXL model given the host's SD3 sampling
(ModelSamplingSD3). Every entry point gives the same latent, and it matches diffusers' FlowMatchEulerDiscreteScheduler
driving the same host model at gamma 0 and 1 (the float64 flow equations in between), same noise stream."""
import pytest
import torch

import tcd_figures
from tcd_prompts import (
    SEED,
    base_graph,
    custom_advanced_nodes,
    custom_nodes,
    flow_graph,
    gamma_sweep,
    stock_ksampler,
    tcd_ksampler,
)
from tcd_reference import flow_host_reference, rel_max_err

pytestmark = pytest.mark.host
RESULTS = {}
GAMMA_GAPS = {}
# Relative max error bound, set from what was measured (2026-12, 2-core CPU, diffusers 0.36.0): worst 3.6e-7 at gamma
# 0, 9.3e-7 at gamma 1, 2.9e-7 at gamma 0.3, the same on ComfyUI v0.3.75 (torch 2.14.1) and v0.33.0 (torch 2.11.0).
# The bound is about 3x the worst; a jump off by 3e-4 in sigma_s fails it (1e-4 and more at gamma 0 and 0.3).
BOUND = 3e-6


def graph(host, family):
    if family == "sdxl+ModelSamplingSD3":  # the case: a model given the host's SD3 sampling
        g = base_graph(host.checkpoint(0))
        g["flow"] = {"class_type": "ModelSamplingSD3", "inputs": {"model": ["ckpt", 0], "shift": 3.0}}
        return g, ("flow", 0)
    return flow_graph(host.flow_model(family)), ("ckpt", 0)


FAMILIES = ["sd3", "flux", "sdxl+ModelSamplingSD3"]
CASES = [(0.0, 4, 1.0), (1.0, 4, 1.0), (0.3, 4, 1.0), (1.0, 3, 2.5)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("gamma,steps,cfg", CASES)
def test_entry_points_agree_and_match_the_reference(host, family, gamma, steps, cfg):
    g, model = graph(host, family)
    ours = {
        "TCDKSampler": host.run_latent({**g, "ks": tcd_ksampler(gamma, steps, cfg, model=model)}, ["ks", 0]),
        "SamplerCustom+TCDSampler+TCDSigmas": host.run_latent(
            {**g, **custom_nodes(gamma, steps, cfg, model=model)}, ["sample", 0]),
        "SamplerCustomAdvanced": host.run_latent(
            {**g, **custom_advanced_nodes(gamma, steps, cfg, model=model)}, ["sample", 0]),
    }
    if gamma == 0.3:  # the stock sampler 'tcd' runs at its default gamma 0.3
        ours["KSampler tcd/tcd"] = host.run_latent({**g, "ks": stock_ksampler(steps, cfg, model=model)}, ["ks", 0])
    first = ours["TCDKSampler"]
    assert torch.isfinite(first).all() and first.abs().max() > 0.1
    for path, lat in ours.items():
        assert torch.equal(lat, first), f"{family}: {path} differs from TCDKSampler"
    ref_graph = {**g, "sigmas": custom_nodes(gamma, steps, cfg, model=model)["sigmas"]}
    ref = flow_host_reference(host, ref_graph, model, gamma, steps, cfg, SEED)
    err = rel_max_err(first, ref)
    RESULTS[(family, gamma, steps, cfg)] = err
    assert err <= BOUND, f"{family} gamma {gamma}: relative max error {err:.3g} against the reference (bound {BOUND:g})"


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_gamma_sweep_on_a_flow_model_equals_single_runs(host, family, monkeypatch):
    """The sweep (one shared first model call) equals single TCD Sampler runs that each make their own first call:
    the first-step cache is off for the whole test, so neither side can take the other's (or an earlier test's) first
    evaluation. And gamma matters: the three results differ."""
    monkeypatch.setenv("TCD_FIRST_STEP_CACHE", "0")
    g, model = graph(host, family)
    gammas = (0.0, 0.5, 1.0)
    swept = host.run_latent({**g, "sw": gamma_sweep("0, 0.5, 1", 4, 1.0, model=model)}, ["sw", 0])
    assert swept.shape[0] == len(gammas)
    for i, gamma in enumerate(gammas):
        single = host.run_latent({**g, "ks": tcd_ksampler(gamma, 4, 1.0, model=model)}, ["ks", 0])
        assert torch.equal(swept[i:i + 1], single), f"{family}: sweep result {i} (gamma {gamma}) differs"
    for i in range(len(gammas)):
        for j in range(i + 1, len(gammas)):
            gap = rel_max_err(swept[i], swept[j])
            GAMMA_GAPS[(family, gammas[i], gammas[j])] = gap
            assert gap > 1e-2, f"{family}: gamma {gammas[i]} and {gammas[j]} give nearly the same latent ({gap:.2g})"


def test_flow_tcd_grid_follows_the_models_shift(host):
    g, model = graph(host, "sd3")
    (sig,) = host.run_nodes({**g, "sigmas": custom_nodes(0.3, 4, 1.0, model=model)["sigmas"]}, [("sigmas", 0)])
    want = [3 * f / (1 + 2 * f) for f in (1.0, 0.76, 0.5, 0.26)] + [0.0]  # SD3: shift 3 on fractions of 999..259
    assert torch.allclose(sig, torch.tensor(want), atol=1e-6), sig


@tcd_figures.reporter("FLOW HOST PARITY vs FlowMatchEulerDiscreteScheduler / float64 (tests/test_flow_host.py)")
def report():
    from tcd_host import host_version
    lines = []
    for gamma in sorted({k[1] for k in RESULTS}):
        worst = max((e, k) for k, e in RESULTS.items() if k[1] == gamma)
        lines.append(f"ComfyUI {host_version()} at gamma {gamma:g}: worst relative max error {worst[0]:.3e} over "
                     f"{sum(1 for k in RESULTS if k[1] == gamma)} settings (bound {BOUND:g}; worst: {worst[1]})")
    if GAMMA_GAPS:
        lines.append("gamma sweep, smallest difference between two gammas' latents: "
                     f"{min(GAMMA_GAPS.values()):.3e} (relative max)")
    return lines
