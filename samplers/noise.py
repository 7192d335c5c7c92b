"""The pack's own noise stream, so that a seed means one image on every host and device.

One CPU ``torch.Generator`` seeded with the seed. Its first draw, shaped like the whole latent, is the initial noise;
each later draw, shaped like the latent again, is one step's fresh noise (TCD draws one per step while gamma > 0 and
none after the last step). Every draw is float32 on the CPU, then moved to the latent's device and dtype.

That is the stream of a float32 diffusers pipeline called with ``generator=torch.Generator("cpu").manual_seed(seed)``
(initial latents first, then each ``TCDScheduler.step``), and its first draw is what ComfyUI's ``prepare_noise`` gives
for a latent without ``batch_index``.

``NoiseStream`` owns the stream. The pack's own nodes draw the initial noise from it and hand the same object to the
sampler, whose step noise carries on from that generator. Where the host drew the initial noise itself
(SamplerCustom with RandomNoise, the stock KSampler), the sampler's stream first steps past that one draw.

- ``batch_index`` (a latent taken out of a larger batch) changes the initial noise only, exactly as the host does it:
  one single-image draw per index ``0 .. max(batch_index)``, each image taking the draw of its index. The step noise
  never depends on ``batch_index``: it continues after one whole-latent draw.
- No seed (``None``, e.g. a noise node without a seed): the step noise comes from a freshly, randomly seeded
  generator, so the result cannot be reproduced. The host's own samplers behave the same way without a seed.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch

NoiseSampler = Callable[..., torch.Tensor]


def noise_generator(seed: Optional[int]) -> torch.Generator:
    """The CPU generator of the stream: seeded with ``seed``, or randomly when there is none."""
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def draw(gen: torch.Generator, shape: Sequence[int]) -> torch.Tensor:
    """One draw of the stream: standard normal, float32, on the CPU."""
    return torch.randn(tuple(shape), dtype=torch.float32, generator=gen, device="cpu")


def _indexed_draws(gen: torch.Generator, shape: Sequence[int], batch_index: Sequence[int]) -> torch.Tensor:
    """One single-image draw per index ``0 .. max(batch_index)``, each image taking the draw of its index (the host's
    ``prepare_noise`` rule)."""
    indices = [int(i) for i in batch_index]
    if len(indices) != shape[0] or min(indices) < 0:
        raise ValueError(f"batch_index={list(batch_index)!r} must hold one index >= 0 per image of the batch "
                         f"({shape[0]} images)")
    single = [1, *shape[1:]]
    draws = [draw(gen, single) for _ in range(max(indices) + 1)]
    return torch.cat([draws[i] for i in indices])


class NoiseStream:
    """A seed's noise stream, from the initial noise to the last step's noise: one generator, drawn in order."""

    def __init__(self, seed: Optional[int]):
        self.seed = seed
        self.gen = noise_generator(seed)
        self.started = False  # True once the initial noise is behind the generator

    def initial_noise(self, shape: Sequence[int], batch_index: Optional[Sequence[int]] = None) -> torch.Tensor:
        """The stream's first draw (the initial noise); with ``batch_index``, one draw per index as the host makes
        it, and the step noise still continues after one whole-latent draw."""
        if batch_index is None:
            noise = draw(self.gen, shape)
        else:
            noise = _indexed_draws(noise_generator(self.seed), shape, batch_index)
            draw(self.gen, shape)
        self.started = True
        return noise

    def step_noise_sampler(self, x: torch.Tensor) -> NoiseSampler:
        """A k-diffusion ``noise_sampler(sigma, sigma_next)``: the draws after the initial noise, one per call. When
        the host drew the initial noise from its own generator, the stream first steps past that draw."""
        if not self.started and self.seed is not None:
            draw(self.gen, x.shape)
        self.started = True
        shape, device, dtype = tuple(x.shape), x.device, x.dtype
        return lambda *_sigmas: draw(self.gen, shape).to(device=device, dtype=dtype)


def initial_noise(seed: int, shape: Sequence[int], batch_index: Optional[Sequence[int]] = None) -> torch.Tensor:
    """The initial noise of ``seed``'s stream (``NoiseStream.initial_noise``)."""
    return NoiseStream(seed).initial_noise(shape, batch_index)


def step_noise_sampler(seed: Optional[int], x: torch.Tensor) -> NoiseSampler:
    """The step noise of ``seed``'s stream when someone else drew its initial noise (``NoiseStream``)."""
    return NoiseStream(seed).step_noise_sampler(x)
