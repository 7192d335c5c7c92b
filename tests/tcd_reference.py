"""The ground truth: diffusers' TCDScheduler driven the way its pipelines drive it, and the sigma-space mapping.

A DDPM-space sample relates to the host's sigma-space sample by x_sigma = x_ddpm / sqrt(alpha_bar_t); every
comparison below maps the reference into sigma space with that exact factor at the timestep it belongs to.
"""
from __future__ import annotations

import math

import torch
from diffusers import TCDScheduler


def make_scheduler(prediction_type: str = "epsilon") -> TCDScheduler:
    # The SD1.5/SDXL/SD2.1 training schedule (scaled_linear 0.00085..0.012, 1000 steps); TCD's published config.
    return TCDScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                        prediction_type=prediction_type, timestep_spacing="leading", original_inference_steps=50)


def sigma_table(scheduler: TCDScheduler) -> torch.Tensor:
    ac = scheduler.alphas_cumprod.double()
    return ((1 - ac) / ac).sqrt().float()


def reference_loop(scheduler: TCDScheduler, model_output, shape, steps: int | None, gamma, seed: int,
                   strength: float = 1.0, image_latent: torch.Tensor | None = None, timesteps=None):
    """diffusers' TCD loop driven the way its float32 pipelines drive it: one CPU generator seeded with ``seed`` draws
    the initial latents (``prepare_latents``), then every ``TCDScheduler.step`` draws its noise from it.
    ``model_output(x_ddpm, t)`` is the model's eps (or v); ``gamma`` one eta for all steps or a list (one per step);
    ``timesteps``: custom timesteps (``set_timesteps(timesteps=...)``) instead of ``steps``.
    Returns (timesteps, final DDPM-space sample, initial noise)."""
    from diffusers.utils.torch_utils import randn_tensor

    gen = torch.Generator("cpu").manual_seed(seed)
    if timesteps is None:
        scheduler.set_timesteps(steps, strength=strength)
    else:
        scheduler.set_timesteps(timesteps=list(timesteps), strength=strength)
    timesteps = scheduler.timesteps
    etas = list(gamma) if isinstance(gamma, (list, tuple)) else [gamma] * len(timesteps)
    noise = randn_tensor(tuple(shape), generator=gen, device=torch.device("cpu"), dtype=torch.float32)
    if image_latent is None:
        x = noise * scheduler.init_noise_sigma
    else:  # img2img pipelines: the encoded image noised to the first timestep
        x = scheduler.add_noise(image_latent, noise, timesteps[:1])
    for t, eta in zip(timesteps, etas, strict=True):
        out = model_output(scheduler.scale_model_input(x, t), int(t))
        x = scheduler.step(out, t, x, eta=eta, generator=gen).prev_sample
    return [int(t) for t in timesteps], x, noise


class ToyModel:
    """A fixed random nonlinear model output of order one, like a real network's: tanh(W x + b cos(freq t)) + skip x.
    The defaults predict eps (or v) from (x_ddpm, t) of a 4-channel DDPM latent; ``toy_velocity`` is a flow model's."""

    def __init__(self, seed=1, channels=4, w_scale=0.5, freq=1 / 150, skip=0.3):
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(channels, channels, generator=g) * w_scale
        self.b = torch.randn(channels, 1, 1, generator=g)
        self.freq, self.skip = freq, skip

    def __call__(self, x, t):
        h = torch.einsum("oc,bchw->bohw", self.w, x.float())
        return torch.tanh(h + self.b * math.cos(self.freq * float(t))) + self.skip * x


def toy_velocity(seed=3):
    """A fixed random velocity field v(x, sigma) of order one for a 16-channel flow latent (the flow model's output)."""
    return ToyModel(seed, channels=16, w_scale=0.25, freq=3.0, skip=0.5)


def denoiser(model, scheduler, table, prediction_type):
    """The same model seen the host's way: x in sigma space and sigma in, denoised x0 out."""
    from samplers import timestep_from_sigma

    def fn(x, sigma, **_):
        s = float(sigma[0])
        t = timestep_from_sigma(s, table)
        ac = scheduler.alphas_cumprod[t]
        x_ddpm = x * ac.sqrt()
        out = model(x_ddpm, t)
        if prediction_type == "epsilon":
            return x - sigma.view(-1, 1, 1, 1) * out
        return ac.sqrt() * x_ddpm - (1 - ac).sqrt() * out  # v-prediction: x0 = sqrt(a) x - sqrt(1-a) v
    return fn


def host_reference(host, ckpt, gamma, steps, cfg, denoise, prediction_type="epsilon", image_latent=None,
                   timesteps=None, seed=42):
    """diffusers' TCDScheduler loop over the host's model (same conditioning), its initial latents and step noise
    drawn from one CPU generator seeded with ``seed`` as a diffusers pipeline draws them; sigma-space result.
    ``gamma``: one eta or one per step; ``timesteps``: custom timesteps instead of ``steps``."""
    import comfy.sample
    import comfy.samplers

    model, clip, _ = host.call("CheckpointLoaderSimple", ckpt_name=ckpt)
    pos = host.call("CLIPTextEncode", clip=clip, text="a red fox in the snow")[0]
    neg = host.call("CLIPTextEncode", clip=clip, text="blurry")[0]
    latent = torch.zeros(1, 4, 8, 8) if image_latent is None else image_latent
    sch = make_scheduler(prediction_type)
    ms = model.get_model_object("model_sampling")
    ac = sch.alphas_cumprod
    assert torch.allclose(((1 - ac.double()) / ac.double()).sqrt().float(), ms.sigmas, rtol=1e-4), \
        "host and diffusers disagree on the training noise schedule"

    @torch.no_grad()
    def diffusers_loop(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
        def model_output(x_ddpm, t):  # the host's x0 prediction, as the eps or v output diffusers expects
            a = ac[t]
            sigma = ((1 - a) / a).sqrt()
            x_sigma = x_ddpm / a.sqrt()
            x0 = model_k(x_sigma, sigma.view(1).repeat(x_ddpm.shape[0]), **extra_args)
            eps = (x_sigma - x0) / sigma
            return eps if prediction_type == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0

        # like a diffusers img2img pipeline given latents: VAE latent times the VAE scaling factor, noised at t0
        image = None if image_latent is None else model.model.process_latent_in(image_latent)
        _, xd, _ = reference_loop(sch, model_output, x.shape, steps, gamma, seed, strength=denoise,
                                  image_latent=image, timesteps=timesteps)
        return xd / ac[0].sqrt()  # DDPM space -> the host's sigma space at t = 0 (the host then un-scales both)

    if timesteps is None:
        sch.set_timesteps(steps, strength=denoise)
    else:
        sch.set_timesteps(timesteps=list(timesteps), strength=denoise)
    sigmas = torch.tensor([float(ms.sigmas[int(sch.timesteps[0])]), 0.0])
    return comfy.sample.sample_custom(model, torch.zeros_like(latent), cfg, comfy.samplers.KSAMPLER(diffusers_loop),
                                      sigmas, pos, neg, latent, seed=seed)


def simple_tail_sigmas(table: torch.Tensor, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """A JettHu-style grid, a known near miss (JettHu/ComfyUI-TCD builds its sigmas this way): the host's ``simple``
    schedule over n = int(steps / denoise) steps (every len(table) / n-th training sigma from the top, then 0), of
    which the last steps + 1 are kept. At 4 steps: timesteps 999, 749, 499, 249 where TCD's grid is 999, 759, 499, 259.
    """
    n = int(steps / denoise)
    stride = len(table) / n
    full = [float(table[-(1 + int(i * stride))]) for i in range(n)] + [0.0]
    return torch.tensor(full[-(steps + 1):])


def to_sigma_space(x_ddpm: torch.Tensor, scheduler: TCDScheduler, t: int) -> torch.Tensor:
    return x_ddpm / scheduler.alphas_cumprod[t].sqrt()


def rel_max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def flow_reference_loop(sigmas: torch.Tensor, velocity, shape, gamma: float, seed: int,
                        image: torch.Tensor | None = None) -> torch.Tensor:
    """diffusers' FlowMatchEulerDiscreteScheduler over these sigmas (gamma 0: its Euler step; gamma 1: its
    ``stochastic_sampling`` step). One CPU generator seeded with ``seed`` draws the initial latents, then feeds the
    scheduler's ``randn_like`` noise (it takes no generator). ``velocity(x, sigma)`` is the model's raw output."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    assert gamma in (0.0, 1.0), "diffusers has flow steps for gamma 0 and 1 only"
    sch = FlowMatchEulerDiscreteScheduler(shift=1.0, stochastic_sampling=gamma == 1.0)
    sch.set_timesteps(sigmas=sigmas[:-1].tolist())
    assert torch.allclose(sch.sigmas, sigmas.float()), (sch.sigmas, sigmas)
    gen = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn(tuple(shape), generator=gen)
    s0 = sch.sigmas[0]
    x = s0 * noise if image is None else sch.scale_noise(image, sch.timesteps[:1], noise)
    saved = torch.get_rng_state()
    try:
        for t in sch.timesteps:
            sigma = sch.sigmas[sch.index_for_timestep(t)]
            torch.set_rng_state(gen.get_state())  # randn_like(sample) takes the stream's next draw
            x = sch.step(velocity(x, sigma), t, x).prev_sample
            gen.set_state(torch.get_rng_state())
    finally:
        torch.set_rng_state(saved)
    return x


def flow_equations_reference(sigmas: torch.Tensor, velocity, shape, gammas, seed: int,
                             image: torch.Tensor | None = None) -> torch.Tensor:
    """The flow TCD step written again in float64 from the formulas (any gamma per step), with the same noise stream:
    eps = (x - (1-s_t) x0) / s_t; s' = (1-g) s_next; x' = (1-s') x0 + s' eps;
    x_next = (1-s_next)/(1-s') x' + sqrt(s_next^2 - ((1-s_next) s'/(1-s'))^2) z (no z when s_next = 0)."""
    gen = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn(tuple(shape), generator=gen).double()
    s = sigmas.double()
    x = s[0] * noise if image is None else s[0] * noise + (1 - s[0]) * image.double()
    for i in range(len(s) - 1):
        st, sn, g = s[i], s[i + 1], gammas[i]
        x0 = x - st * velocity(x, st).double()
        eps = (x - (1 - st) * x0) / st
        sp = (1 - g) * sn
        x = (1 - sp) * x0 + sp * eps
        if g > 0 and sn > 0:
            a = (1 - sn) / (1 - sp)
            x = a * x + torch.sqrt(sn ** 2 - (a * sp) ** 2) * torch.randn(tuple(shape), generator=gen).double()
    return x



def flow_host_reference(host, graph, model_src, gamma, steps, cfg, seed, equations=None, shape=None):
    """The flow reference loop inside the host, driving the host's model (same conditioning, same sigmas: the graph's
    'pos', 'neg', 'latent' and 'sigmas' nodes), initial and step noise from one generator seeded with ``seed``:
    diffusers' FlowMatchEulerDiscreteScheduler, or the float64 flow equations when ``equations`` (default: diffusers
    at gamma 0 and 1, the equations in between). ``shape``: the latent's shape as the host samples it (default: the
    graph's latent with its channels and dimensions fixed for the model, as the host's samplers fix an empty one)."""
    import comfy.sample
    import comfy.samplers

    model, pos, neg, latent, sigmas = host.run_nodes(graph, [model_src, ("pos", 0), ("neg", 0), ("latent", 0),
                                                             ("sigmas", 0)])
    latent = comfy.sample.fix_empty_latent_channels(model, latent["samples"]) if shape is None else torch.zeros(shape)
    equations = gamma not in (0.0, 1.0) if equations is None else equations

    @torch.no_grad()
    def loop(model_k, x, _sigmas, extra_args=None, callback=None, disable=None):
        def velocity(xx, sigma):
            s = torch.as_tensor(sigma, dtype=torch.float32)
            return (xx - model_k(xx.float(), s.view(1).repeat(xx.shape[0]), **extra_args)) / s
        if equations:
            return flow_equations_reference(sigmas, velocity, x.shape, [gamma] * steps, seed).float()
        return flow_reference_loop(sigmas, velocity, x.shape, gamma, seed)

    return comfy.sample.sample_custom(model, torch.zeros_like(latent), cfg, comfy.samplers.KSAMPLER(loop),
                                      torch.tensor([float(sigmas[0]), 0.0]), pos, neg, latent, seed=seed)
