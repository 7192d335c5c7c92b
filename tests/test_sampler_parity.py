"""samplers/ against diffusers' TCDScheduler on a deterministic toy model with identical noise draws (no host)."""
import itertools

import pytest
import torch

from samplers import TCDInputError, initial_noise, sample_tcd, strategic_timestep, tcd_sigmas, tcd_timesteps
from tcd_reference import ToyModel, denoiser, make_scheduler, reference_loop, rel_max_err, sigma_table, to_sigma_space

SHAPE = (2, 4, 8, 8)
WORST = {}


def run_pair(steps, gamma, denoise, prediction_type="epsilon", seed=1234):
    sch = make_scheduler(prediction_type)
    table = sigma_table(sch)
    model = ToyModel()
    image = torch.randn(SHAPE, generator=torch.Generator().manual_seed(7)) if denoise < 1 else None
    ts, ref, ref_noise = reference_loop(sch, model, SHAPE, steps, gamma, seed, strength=denoise, image_latent=image)
    noise = initial_noise(seed, SHAPE)  # the pack's stream: its first draw is the pipeline's initial latents
    assert torch.equal(noise, ref_noise)
    sigmas = tcd_sigmas(table, steps, denoise)
    x0 = noise * (1 + sigmas[0] ** 2).sqrt() if image is None else image + noise * sigmas[0]  # host's noise_scaling
    ours = sample_tcd(denoiser(model, sch, table, prediction_type), x0, sigmas, extra_args={"seed": seed},
                      gamma=gamma, sigma_table=table)
    return ts, rel_max_err(ours, to_sigma_space(ref, sch, 0)), rel_max_err(ours, ref)


@pytest.mark.parametrize("steps,gamma,denoise", list(itertools.product([1, 2, 4, 8, 50], [0.0, 0.3, 1.0], [1.0, 0.5])))
def test_matches_diffusers(steps, gamma, denoise):
    if steps > int(50 * denoise):
        with pytest.raises(TCDInputError, match=rf"steps={steps}.*1\.\.{int(50 * denoise)}"):
            tcd_timesteps(steps, denoise)
        with pytest.raises(ValueError, match="smaller than `num_inference_steps`"):  # the reference refuses it too
            make_scheduler().set_timesteps(steps, strength=denoise)
        return
    ts, err, raw = run_pair(steps, gamma, denoise)
    assert ts == tcd_timesteps(steps, denoise)
    WORST[(steps, gamma, denoise)] = err
    assert err <= 1e-3, f"relative max error {err:.3g}"
    # Unmapped, the host-space latent differs from diffusers' final latent only by sqrt(alpha_bar_0) (4.3e-4).
    assert raw <= 1e-3


@pytest.mark.parametrize("gamma", [0.0, 0.3, 1.0])
def test_v_prediction_matches(gamma):
    _, err, _ = run_pair(4, gamma, 1.0, prediction_type="v_prediction")
    assert err <= 1e-3


def test_print_worst_parity():
    for steps, gamma, denoise in itertools.product([1, 2, 4, 8, 50], [0.0, 0.3, 1.0], [1.0, 0.5]):
        if steps <= int(50 * denoise) and (steps, gamma, denoise) not in WORST:
            WORST[(steps, gamma, denoise)] = run_pair(steps, gamma, denoise)[1]
    worst = max(WORST.items(), key=lambda kv: kv[1])
    print(f"\nUNIT PARITY vs diffusers TCDScheduler: worst relative max error {worst[1]:.3e} over {len(WORST)} "
          f"settings (at steps, gamma, denoise = {worst[0]})")
    assert worst[1] <= 1e-3


def test_reference_grid_examples():
    assert tcd_timesteps(4) == [999, 759, 499, 259]
    assert tcd_timesteps(4, 0.5) == [499, 379, 259, 139]
    assert tcd_timesteps(1) == [999]


def test_strategic_timestep_uses_reference_rounding():
    for t in [259, 499, 759, 999, 19, 0]:
        for g in [0.0, 0.01, 0.3, 0.37, 0.5, 0.99, 1.0]:
            ref = int(torch.floor((1 - g) * torch.tensor(t)))
            assert strategic_timestep(t, g) == ref


@pytest.mark.parametrize("bad", [dict(denoise=0.0), dict(denoise=float("nan")), dict(steps=0),
                                 dict(original_inference_steps=0), dict(original_inference_steps=1001)])
def test_bad_grid_inputs_name_value_and_range(bad):
    kw = dict(steps=4, denoise=1.0, original_inference_steps=50) | bad
    with pytest.raises(TCDInputError) as e:
        tcd_timesteps(**kw)
    name, value = next(iter(bad.items()))
    assert f"{name}={value!r} is outside the allowed range" in str(e.value), str(e.value)


def test_gamma_outside_range_refused():
    x = torch.zeros(1, 4, 2, 2)
    with pytest.raises(TCDInputError, match="gamma=1.5.*0..1"):
        sample_tcd(lambda x, s: x, x, torch.tensor([1.0, 0.0]), gamma=1.5, sigma_table=torch.linspace(0.03, 14, 1000))


def test_nan_from_model_names_step():
    table = sigma_table(make_scheduler())
    sig = tcd_sigmas(table, 4)
    calls = []

    def model(x, s, **_):
        calls.append(1)
        return x * (float("nan") if len(calls) == 3 else 0.5)

    with pytest.raises(FloatingPointError, match="step 3 of 4"):
        sample_tcd(model, torch.ones(1, 4, 2, 2), sig, gamma=0.3, sigma_table=table, extra_args={"seed": 1})
