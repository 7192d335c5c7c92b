"""TCD on the host's other flow families: small Qwen-Image-, Wan 2.1 T2V-, Wan 2.2 TI2V 5B-, Lumina 2-, Z-Image- and
AuraFlow-shaped models (seeded weights, the real key names, saved and loaded by the host's UNETLoader, detected by
the host), sampled on the latents of the host's own nodes (5-D for Qwen-Image and Wan). Every entry point (TCD
Sampler, SamplerTCD + TCD Scheduler in SamplerCustom and in SamplerCustomAdvanced, the stock KSampler 'tcd', TCD Gamma
Sweep) gives the same latent, bit for bit, and it matches the float64 flow equations and diffusers'
FlowMatchEulerDiscreteScheduler at gamma 0 and 1, same noise stream, driving the same host model (SD3 and Flux:
tests/test_flow_host.py). Then what a 5-D latent touches in the pack: a batch in a sweep, a per-frame noise mask, live
previews and the first-step cache."""
import pytest
import torch

import tcd_figures
import tcd_prompts as prompts
from tcd_prompts import SEED
from tcd_reference import flow_host_reference, rel_max_err

pytestmark = pytest.mark.host

# What the host must make of each small model: its supported-model class (and the stock class it is or derives from),
# its sampling class and shift, its latent format's channels, the text width of its conditioning, the host's latent
# node its template uses, and the dimensions of the latent it samples.
VIDEO, SD3_LATENT, SDXL_LATENT = "EmptyHunyuanLatentVideo", "EmptySD3LatentImage", "EmptyLatentImage"
FLOW, FLUX = "ModelSamplingDiscreteFlow", "ModelSamplingFlux"
FAMILIES = {
    "qwen_image": {"config": "TinyQwenImage", "stock": "QwenImage", "sampling": FLUX, "shift": 1.15, "channels": 16,
                   "text": 48, "latent": SD3_LATENT, "ndim": 5},
    "wan2.1": {"config": "WAN21_T2V", "stock": "WAN21_T2V", "sampling": FLOW, "shift": 8.0, "channels": 16,
               "text": "WAN_TEXT_DIM", "latent": VIDEO, "ndim": 5},
    "wan2.2-5b": {"config": "WAN22_T2V", "stock": "WAN22_T2V", "sampling": FLOW, "shift": 8.0, "channels": 48,
                  "text": "WAN_TEXT_DIM", "latent": VIDEO, "ndim": 5},
    # as the host's own Qwen-Image template runs it: its sampling replaced by ModelSamplingAuraFlow, shift 3.1
    "qwen_image+ModelSamplingAuraFlow": {"config": "TinyQwenImage", "stock": "QwenImage", "sampling": FLOW,
                                         "shift": 3.1, "channels": 16, "text": 48, "latent": SD3_LATENT, "ndim": 5},
    "lumina2": {"config": "TinyLumina2", "stock": "Lumina2", "sampling": FLOW, "shift": 6.0, "channels": 16,
                "text": 48, "latent": SD3_LATENT, "ndim": 4},
    "z_image": {"config": "TinyZImage", "stock": "ZImage", "sampling": FLOW, "shift": 3.0, "channels": 16,
                "text": 48, "latent": SD3_LATENT, "ndim": 4},
    "auraflow": {"config": "TinyAuraFlow", "stock": "AuraFlow", "sampling": FLOW, "shift": 1.73, "channels": 4,
                 "text": 48, "latent": SDXL_LATENT, "ndim": 4},
}
STEPS, CFG = 4, 1.0  # cfg above 1 on flow models: tests/test_flow_host.py
GAMMAS = (0.0, 1.0, 0.3)
SWEEP = (0.0, 0.3, 1.0)
BOUND = 9e-7  # relative max error against either reference: 3x the worst measured (2.95e-7, Z-Image, both hosts)
ERRORS = {}  # (family, path, reference, gamma) -> relative max error
DETECTED = {}  # family -> what the host made of the small model
SHAPES = {}  # family -> the shape of the latent the host samples


class Family:
    """One small model in the host: its prompt graph, and each entry point's result, run once per setting."""

    def __init__(self, host, name):
        import tcd_test_models
        self.host, self.name, self.spec = host, name, FAMILIES[name]
        text = self.spec["text"]
        self.text_dim = getattr(tcd_test_models, text) if isinstance(text, str) else text
        self.unet = host.flow_model(name.split("+")[0])
        self.model = ("flow", 0) if "+" in name else ("ckpt", 0)  # 'family+Node': the model through that node
        self._runs, self._refs = {}, {}

    def graph(self, batch=1):
        """The small model, its test conditioning and the empty latent of the host's node for this family."""
        if self.spec["latent"] == VIDEO:
            g = prompts.video_flow_graph(self.unet, self.text_dim, batch=batch)
        else:
            g = prompts.flow_graph(self.unet, batch=batch)
            g["latent"]["class_type"] = self.spec["latent"]  # EmptyLatentImage and EmptySD3LatentImage: same inputs
        if "+" in self.name:
            g["flow"] = {"class_type": self.name.split("+")[1], "inputs": {"model": ["ckpt", 0],
                                                                         "shift": self.spec["shift"]}}
        return g

    def run(self, path, gamma, batch=1):
        """The latent one entry point gives at this gamma (a tuple of gammas for the sweep), run once."""
        key, m = (path, gamma, batch), self.model
        if key not in self._runs:
            if path == "TCDKSampler":
                nodes, out = {"ks": prompts.tcd_ksampler(gamma, STEPS, CFG, model=m)}, ["ks", 0]
            elif path == "SamplerCustom":
                nodes, out = prompts.custom_nodes(gamma, STEPS, CFG, model=m), ["sample", 0]
            elif path == "SamplerCustomAdvanced":
                nodes, out = prompts.custom_advanced_nodes(gamma, STEPS, CFG, model=m), ["sample", 0]
            elif path == "KSampler tcd/tcd":
                nodes, out = {"ks": prompts.stock_ksampler(STEPS, CFG, model=m)}, ["ks", 0]
            else:
                gammas = ", ".join(f"{x:g}" for x in gamma)
                nodes, out = {"sw": prompts.gamma_sweep(gammas, STEPS, CFG, model=m)}, ["sw", 0]
            self._runs[key] = self.host.run_latent({**self.graph(batch), **nodes}, out)
        return self._runs[key]

    def reference(self, gamma, equations, shape):
        """flow_host_reference on this model at this gamma (the float64 equations or diffusers), run once."""
        key = (gamma, equations, tuple(shape))
        if key not in self._refs:
            g = {**self.graph(), "sigmas": prompts.custom_nodes(gamma, STEPS, CFG, model=self.model)["sigmas"]}
            self._refs[key] = flow_host_reference(self.host, g, self.model, gamma, STEPS, CFG, SEED, equations,
                                                  shape)
        return self._refs[key]

    def model_and_conds(self):
        return self.host.run_nodes(self.graph(), [self.model, ("pos", 0), ("neg", 0), ("latent", 0)])


@pytest.fixture(scope="module")
def families(host):
    """family name -> Family, one per module: each small model is built, loaded and sampled once per setting."""
    made = {}

    def get(name):
        if name not in made:
            made[name] = Family(host, name)
        return made[name]
    return get


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, families):
    return families(request.param)


def test_the_host_detects_the_small_model(family):
    import comfy.model_sampling
    import comfy.supported_models
    model, *_ = family.model_and_conds()
    config = model.model.model_config
    ms = model.get_model_object("model_sampling")
    spec = family.spec
    assert type(config).__name__ == spec["config"]
    assert isinstance(config, getattr(comfy.supported_models, spec["stock"]))
    assert isinstance(ms, getattr(comfy.model_sampling, spec["sampling"]))
    assert isinstance(ms, comfy.model_sampling.CONST)
    assert ms.shift == pytest.approx(spec["shift"])
    assert config.latent_format.latent_channels == spec["channels"]
    stock = "" if spec["config"] == spec["stock"] else f" (test-only, derives from {spec['stock']})"
    patched = f" (through {family.name.split('+')[1]})" if "+" in family.name else ""
    DETECTED[family.name] = (f"{type(config).__name__}{stock}, {spec['sampling']}{patched} shift {ms.shift:g}, "
                             f"latent {type(config.latent_format).__name__} ({spec['channels']} channels)")


REFERENCES = {"float64 equations": True, "diffusers": False}  # name -> flow_host_reference's ``equations``


def check_against_references(family, path, gamma, lat):
    """Record and bound ``lat``'s error against each reference that has this gamma (diffusers: 0 and 1 only)."""
    for ref_name, equations in REFERENCES.items():
        if equations or gamma in (0.0, 1.0):
            err = rel_max_err(lat, family.reference(gamma, equations, lat.shape))
            ERRORS[(family.name, path, ref_name, gamma)] = err
            assert err <= BOUND, f"{family.name} {path} gamma {gamma}: relative max error {err:.3g} against {ref_name}"


@pytest.mark.parametrize("gamma", GAMMAS)
def test_entry_points_agree_and_match_the_references(family, gamma):
    paths = ["TCDKSampler", "SamplerCustom", "SamplerCustomAdvanced"]
    if gamma == 0.3:  # the stock sampler 'tcd' runs at its default gamma 0.3
        paths.append("KSampler tcd/tcd")
    ours = {p: family.run(p, gamma) for p in paths}
    first = ours["TCDKSampler"]
    assert (first.ndim, first.shape[1]) == (family.spec["ndim"], family.spec["channels"]), first.shape
    SHAPES[family.name] = list(first.shape)
    assert torch.isfinite(first).all() and first.abs().max() > 0.1
    for path, lat in ours.items():
        assert torch.equal(lat, first), f"{family.name}: {path} differs from TCDKSampler"
        check_against_references(family, path, gamma, lat)


def test_gamma_sweep_equals_single_runs_and_the_references(family):
    swept = family.run("sweep", SWEEP)
    assert swept.shape[0] == len(SWEEP)
    for i, gamma in enumerate(SWEEP):
        assert torch.equal(swept[i:i + 1], family.run("TCDKSampler", gamma)), \
            f"{family.name}: sweep result {i} (gamma {gamma}) differs from TCD Sampler"
        check_against_references(family, "TCDGammaSweep", gamma, swept[i:i + 1])


# -- what else a 5-D latent touches in the pack ---------------------------------------------------------------------
def test_a_sweep_over_a_batch_of_videos_equals_batch_runs(families):
    fam = families("wan2.2-5b")
    swept = fam.run("sweep", (0.3, 1.0), batch=2)
    assert swept.shape[0] == 4 and swept.ndim == 5
    for i, gamma in enumerate((0.3, 1.0)):  # gamma-major: rows 2i, 2i+1 are gamma i's two videos
        single = fam.run("TCDKSampler", gamma, batch=2)
        assert not torch.equal(single[0], single[1])  # each video of the batch has its own noise
        assert torch.equal(swept[2 * i:2 * i + 2], single), f"gamma {gamma}"


def host_reads_empty_latent_hints() -> bool:
    """Whether this host's samplers fit an empty latent by the downscale ratio its node recorded (v0.33.0)."""
    import inspect

    import comfy.sample
    return "downscale_ratio_spacial" in inspect.signature(comfy.sample.fix_empty_latent_channels).parameters


def tcd_call(host, model, pos, neg, latent, gamma=0.3):
    """TCD Sampler's node function called directly: its output LATENT."""
    return host.call("TCDKSampler", model=model, seed=SEED, steps=STEPS, cfg=CFG, gamma=gamma, scheduler="tcd",
                     positive=pos, negative=neg, latent_image=latent, denoise=1.0)[0]


def test_a_per_frame_noise_mask_keeps_its_frames_as_the_hosts_sampler_does(families, host):
    fam = families("wan2.2-5b")  # Wan 2.2 TI2V: the first frame kept (mask 0), its timestep 0 in the model
    model, pos, neg, empty = fam.model_and_conds()
    shape = fam.run("TCDKSampler", 0.3).shape
    samples = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    mask = torch.ones(shape[0], 1, *shape[2:])
    mask[:, :, 0] = 0.0
    latent = {**empty, "samples": samples, "noise_mask": mask}  # with the empty latent node's other entries
    ours = tcd_call(host, model, pos, neg, latent)
    stock = host.call("KSampler", model=model, seed=SEED, steps=STEPS, cfg=CFG, sampler_name="tcd", scheduler="tcd",
                      positive=pos, negative=neg, latent_image=latent, denoise=1.0)[0]
    assert ours.keys() == stock.keys()  # the host drops an empty latent's size hints (v0.33.0) from its output
    ours, stock = ours["samples"], stock["samples"]
    assert torch.equal(ours, stock)
    # the kept frame: the input, up to the rounding of the latent format's scaling in and out (6.5e-8 measured)
    assert rel_max_err(ours[:, :, 0], samples[:, :, 0]) <= 2e-7
    assert (ours[:, :, 1:] - samples[:, :, 1:]).abs().max() > 0.1  # the others sampled


def test_the_wan22_templates_latent_node(families, host):
    """Wan22ImageToVideoLatent (the host's Wan 2.2 TI2V 5B template's node: 48 channels, 16x smaller, no start image,
    so no VAE needed) through TCD Sampler and the stock KSampler 'tcd'; where the host reads an empty latent's hints
    (v0.33.0), the same video as from EmptyHunyuanLatentVideo, which the host fits to the same size."""
    fam = families("wan2.2-5b")
    model, pos, neg, _ = fam.model_and_conds()
    (latent,) = host.call("Wan22ImageToVideoLatent", vae=None, width=64, height=64, length=5, batch_size=1)
    ours = tcd_call(host, model, pos, neg, latent)["samples"]
    stock = host.call("KSampler", model=model, seed=SEED, steps=STEPS, cfg=CFG, sampler_name="tcd", scheduler="tcd",
                      positive=pos, negative=neg, latent_image=latent, denoise=1.0)[0]["samples"]
    assert ours.shape == (1, 48, 2, 4, 4) and torch.equal(ours, stock)
    from_video_node = fam.run("TCDKSampler", 0.3)
    if host_reads_empty_latent_hints():
        assert torch.equal(ours, from_video_node)
    else:  # v0.3.75 fits EmptyHunyuanLatentVideo's zeros by channels only: an 8x latent
        assert from_video_node.shape == (1, 48, 2, 8, 8)


def test_live_previews(family, host, monkeypatch):
    import comfy.cli_args
    import comfy.utils
    previews = []
    monkeypatch.setattr(comfy.cli_args.args, "preview_method", comfy.cli_args.LatentPreviewMethod.Latent2RGB)
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview, node_id=None:
                        previews.append((value, total, preview)))
    model, pos, neg, latent = family.model_and_conds()
    out = tcd_call(host, model, pos, neg, latent)["samples"]
    assert [(v, t) for v, t, _ in previews] == [(i, STEPS) for i in range(1, STEPS + 1)]
    images = [p[1] for _, _, p in previews]  # ("JPEG", image, max size), decoded by the host's previewer
    assert all(img.size == (out.shape[-1], out.shape[-2]) for img in images), [img.size for img in images]
    assert len({img.tobytes() for img in images}) == STEPS  # one picture per step, each of that step's prediction


def test_first_step_cache_on_a_video_latent(families, host, monkeypatch):
    """A gamma-only re-run reuses the first model call and gives the uncached latent; the same zeros without the
    empty-latent node's hints (v0.33.0: the downscale ratio, by which the host halves a Wan 2.2 latent) are another
    latent to the host, and so to the cache."""
    fam = families("wan2.2-5b")
    model, pos, neg, latent = fam.model_and_conds()
    calls = []
    counted = model.clone()
    counted.set_model_unet_function_wrapper(
        lambda apply, a: calls.append(1) or apply(a["input"], a["timestep"], **a["c"]))

    def run(gamma, lat, cache=True):
        calls.clear()
        with monkeypatch.context() as m:
            if not cache:
                m.setenv("TCD_FIRST_STEP_CACHE", "0")
            out = tcd_call(host, counted, pos, neg, lat, gamma)["samples"]
        return len(calls), out

    n, uncached = run(0.7, latent, cache=False)
    assert n == STEPS
    assert run(0.3, latent)[0] == STEPS
    n, cached = run(0.7, latent)
    assert n == STEPS - 1 and torch.equal(cached, uncached)
    bare = {"samples": latent["samples"]}
    _, want = run(0.7, bare, cache=False)
    n, got = run(0.7, bare)
    assert torch.equal(got, want)
    if host_reads_empty_latent_hints():
        assert got.shape != cached.shape and n == STEPS  # another latent: no hit
    else:
        assert got.shape == cached.shape and n == STEPS - 1  # the same latent: a hit


@tcd_figures.reporter("FLOW FAMILIES THROUGH THE HOST (worst relative max error per path)")
def report():
    from tcd_host import host_version
    if not ERRORS:
        return []
    lines = [f"ComfyUI {host_version()}, {STEPS} steps, cfg {CFG:g}, seed {SEED}:"]
    for fam in FAMILIES:
        if fam in DETECTED:
            lines.append(f"{fam}: the host detects {DETECTED[fam]}; samples {SHAPES.get(fam, '?')}")
        for path in sorted({k[1] for k in ERRORS if k[0] == fam}):
            parts = []
            for ref in ("diffusers", "float64 equations"):
                got = [(e, k[3]) for k, e in ERRORS.items() if k[:3] == (fam, path, ref)]
                if got:
                    parts.append(f"vs {ref} {max(got)[0]:.2e} (gammas {', '.join(sorted({f'{g:g}' for _, g in got}))})")
            lines.append(f"  {path:22s} " + "; ".join(parts))
    return lines
