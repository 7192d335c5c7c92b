"""TCD on the families TCD's own LoRAs are for (TCD-SD15-LoRA, TCD-SD21-base-LoRA) through the real host: small SD1.5-
and SD2.x-shaped checkpoints (seeded weights, the real key names and text-encoder formats, written by the host's own
writer, loaded by its CheckpointLoaderSimple and detected by it as test-only classes deriving from its stock SD15 and
SD20), plus an SD2.x 768-v checkpoint the stock SD20 rule finds to be v-prediction. Every entry point (TCD Sampler,
SamplerTCD + TCD Scheduler in SamplerCustom and in SamplerCustomAdvanced, the stock KSampler 'tcd', TCD Gamma Sweep)
gives the same latent, bit for bit, and it matches diffusers' TCDScheduler driving the same host model with the same
noise (tcd_reference.host_reference; the SDXL-shaped model: tests/test_host_parity.py)."""
import functools

import pytest
import torch

import tcd_figures
import tcd_prompts as prompts
from tcd_reference import host_reference, make_scheduler, rel_max_err

pytestmark = pytest.mark.host

SD_FULL = {"context_dim": 768}, {"use_linear_in_transformer": True, "context_dim": 1024}  # SD1.5, SD2 at full width
# What the host must make of each small checkpoint: its class (and the stock class it derives from), the model type
# and prediction, the full-width layout whose UNet key names it must have, and the prefix of its text encoder's keys
# (SD1.5: the transformers CLIP-L format; SD2: the OpenCLIP format).
FAMILIES = {
    "sd15": {"config": "TinySD15", "stock": "SD15", "prediction": "epsilon", "full": SD_FULL[0],
             "text_keys": "cond_stage_model.transformer.text_model.encoder.layers."},
    "sd20": {"config": "TinySD20", "stock": "SD20", "prediction": "epsilon", "full": SD_FULL[1],
             "text_keys": "cond_stage_model.model.transformer.resblocks."},
    "sd20-v": {"config": "TinySD20", "stock": "SD20", "prediction": "v_prediction", "full": SD_FULL[1],
               "text_keys": "cond_stage_model.model.transformer.resblocks."},
}
STEPS = 4
CASES = [(fam, gamma, cfg) for fam in ("sd15", "sd20") for gamma, cfg in ((0.0, 1.0), (0.3, 1.0), (1.0, 1.0),
                                                                           (0.3, 2.5))]
CASES.append(("sd20-v", 0.3, 1.0))
SWEEP = (0.0, 0.3, 1.0)  # 768-v: one setting (v-prediction over all settings: the SDXL-shaped model)
# relative max error against diffusers: 3x the worst measured (1.22e-6, SD2.x base, the same on both hosts)
BOUND = 3.7e-6
# the host's sigmas against the float64 schedule: 2.6x the measured 1.9e-7 (both hosts, all three checkpoints)
SCHEDULE_BOUND = 5e-7
ERRORS = {}  # (family, path, gamma, cfg) -> relative max error
DETECTED = {}  # family -> what the host made of the small checkpoint


class Checkpoint:
    """One small checkpoint in the host: built once, and each entry point's latent, run once per setting."""

    def __init__(self, host, family):
        import tcd_test_models
        self.host, self.family = host, family
        self.name = f"tiny_{family}_0.safetensors"
        self.path = host.models / "checkpoints" / self.name
        if not self.path.exists():
            tcd_test_models.build_sd_checkpoint(str(self.path), family, seed=0)
        self._runs = {}

    def run(self, path, gamma, cfg):
        """The latent one entry point gives (``gamma``: a tuple of gammas for the sweep), run once."""
        key = (path, gamma, cfg)
        if key not in self._runs:
            nodes, out = prompts.entry_point(path, gamma, STEPS, cfg)
            self._runs[key] = self.host.run_latent({**prompts.base_graph(self.name), **nodes}, out)
        return self._runs[key]


@pytest.fixture(scope="module")
def checkpoints(host):
    """family -> its Checkpoint, one per module: each small checkpoint is built once and sampled once per setting."""
    return functools.cache(lambda family: Checkpoint(host, family))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_host_detects_the_small_checkpoint(host, checkpoints, family):
    import comfy.model_base
    import comfy.model_sampling
    import comfy.supported_models
    import safetensors

    import tcd_test_models
    spec, ckpt = FAMILIES[family], checkpoints(family)
    model, clip, vae = host.call("CheckpointLoaderSimple", ckpt_name=ckpt.name)
    config, ms = model.model.model_config, model.get_model_object("model_sampling")
    assert type(config).__name__ == spec["config"]
    assert isinstance(config, getattr(comfy.supported_models, spec["stock"]))
    v = spec["prediction"] == "v_prediction"
    assert model.model.model_type == (comfy.model_base.ModelType.V_PREDICTION if v else comfy.model_base.ModelType.EPS)
    assert isinstance(ms, comfy.model_sampling.ModelSamplingDiscrete)
    assert isinstance(ms, comfy.model_sampling.V_PREDICTION) == v and isinstance(ms, comfy.model_sampling.EPS)
    # the training schedule: diffusers' scaled_linear 0.00085..0.012 betas over 1000 steps (accumulated in float64:
    # diffusers' own float32 product drifts by 1.3e-5; a beta_end off by 0.1 % moves the sigmas by 2.3e-3)
    ac = torch.cumprod(1 - make_scheduler(spec["prediction"]).betas.double(), 0)
    want = ((1 - ac) / ac).sqrt()
    sched_err = float(((ms.sigmas.double() - want).abs() / want).max())
    assert ms.sigmas.shape == want.shape and sched_err <= SCHEDULE_BOUND, sched_err
    # the real key names: the UNet's are those of the stock class at full width (built on the meta device)
    full = dict(tcd_test_models.SD15_UNET, **spec["full"])
    stock = getattr(comfy.supported_models, spec["stock"])(full).get_model({}, device=torch.device("meta"))
    with safetensors.safe_open(str(ckpt.path), "pt") as f:
        keys = set(f.keys())
    unet = {k.removeprefix("model.diffusion_model.") for k in keys if k.startswith("model.diffusion_model.")}
    assert unet == set(stock.diffusion_model.state_dict()), sorted(unet ^ set(stock.diffusion_model.state_dict()))[:5]
    assert any(k.startswith(spec["text_keys"]) for k in keys)
    assert clip is not None and vae is not None
    DETECTED[family] = (f"{type(config).__name__} (test-only, derives from {spec['stock']}), "
                        f"{model.model.model_type.name}, {type(ms).__mro__[1].__name__} "
                        f"(scaled_linear 0.00085..0.012: sigmas within {sched_err:.1e} of diffusers'), "
                        f"{len(unet)} UNet keys as {spec['stock']}'s")


@pytest.mark.parametrize("family,gamma,cfg", CASES)
def test_entry_points_agree_and_match_diffusers(host, checkpoints, family, gamma, cfg):
    ckpt = checkpoints(family)
    paths = ["TCDKSampler", "SamplerCustom", "SamplerCustomAdvanced"]
    if gamma == 0.3:  # the stock sampler 'tcd' runs at its default gamma 0.3
        paths.append("KSampler tcd/tcd")
    ours = {path: ckpt.run(path, gamma, cfg) for path in paths}
    first = ours["TCDKSampler"]
    assert first.shape == (1, 4, 8, 8) and torch.isfinite(first).all() and first.abs().max() > 0.1
    ref = host_reference(host, ckpt.name, gamma, STEPS, cfg, 1.0, prediction_type=FAMILIES[family]["prediction"])
    for path, lat in ours.items():
        assert torch.equal(lat, first), f"{family}: {path} differs from TCDKSampler"
        err = ERRORS[(family, path, gamma, cfg)] = rel_max_err(lat, ref)
        assert err <= BOUND, f"{family} {path} gamma {gamma} cfg {cfg}: relative max error {err:.3g}"


@pytest.mark.parametrize("family", ["sd15", "sd20"])
def test_gamma_sweep_equals_single_runs(checkpoints, family):
    """TCD Gamma Sweep's rows are TCD Sampler's latents at each gamma (so they match diffusers as those do)."""
    ckpt = checkpoints(family)
    swept = ckpt.run("TCDGammaSweep", SWEEP, 1.0)
    assert swept.shape[0] == len(SWEEP)
    for i, gamma in enumerate(SWEEP):
        assert torch.equal(swept[i:i + 1], ckpt.run("TCDKSampler", gamma, 1.0)), f"{family}: sweep row {i}"


@tcd_figures.reporter("SD1.5 / SD2.x THROUGH THE HOST vs diffusers TCDScheduler (worst relative max error per path)")
def report():
    from tcd_host import host_version
    if not ERRORS and not DETECTED:
        return []
    lines = [f"ComfyUI {host_version()}, {STEPS} steps, seed {prompts.SEED}, 64x64:"]
    for fam in FAMILIES:
        if fam in DETECTED:
            lines.append(f"{fam}: the host detects {DETECTED[fam]}")
        for path in sorted({k[1] for k in ERRORS if k[0] == fam}):
            got = [(e, k[2], k[3]) for k, e in ERRORS.items() if k[:2] == (fam, path)]
            settings = ", ".join(f"{g:g}/{c:g}" for _, g, c in sorted(got, key=lambda x: x[1:]))
            lines.append(f"  {path:22s} {max(got)[0]:.2e} (gamma/cfg {settings})")
    return lines
