"""The pack's own noise stream (samplers/noise.py): the stream of a diffusers pipeline seeded the same way, the
initial noise the host would make, and step noise that no host version or device can change."""
import sys

import pytest
import torch

from samplers import NoiseStream, initial_noise, sample_tcd, step_noise_sampler, tcd_sigmas
from tcd_prompts import base_graph, tcd_ksampler
from tcd_reference import make_scheduler, sigma_table

SHAPE = (2, 4, 5, 7)  # 280 values: not a multiple of 16, where CPU randn changes algorithm


def pipeline_stream(seed, shape, n):
    """What a diffusers pipeline given generator=torch.Generator('cpu').manual_seed(seed) draws: initial latents,
    then one tensor per scheduler step (diffusers' own randn_tensor)."""
    from diffusers.utils.torch_utils import randn_tensor
    gen = torch.Generator("cpu").manual_seed(seed)
    return [randn_tensor(shape, generator=gen, device=torch.device("cpu"), dtype=torch.float32) for _ in range(n + 1)]


@pytest.mark.parametrize("seed", [0, 42, 2**63 + 5, 0xffffffffffffffff])
def test_stream_is_the_diffusers_pipeline_stream(seed):
    ref = pipeline_stream(seed, SHAPE, 3)
    assert torch.equal(initial_noise(seed, SHAPE), ref[0])
    sampler = step_noise_sampler(seed, torch.zeros(SHAPE))
    for want in ref[1:]:
        assert torch.equal(sampler(1.0, 0.5), want)


def test_step_noise_takes_the_latents_device_and_dtype_but_is_drawn_in_float32_on_the_cpu():
    x = torch.zeros(SHAPE, dtype=torch.float64)
    got = step_noise_sampler(7, x)(1.0, 0.5)
    assert got.dtype == torch.float64 and got.device == x.device
    assert torch.equal(got, pipeline_stream(7, SHAPE, 1)[1].double())


def test_batch_index_changes_the_initial_noise_only_as_the_host_does():
    # one single-image draw per index 0..max, each image taking the draw of its own index
    gen = torch.Generator().manual_seed(3)
    draws = [torch.randn((1, *SHAPE[1:]), generator=gen) for _ in range(3)]
    got = initial_noise(3, (3, *SHAPE[1:]), batch_index=[2, 0, 2])
    assert torch.equal(got, torch.cat([draws[2], draws[0], draws[2]]))
    with pytest.raises(ValueError, match=r"batch_index=\[0\].*3 images"):
        initial_noise(3, (3, *SHAPE[1:]), batch_index=[0])


def test_one_stream_carries_on_from_the_initial_noise_to_the_last_step():
    # What the pack's own nodes do: the initial noise and every step's noise come from one generator, in order,
    # with nothing drawn twice or thrown away.
    ref = pipeline_stream(9, SHAPE, 3)
    stream = NoiseStream(9)
    gen = stream.gen
    assert torch.equal(stream.initial_noise(SHAPE), ref[0])
    sampler = stream.step_noise_sampler(torch.zeros(SHAPE))
    assert all(torch.equal(sampler(1.0, 0.5), want) for want in ref[1:])
    after = torch.Generator().manual_seed(9)
    for _ in range(4):
        torch.randn(SHAPE, generator=after)
    assert stream.gen is gen and torch.equal(gen.get_state(), after.get_state())


def test_with_batch_index_the_step_noise_still_follows_one_whole_latent_draw():
    shape = (3, *SHAPE[1:])
    stream = NoiseStream(3)
    stream.initial_noise(shape, batch_index=[2, 0, 2])
    assert torch.equal(stream.step_noise_sampler(torch.zeros(shape))(1.0, 0.5), pipeline_stream(3, shape, 1)[1])


def test_without_a_seed_the_step_noise_is_fresh_each_run():
    x = torch.zeros(SHAPE)
    assert not torch.equal(step_noise_sampler(None, x)(1.0, 0.5), step_noise_sampler(None, x)(1.0, 0.5))


def test_sample_tcd_draws_one_step_noise_per_step_but_the_last():
    table = sigma_table(make_scheduler())
    sigmas = tcd_sigmas(table, 4)
    calls = []

    def counting(*a):
        calls.append(a)
        return torch.zeros(SHAPE)

    sample_tcd(lambda x, s, **_: x * 0.5, torch.ones(SHAPE), sigmas, gamma=0.3, sigma_table=table,
               noise_sampler=counting)
    assert len(calls) == 3
    calls.clear()
    sample_tcd(lambda x, s, **_: x * 0.5, torch.ones(SHAPE), sigmas, gamma=0.0, sigma_table=table,
               noise_sampler=counting)
    assert calls == []


@pytest.mark.host
@pytest.mark.parametrize("batch_index", [None, [2, 0, 2]])
def test_initial_noise_equals_the_hosts_prepare_noise(host, batch_index):
    import comfy.sample
    latent = torch.zeros(3, 4, 5, 7)
    host_noise = comfy.sample.prepare_noise(latent, 11, batch_index)
    assert torch.equal(initial_noise(11, latent.shape, batch_index), host_noise)


@pytest.mark.host
def test_tcd_sampler_draws_every_noise_of_a_run_from_one_stream(host, monkeypatch):
    noise = sys.modules[host.pack.__name__ + ".samplers.noise"]
    made, init = [], noise.NoiseStream.__init__

    def counting(self, seed):
        made.append(seed)
        init(self, seed)
    monkeypatch.setattr(noise.NoiseStream, "__init__", counting)
    seed = 9191  # a prompt no other test queues, so the host's node cache cannot answer it
    lat = host.run_latent({**base_graph(host.checkpoint(0)), "ks": tcd_ksampler(0.3, 4, 1.0, seed=seed)}, ["ks", 0])
    assert torch.isfinite(lat).all()
    assert made == [seed]  # the node's stream, handed to the sampler: no second generator for the step noise
