"""Custom timesteps (TCD Scheduler's ``timesteps``) and the per-step gamma ramp (SamplerTCD's ``gamma_end``): parity
with diffusers' TCDScheduler given ``set_timesteps(timesteps=...)`` and a per-step ``eta``, unit and in the host."""
import pytest

from samplers import TCDInputError, gamma_schedule, initial_noise, parse_timesteps, sample_tcd, tcd_sigmas
from tcd_prompts import SEED, base_graph, custom_nodes
from tcd_reference import (
    ToyModel,
    denoiser,
    host_reference,
    make_scheduler,
    reference_loop,
    rel_max_err,
    sigma_table,
    to_sigma_space,
)

SHAPE = (2, 4, 8, 8)

DMD2 = [999, 749, 499, 249]
RESULTS = {}


def unit_pair(gamma, gamma_end=None, timesteps=None, steps=4, seed=99):
    sch = make_scheduler()
    table = sigma_table(sch)
    model = ToyModel()
    sigmas = tcd_sigmas(table, steps, timesteps=timesteps)
    n = len(sigmas) - 1
    ts, ref, _ = reference_loop(sch, model, SHAPE, None if timesteps else steps, gamma_schedule(gamma, gamma_end, n),
                                seed, timesteps=timesteps)
    x0 = initial_noise(seed, SHAPE) * (1 + sigmas[0] ** 2).sqrt()
    ours = sample_tcd(denoiser(model, sch, table, "epsilon"), x0, sigmas, extra_args={"seed": seed}, gamma=gamma,
                      gamma_end=gamma_end, sigma_table=table)
    return ts, rel_max_err(ours, to_sigma_space(ref, sch, 0))


@pytest.mark.parametrize("timesteps", [DMD2, [999, 500, 100], [600, 300], [999], [999, 899, 799, 699, 599, 3]])
@pytest.mark.parametrize("gamma", [0.0, 0.3, 1.0])
def test_custom_timesteps_match_diffusers(timesteps, gamma):
    ts, err = unit_pair(gamma, timesteps=timesteps)
    assert ts == timesteps
    RESULTS[("unit timesteps", tuple(timesteps), gamma)] = err
    assert err <= 1e-3, f"relative max error {err:.3g}"


@pytest.mark.parametrize("gamma,gamma_end,steps", [(0.1, 0.9, 4), (0.8, 0.0, 4), (0.6, 0.1, 8), (0.5, 0.5, 4),
                                                   (0.2, 1.0, 2)])
def test_gamma_ramp_matches_diffusers_per_step_eta(gamma, gamma_end, steps):
    _, err = unit_pair(gamma, gamma_end, steps=steps)
    RESULTS[("unit ramp", gamma, gamma_end, steps)] = err
    assert err <= 1e-3, f"relative max error {err:.3g}"


def test_ramp_is_linear_from_first_to_last_step():
    assert gamma_schedule(0.1, 0.9, 5) == pytest.approx([0.1, 0.3, 0.5, 0.7, 0.9])
    assert gamma_schedule(0.4, None, 3) == [0.4, 0.4, 0.4]
    assert gamma_schedule(0.4, 0.9, 1) == [0.4]
    with pytest.raises(TCDInputError, match=r"gamma_end=1\.5 is outside the allowed range 0\.\.1"):
        gamma_schedule(0.4, 1.5, 3)


@pytest.mark.parametrize("text,fragment", [
    ("999, 749, 749", "749 after 749 is not descending"), ("249, 499", "499 after 249 is not descending"),
    ("1000, 500", "1000 is outside the allowed range 0..999"), ("999, -1", "-1 is outside the allowed range"),
    ("999, 12.5", "'12.5' is not a whole number"), ("999,, 499", "has an empty item"), ("999, abc", "'abc'"),
])
def test_bad_timesteps_name_the_value(text, fragment):
    with pytest.raises(TCDInputError) as e:
        parse_timesteps(text)
    assert fragment in str(e.value) and "descending whole numbers below 1000" in str(e.value)


def test_empty_timesteps_mean_the_usual_grid():
    assert parse_timesteps("") is None and parse_timesteps("  ") is None
    assert parse_timesteps(" 999,749 , 499, 249 ") == DMD2


# -- through the host --------------------------------------------------------------------------------------------
@pytest.mark.host
@pytest.mark.parametrize("gamma,gamma_end", [(0.3, None), (0.7, 0.1)])
def test_host_custom_timesteps_and_ramp_match_diffusers(host, gamma, gamma_end):
    ckpt = host.checkpoint(0)
    g = {**base_graph(ckpt), **custom_nodes(gamma, 4, 1.0, 1.0)}
    g["sigmas"]["inputs"]["timesteps"] = "999, 749, 499, 249"
    if gamma_end is not None:
        g["end"] = {"class_type": "PrimitiveFloat", "inputs": {"value": gamma_end}}
        g["sampler"]["inputs"]["gamma_end"] = ["end", 0]
    ours = host.run_latent(g, ["sample", 0])
    ref = host_reference(host, ckpt, gamma_schedule(gamma, gamma_end, 4), None, 1.0, 1.0, timesteps=DMD2, seed=SEED)
    err = rel_max_err(ours, ref)
    RESULTS[("host", gamma, gamma_end)] = err
    assert err <= 1e-3, f"relative max error {err:.3g}"


@pytest.mark.host
def test_host_refuses_bad_timesteps_at_validation(host):
    g = {**base_graph(host.checkpoint(0)), **custom_nodes(0.3, 4, 1.0, 1.0)}
    g["sigmas"]["inputs"]["timesteps"] = "999, 1200"
    ok, err, _, node_errors = host.validate({**g, "out": {"class_type": "SaveLatent", "inputs": {
        "samples": ["sample", 0], "filename_prefix": "latents/bad"}}})
    assert "sigmas" in node_errors, (err, node_errors)
    assert "1200 is outside the allowed range 0..999" in str(node_errors["sigmas"])


def test_print_custom_grid_and_ramp_parity():
    if not RESULTS:
        pytest.skip("nothing ran")
    for kind in ("unit timesteps", "unit ramp", "host"):
        errs = [e for k, e in RESULTS.items() if k[0] == kind]
        if errs:
            print(f"\nCUSTOM GRID / RAMP PARITY ({kind}): worst relative max error {max(errs):.3e} over {len(errs)}")
