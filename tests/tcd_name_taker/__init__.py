"""Test-only custom node pack that takes the stock KSampler's names 'tcd' at import, as another TCD pack
(licyk/ComfyUI-TCD-Sampler) does: unconditionally, it sets ``comfy.k_diffusion.sampling.sample_tcd`` and
``sample_tcd_euler_a`` and appends 'tcd' and 'tcd_euler_a' to the host's sampler list; it also takes scheduler 'tcd'.
Its sampler stops after one Euler step and its scheduler is the host's 'simple', so what it makes is not TCD's."""
import comfy.k_diffusion.sampling as k_sampling
import comfy.samplers


def sample_one_euler_step(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """One Euler step of the probability-flow ODE, from sigmas[0] to sigmas[1], returned as it is (still noisy):
    x + (s1 - s0) (x - D(x, s0)) / s0."""
    extra_args = {} if extra_args is None else extra_args
    s0, s1 = sigmas[0], sigmas[1]
    denoised = model(x, s0 * x.new_ones([x.shape[0]]), **extra_args)
    return x + (s1 - s0) * (x - denoised) / s0


def take_sampler_names():
    """Sampler 'tcd' and 'tcd_euler_a' are this pack's one Euler step, appended to the host's list (twice if listed)."""
    for name in ("tcd", "tcd_euler_a"):
        setattr(k_sampling, f"sample_{name}", sample_one_euler_step)
        comfy.samplers.SAMPLER_NAMES.append(name)


def simple_grid(model_sampling, steps):
    """Scheduler 'tcd' is the host's 'simple' schedule."""
    return comfy.samplers.simple_scheduler(model_sampling, steps)


def take_scheduler_name():
    """Scheduler 'tcd' is this pack's, appended to the host's list."""
    comfy.samplers.SCHEDULER_HANDLERS["tcd"] = comfy.samplers.SchedulerHandler(simple_grid, use_ms=True)
    comfy.samplers.SCHEDULER_NAMES.append("tcd")


take_sampler_names()
take_scheduler_name()
NODE_CLASS_MAPPINGS = {}
