"""TCD Sampler (two experts) through the real host: Wan 2.2 A14B's two experts in one TCD trajectory.

The experts are two small Wan-shaped models of one layout with different seeded weights (the host detects each as
WAN21_T2V, the class of each A14B T2V expert), loaded by the host's UNETLoader and given ModelSamplingSD3 shift 5 as
the host's Wan 2.2 14B Lightning template does, sampled on the host's 5-D video latent.

- The same model twice is TCD Sampler, bit for bit, wherever the boundary falls (on a DDPM model and with a per-frame
  noise mask too).
- Two models match a reference loop that picks the model at each step by diffusers' WanPipeline rule (timestep
  sigma x 1000 >= boundary x 1000: the high-noise model), each evaluation through the host's own guider: the float64
  flow equations at every gamma, diffusers' FlowMatchEulerDiscreteScheduler at gamma 0 and 1, cfg per expert.
- One model after the other: every high-noise call before every low-noise call, each host load holding one expert;
  a gamma-only change reuses the first call.
- The host's own split (two KSamplerAdvanced with sampler 'tcd', the second with add_noise off and seed 0) is not one
  trajectory: its second stage's step noise is seed 0's. It matches the reference loop given that noise, and differs
  from the one-trajectory run by far more.
- A bad boundary is refused at validation, naming the value and the range; experts that sample differently at run.
"""
import math

import pytest
import torch

import tcd_figures
import tcd_prompts as prompts
from tcd_host import PromptFailed
from tcd_prompts import LATENT, NEG, POS, SEED
from tcd_reference import flow_equations_reference, flow_reference_loop, rel_max_err

pytestmark = pytest.mark.host

STEPS = 4
SHIFT = 5.0  # ModelSamplingSD3 of the host's Wan 2.2 14B template with the lightx2v LoRAs
HIGH, LOW = ("ms_high", 0), ("ms_low", 0)
# TCD's 4-step grid (timesteps 999, 759, 499, 259) on shift 5: sigma 1, 0.9406, 0.8333, 0.6373. Each boundary's split,
# (steps on the high-noise model, steps on the low-noise model), worked out from those sigmas by hand.
SPLITS = {0.0: (4, 0), 0.7: (3, 1), 0.875: (2, 2), 1.0: (1, 3)}
BOUND = 9e-7  # relative max error against the references: about 3x the worst measured (see report)
ERRORS = {}  # (case, reference) -> relative max error
FIGURES = {}


def graph(host):
    """The two small Wan experts (seeds 0 and 1) through ModelSamplingSD3, test conditioning, an empty video latent."""
    import tcd_test_models
    g = prompts.video_flow_graph(host.flow_model("wan2.1", 0), tcd_test_models.WAN_TEXT_DIM)
    g["low"] = {"class_type": "UNETLoader", "inputs": {"unet_name": host.flow_model("wan2.1", 1),
                                                       "weight_dtype": "default"}}
    for key, src in (("ms_high", "ckpt"), ("ms_low", "low")):
        g[key] = {"class_type": "ModelSamplingSD3", "inputs": {"model": [src, 0], "shift": SHIFT}}
    return g


def two_experts(gamma, boundary, cfgs=(1.0, 1.0), high=HIGH, low=LOW, latent=LATENT, seed=SEED):
    return {"class_type": "TCDTwoExpertSampler", "inputs": {
        "high_noise_model": list(high), "low_noise_model": list(low), "seed": seed, "steps": STEPS,
        "cfg_high_noise": cfgs[0], "cfg_low_noise": cfgs[1], "gamma": gamma, "boundary": boundary, "scheduler": "tcd",
        "positive": list(POS), "negative": list(NEG), "latent_image": list(latent), "denoise": 1.0}}


@pytest.fixture(scope="module")
def g(host):
    return graph(host)


def run(host, g, node):
    return host.run_latent({**g, "x": node}, ["x", 0])


# -- the same model twice is TCD Sampler ----------------------------------------------------------------------------
@pytest.mark.parametrize("gamma,boundary", [(0.3, 0.0), (0.3, 0.875), (0.3, 1.0), (0.0, 0.875), (1.0, 0.875)])
def test_the_same_model_twice_is_tcd_sampler_bit_for_bit(host, g, gamma, boundary):
    one = run(host, g, prompts.tcd_ksampler(gamma, STEPS, 1.0, model=HIGH))
    two = run(host, g, two_experts(gamma, boundary, high=HIGH, low=HIGH))
    assert one.ndim == 5 and torch.isfinite(one).all() and one.abs().max() > 0.1
    assert torch.equal(two, one), f"gamma {gamma} boundary {boundary}: {rel_max_err(two, one):.3g}"
    FIGURES.setdefault("same", []).append((gamma, boundary))


def test_the_same_model_twice_with_a_noise_mask_and_on_a_ddpm_model(host, g):
    """With a noise mask (hard and soft), the legs are one run: every leg blends the same kept latent with the same
    initial noise, and the leg after hands over the trajectory's own latent; a DDPM model's grid ends on sigma(t=0)."""
    high, pos, neg, empty = host.run_nodes(g, [HIGH, POS, NEG, LATENT])
    shape = run(host, g, prompts.tcd_ksampler(0.3, STEPS, 1.0, model=HIGH)).shape
    mask = torch.ones(shape[0], 1, *shape[2:])
    mask[:, :, 0] = 0.0
    mask[:, :, 1, :, : shape[-1] // 2] = 0.5
    latent = {**empty, "samples": torch.randn(shape, generator=torch.Generator().manual_seed(5)), "noise_mask": mask}
    common = dict(seed=SEED, steps=STEPS, gamma=0.3, scheduler="tcd", positive=pos, negative=neg,
                  latent_image=latent, denoise=1.0)
    one = host.call("TCDKSampler", model=high, cfg=1.0, **common)[0]["samples"]
    two = host.call("TCDTwoExpertSampler", high_noise_model=high, low_noise_model=high, cfg_high_noise=1.0,
                    cfg_low_noise=1.0, boundary=0.875, **common)[0]["samples"]
    assert torch.equal(two, one)
    sdxl = prompts.base_graph(host.checkpoint(0))
    model, pos, neg, empty = host.run_nodes(sdxl, [("ckpt", 0), POS, NEG, LATENT])
    common.update(positive=pos, negative=neg, latent_image=empty)
    one = host.call("TCDKSampler", model=model, cfg=1.0, **common)[0]["samples"]
    two, text = host.call("TCDTwoExpertSampler", high_noise_model=model, low_noise_model=model, cfg_high_noise=1.0,
                          cfg_low_noise=1.0, boundary=0.875, **common)
    assert "step 1 on the high-noise model (timesteps 999); steps 2-4 on the low-noise model" in text  # DDPM timesteps
    assert torch.equal(two["samples"], one)


# -- two models: the reference loop that switches at the boundary ----------------------------------------------------
def expert_denoiser(model, cfg, pos, neg, shape):
    """x0_hat(x, sigma) of one host model through the host's own guider (one host sampling call per evaluation)."""
    import comfy.sample
    import comfy.samplers

    def denoise(x, sigma):
        got = {}

        @torch.no_grad()
        def evaluate(model_k, x_in, sigmas, extra_args=None, callback=None, disable=None):
            got["x0"] = model_k(x.to(x_in), sigmas[:1].repeat(x_in.shape[0]), **extra_args)
            return x_in
        comfy.sample.sample_custom(model, torch.zeros(shape), cfg, comfy.samplers.KSAMPLER(evaluate),
                                   torch.tensor([float(sigma), 0.0]), pos, neg, torch.zeros(shape), seed=SEED)
        return got["x0"]
    return denoise


def reference(host, g, boundary, gamma, cfgs, equations, shape, step_noise=None):
    """The flow TCD loop (float64 equations, or diffusers' scheduler at gamma 0 and 1), one noise stream from SEED,
    each step's model picked by diffusers' WanPipeline rule: t = sigma x 1000 >= boundary x 1000 -> high-noise."""
    sigmas_node = {"class_type": "TCDSigmas", "inputs": {"model": list(HIGH), "steps": STEPS, "denoise": 1.0}}
    high, low, pos, neg, sigmas = host.run_nodes({**g, "sigmas": sigmas_node}, [HIGH, LOW, POS, NEG, ("sigmas", 0)])
    experts = [expert_denoiser(m, c, pos, neg, shape) for m, c in zip((high, low), cfgs, strict=True)]
    picked = []

    def velocity(x, sigma):
        s = torch.as_tensor(sigma, dtype=torch.float32)
        e = 0 if float(s) * 1000 >= boundary * 1000 else 1
        picked.append(e)
        return (x - experts[e](x.float(), s)) / s

    if equations:
        x = flow_equations_reference(sigmas, velocity, shape, [gamma] * STEPS, SEED, step_noise=step_noise).float()
    else:
        x = flow_reference_loop(sigmas, velocity, shape, gamma, SEED)
    assert picked == [0] * SPLITS[boundary][0] + [1] * SPLITS[boundary][1], picked
    return high.model.process_latent_out(x)  # as the host hands back every sample


CASES = [(0.0, 0.875, (1.0, 1.0)), (1.0, 0.875, (1.0, 1.0)), (0.3, 0.875, (1.0, 1.0)), (0.3, 0.7, (3.0, 1.0)),
         (0.6, 1.0, (1.0, 2.0))]


@pytest.mark.parametrize("gamma,boundary,cfgs", CASES)
def test_two_models_match_the_switching_reference(host, g, gamma, boundary, cfgs):
    ours = run(host, g, two_experts(gamma, boundary, cfgs))
    case = f"gamma {gamma:g}, boundary {boundary:g}, cfg {cfgs[0]:g}/{cfgs[1]:g}"
    for name, equations in (("float64 equations", True), ("diffusers", False)):
        if equations or gamma in (0.0, 1.0):
            err = rel_max_err(ours, reference(host, g, boundary, gamma, cfgs, equations, ours.shape))
            ERRORS[(case, name)] = err
            assert err <= BOUND, f"{case}: relative max error {err:.3g} against {name}"
    if (gamma, boundary) == (0.3, 0.875):  # both experts really ran: the result is neither model's alone
        for model in (HIGH, LOW):
            alone = run(host, g, two_experts(gamma, boundary, cfgs, high=model, low=model))
            assert rel_max_err(ours, alone) > 1e3 * BOUND


# -- one model after the other ----------------------------------------------------------------------------------------
def test_the_experts_run_and_load_one_after_the_other(host, g, monkeypatch):
    import sys

    import comfy.model_management
    high, low, pos, neg, latent = host.run_nodes(g, [HIGH, LOW, POS, NEG, LATENT])
    calls, loads = [], []

    def tagged(model, name):
        m = model.clone()
        m.set_model_unet_function_wrapper(
            lambda apply, a: calls.append((name, float(a["timestep"].flatten()[0])))
            or apply(a["input"], a["timestep"], **a["c"]))
        return m

    experts = {"high": tagged(high, "high"), "low": tagged(low, "low")}
    load = comfy.model_management.load_models_gpu

    def spy(models, *args, **kwargs):
        loads.append([n for n, e in experts.items() if any(m.model is e.model for m in models)])
        return load(models, *args, **kwargs)
    monkeypatch.setattr(comfy.model_management, "load_models_gpu", spy)
    sys.modules[host.pack.__name__ + ".nodes.cache"].clear()

    def sample(gamma):
        calls.clear()
        loads.clear()
        return host.call("TCDTwoExpertSampler", high_noise_model=experts["high"], low_noise_model=experts["low"],
                         seed=SEED, steps=STEPS, cfg_high_noise=1.0, cfg_low_noise=1.0, gamma=gamma, boundary=0.875,
                         scheduler="tcd", positive=pos, negative=neg, latent_image=latent, denoise=1.0)

    _, text = sample(0.3)
    assert [n for n, _ in calls] == ["high", "high", "low", "low"]
    assert [s for _, s in calls] == pytest.approx([1.0, 0.9406, 0.8333, 0.6373], abs=1e-4)
    assert loads == [["high"], ["low"]]  # one host load per leg, each holding one expert
    assert text == ("4 TCD steps, boundary 0.875 (timestep 875): steps 1-2 on the high-noise model (timesteps 1000, "
                    "941); steps 3-4 on the low-noise model (timesteps 833, 637)")
    _, text = sample(0.7)  # a gamma-only change: the first call (gamma plays no part in it) comes from the cache
    assert [n for n, _ in calls] == ["high", "low", "low"]
    FIGURES["order"] = text


# -- the host's own split with sampler 'tcd' -------------------------------------------------------------------------
def stock_split():
    """The host's Wan 2.2 14B template with sampler and scheduler 'tcd': two KSamplerAdvanced, steps 0-2 on the
    high-noise model with the seed, then 2-4 on the low-noise model with add_noise off and seed 0."""
    common = {"steps": STEPS, "cfg": 1.0, "sampler_name": "tcd", "scheduler": "tcd", "positive": list(POS),
              "negative": list(NEG)}
    return {
        "stage1": {"class_type": "KSamplerAdvanced", "inputs": {
            **common, "model": list(HIGH), "add_noise": "enable", "noise_seed": SEED, "latent_image": list(LATENT),
            "start_at_step": 0, "end_at_step": 2, "return_with_leftover_noise": "enable"}},
        "stage2": {"class_type": "KSamplerAdvanced", "inputs": {
            **common, "model": list(LOW), "add_noise": "disable", "noise_seed": 0, "latent_image": ["stage1", 0],
            "start_at_step": 2, "end_at_step": 4, "return_with_leftover_noise": "disable"}},
    }


def test_the_hosts_split_restarts_the_step_noise_from_its_second_seed(host, g):
    split = host.run_latent({**g, **stock_split()}, ["stage2", 0])
    ours = run(host, g, two_experts(0.3, 0.875))  # the same 2 + 2 split in one trajectory
    restart = torch.Generator("cpu").manual_seed(0)
    torch.randn(tuple(split.shape), generator=restart)  # the second stage's stream steps past its initial draw

    def stage_noise(i, gen):  # steps 1-2: seed SEED's stream; steps 3-4: seed 0's, afresh
        return torch.randn(tuple(split.shape), generator=gen if i < 2 else restart)
    err = rel_max_err(split, reference(host, g, 0.875, 0.3, (1.0, 1.0), True, split.shape, stage_noise))
    apart = rel_max_err(split, ours)
    ERRORS[("the host's split, step noise restarted at stage 2", "float64 equations")] = err
    FIGURES["split"] = apart
    assert err <= BOUND, f"the split against the restarted-stream reference: {err:.3g}"
    assert apart > 1e3 * BOUND, f"the split equals the one-trajectory run ({apart:.3g})"


# -- bad input ----------------------------------------------------------------------------------------------------
def errors_of(host, prompt):
    ok, err, outputs, node_errors = host.validate(prompt)
    assert not ok or node_errors, "the host accepted a bad prompt"
    return " | ".join(f"{e['details']} {e['message']}" for n in node_errors.values() for e in n["errors"])


@pytest.mark.parametrize("bad,needle", [
    (dict(boundary=1.5), "boundary=1.5 is outside the allowed range 0..1"),
    (dict(boundary=-0.1), "boundary=-0.1 is outside the allowed range 0..1"),
    (dict(boundary=math.nan), "boundary=nan is outside the allowed range 0..1"),
    (dict(cfg_low_noise=-1.0), "cfg_low_noise=-1.0 is outside the allowed range 0..100"),
    (dict(gamma=2.0), "gamma=2.0 is outside the allowed range 0..1"),
    (dict(steps=60), "steps=60 is more than the TCD grid holds"),
])
def test_bad_settings_are_refused_at_validation(host, g, bad, needle):
    node = two_experts(0.3, 0.875)
    node["inputs"].update(bad)
    assert needle in errors_of(host, {**g, "x": node, "out": prompts.save_latent(("x", 0))})


def test_experts_that_sample_differently_are_refused(host, g):
    p = {**g, "sdxl": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": host.checkpoint(0)}},
         "x": two_experts(0.3, 0.875, low=("sdxl", 0)), "out": prompts.save_latent(("x", 0))}
    with pytest.raises(PromptFailed) as e:
        host.run(p)
    assert "the two experts must sample the same way: the high-noise model is a flow model, the low-noise model " \
           "a ddpm model" in str(e.value)


@tcd_figures.reporter("TCD SAMPLER (TWO EXPERTS): WAN 2.2'S TWO EXPERTS IN ONE TRAJECTORY")
def report():
    from tcd_host import host_version
    if not (ERRORS or FIGURES):
        return []
    lines = [f"ComfyUI {host_version()}, two small Wan-shaped experts (seeds 0 and 1), shift {SHIFT:g}, {STEPS} steps, "
             f"seed {SEED}:"]
    if "same" in FIGURES:
        cases = ", ".join(f"gamma {g:g}/boundary {b:g}" for g, b in FIGURES["same"])
        lines.append(f"  the same model twice = TCD Sampler, bit for bit ({cases})")
    for (case, ref), err in ERRORS.items():
        lines.append(f"  {case:48s} vs {ref:18s} relative max error {err:.2e}")
    if "order" in FIGURES:
        lines.append(f"  {FIGURES['order']}")
    if "split" in FIGURES:
        lines.append(f"  the host's two-KSamplerAdvanced split with 'tcd' differs from the one-trajectory run by "
                     f"{FIGURES['split']:.3g} (relative max)")
    return lines
