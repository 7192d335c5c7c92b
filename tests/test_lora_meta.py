"""Full-size layouts without memory: the host's real SDXL and SD1.5 UNets and its SD3.5 large, SD3.5 medium and
Flux-dev transformers built on the ``meta`` device, rank-1 LoRA files in every key format for each (UNets: the TCD LoRA
layout, diffusers ``unet.…lora.down`` and kohya ``lora_unet_``; transformers: every weight a LoRA can change, in each
spelling the host maps), checked by the loader's planner: 100% of the modules map for the right base (each to the
weight, q/k/v slice or swapped modulation the host's own map names), a clear refusal naming both families for the
wrong one, its family first. (Qwen-Image, Wan and the refusal matrix across all families: test_lora_families.py.)
"""
import sys

import pytest
import safetensors.torch
import torch

import tcd_figures
import tcd_lora_files as F
import tcd_meta_models as MM

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def meta_models(host):
    return {fam: MM.build(fam) for fam in ("SDXL", "SD1.5")}


@pytest.fixture(scope="module")
def keys_mod(host):
    lora = sys.modules[host.nodes.NODE_CLASS_MAPPINGS["TCDLoraLoader"].__module__]
    return sys.modules[lora.__name__.rsplit(".", 1)[0] + ".lora_keys"]


@pytest.fixture(scope="module")
def tcd_files(host, meta_models, tmp_path_factory):
    """Rank-1 fp16 LoRAs in the TCD LoRA layout for each base (a few MB each; the shapes are the real ones)."""
    d = tmp_path_factory.mktemp("meta_loras")
    files = {}
    for fam, model in meta_models.items():
        for fmt in ("diffusers_lora_down", "kohya_diffusers"):
            unet_name, _te, dsuf, usuf, _alpha = F.FORMATS[fmt]
            sd = {}
            for dn, ln, shape, _key in F.unet_targets(model):
                name = unet_name(dn, ln)
                sd[name + dsuf] = torch.zeros((1, *shape[1:]), dtype=torch.float16)
                sd[name + usuf] = torch.zeros((shape[0], 1, *([1] * (len(shape) - 2))), dtype=torch.float16)
            path = d / f"tcd_{fam}_{fmt}.safetensors"
            safetensors.torch.save_file(sd, str(path))
            files[fam, fmt] = (str(path), len(sd) // 2)
    return files


def test_full_size_layouts_are_real(meta_models):
    # SDXL: 1680 UNet keys; SD1.5: 686 (the host's real layouts, not a tiny stand-in)
    n = {fam: sum(k.startswith("diffusion_model.") for k in m.state_dict()) for fam, m in meta_models.items()}
    assert n["SDXL"] == 1680 and n["SD1.5"] == 686, n
    assert next(iter(meta_models["SDXL"].state_dict().values())).device.type == "meta"


@pytest.mark.parametrize("fmt", ["diffusers_lora_down", "kohya_diffusers"])
@pytest.mark.parametrize("fam", ["SDXL", "SD1.5"])
def test_tcd_layout_full_coverage_on_its_base(meta_models, keys_mod, tcd_files, fam, fmt):
    path, n_modules = tcd_files[fam, fmt]
    assert n_modules == {"SDXL": 788, "SD1.5": 278}[fam]  # TCD/LCM target modules: counted independently below
    header = keys_mod.read_header(path)
    plan = keys_mod.plan_lora(header, meta_models[fam], None, name=f"TCD-{fam}")
    assert plan.counts()["unet"] == (n_modules, n_modules)
    keys_mod.check_plan(plan, {"unet", "other"})  # does not raise
    assert plan.lora_family.startswith(fam)
    assert plan.model_family.startswith(fam)
    report = keys_mod.make_report(plan, 1.0, None, {"UNet weights": n_modules})
    assert f"UNet {n_modules}/{n_modules} modules matched (100%)" in report
    assert f"LoRA base {fam} (cross-attention width {2048 if fam == 'SDXL' else 768})" in report


@pytest.mark.parametrize("lora_fam,model_fam", [("SD1.5", "SDXL"), ("SDXL", "SD1.5")])
@pytest.mark.parametrize("fmt", ["diffusers_lora_down", "kohya_diffusers"])
def test_wrong_base_refused(meta_models, keys_mod, tcd_files, lora_fam, model_fam, fmt):
    path, n_modules = tcd_files[lora_fam, fmt]
    plan = keys_mod.plan_lora(keys_mod.read_header(path), meta_models[model_fam], None, name=f"TCD-{lora_fam}")
    with pytest.raises(keys_mod.TCDLoraError) as ei:
        keys_mod.check_plan(plan, {"unet", "other"})
    msg = str(ei.value)
    # the family decides and comes first (it used to follow the unmatched modules); what else is wrong follows
    assert msg.startswith(f"'TCD-{lora_fam}' does not fit this model: the LoRA looks like {lora_fam} "
                          f"(cross-attention width"), msg
    assert f"; the model is {model_fam} (cross-attention width" in msg and ", another family. Also, " in msg, msg
    assert f"of {n_modules} UNet modules match" in msg or "wrong shape" in msg
    assert "Nothing was applied" in msg
    matched, total = plan.counts()["unet"]
    assert matched < total == n_modules


def test_module_counts_are_the_tcd_targets(meta_models):
    # independent count of the LCM/TCD training targets in each real UNet, from the diffusers block structure:
    # SDXL: 70 transformer blocks x (4+4 attention + 2 ff) + 11 transformers x (proj_in, proj_out) + resnets + samplers
    sdxl = F.unet_targets(meta_models["SDXL"])
    blocks = {d.rsplit(".attn", 1)[0] for d, *_ in sdxl if ".attn1." in d}
    assert len(blocks) == 70
    sd15 = F.unet_targets(meta_models["SD1.5"])
    assert len({d.rsplit(".attn", 1)[0] for d, *_ in sd15 if ".attn1." in d}) == 16


# -- rectified-flow transformers: SD3.5 large, SD3.5 medium, Flux-dev -------------------------------------------------
FLOW_LABEL = {"Flux-dev": "Flux (hidden width 3072)", "SD3.5 large": "SD3.5 large (hidden width 2432)",
              "SD3.5 medium": "SD3.5 medium (hidden width 1536)"}
FORMAT_LABEL = {"kohya": "kohya", "comfy_ldm": "LDM (diffusion_model.)", "diffusers": "diffusers",
                "diffusers_lora_down": "diffusers", "peft": "PEFT", "onetrainer": "OneTrainer", "lycoris": "LyCORIS",
                "unprefixed": "unprefixed", "comfy_linear1_qkv": "LDM (diffusion_model.)"}
FLOW_CASES = [(fam, fmt) for fam in FLOW_LABEL for fmt in FORMAT_LABEL
              if F.FLOW_FORMATS[fmt][0] != "ldm_qkv" or fam == "Flux-dev"]


@pytest.fixture(scope="module")
def flow_models(host):
    return {fam: MM.build(fam) for fam in FLOW_LABEL}


def n_flow_modules(fam, kind):
    """Modules of a full LoRA, counted from the published block structure (not from the host's tables)."""
    if fam == "Flux-dev":  # per double / single block, + 10 embedder and final linears
        double, single = {"ldm": (10, 3), "ldm_qkv": (10, 3), "diffusers": (14, 6)}[kind]
        return 19 * double + 38 * single + 10
    depth, attn2 = {"SD3.5 large": (38, 0), "SD3.5 medium": (24, 13)}[fam]
    # a joint block: image + context stream (ldm: modulation, qkv, proj, 2 mlp each; diffusers: modulation, q, k, v,
    # out, 2 ff each); the last context stream has only modulation and q/k/v; SD3.5 medium's second attention:
    # qkv + proj (diffusers q, k, v, out); + 8 embedder and final weights
    block, last, second = {"ldm": (10, 7, 2), "diffusers": (14, 11, 4)}[kind]
    return (depth - 1) * block + last + attn2 * second + 8


@pytest.fixture(scope="module")
def flow_files(host, flow_models, tmp_path_factory):
    """Rank-1 fp16 LoRAs covering every changeable weight of each full-size transformer, one per key format."""
    d = tmp_path_factory.mktemp("meta_flow_loras")
    files = {}
    for fam, fmt in FLOW_CASES:
        sd, expected = F.make_flow_lora(fmt, flow_models[fam], rank=1, dtype=torch.float16, seed=1)
        path = d / f"{fam.replace(' ', '_')}_{fmt}.safetensors"
        safetensors.torch.save_file(sd, str(path))
        files[fam, fmt] = (str(path), {n: e[:3] for n, e in expected.items()})
    return files


def test_full_size_flow_layouts_are_real(flow_models):
    # the host's real transformers: Flux-dev's 780 tensors and 11,901,408,320 parameters, SD3.5 large's 8.1 billion
    # and SD3.5 medium's 2.5 billion (as published), on the meta device
    sds = {fam: {k: v for k, v in m.state_dict().items() if k.startswith("diffusion_model.")}
           for fam, m in flow_models.items()}
    params = {fam: sum(v.numel() for v in sd.values()) for fam, sd in sds.items()}
    assert len(sds["Flux-dev"]) == 780 and params["Flux-dev"] == 11_901_408_320, params
    assert round(params["SD3.5 large"] / 1e8) == 81 and round(params["SD3.5 medium"] / 1e8) == 25, params
    blocks = {fam: {k.split(".")[2] for k in sd if ".joint_blocks." in k} for fam, sd in sds.items()}
    assert len(blocks["SD3.5 large"]) == 38 and len(blocks["SD3.5 medium"]) == 24
    assert sum(k.endswith("x_block.attn2.qkv.weight") for k in sds["SD3.5 medium"]) == 13
    assert not any(".attn2." in k for k in sds["SD3.5 large"])
    assert all(v.device.type == "meta" for v in sds["Flux-dev"].values())


@pytest.mark.parametrize("fam,fmt", FLOW_CASES, ids=[f"{a}-{b}" for a, b in FLOW_CASES])
def test_flow_layout_full_coverage_on_its_base(flow_models, keys_mod, flow_files, fam, fmt):
    path, expected = flow_files[fam, fmt]
    n = n_flow_modules(fam, F.FLOW_FORMATS[fmt][0])
    assert len(expected) == n
    plan = keys_mod.plan_lora(keys_mod.read_header(path), flow_models[fam], None, name=f"{fam}-{fmt}")
    assert plan.counts() == {"unet": (n, n)}
    keys_mod.check_plan(plan, {"unet", "other"})  # does not raise
    # every module on the weight (or q/k/v rows, or swapped scale/shift rows) the writer took from the host's layout
    for name, (key, rows, swapped) in expected.items():
        t = plan.modules[name].target
        assert (t if isinstance(t, str) else t[0]) == key, name
        assert (t[1] if isinstance(t, tuple) and t[1] is not None else None) == ((0, *rows) if rows else None), name
        assert (isinstance(t, tuple) and len(t) > 2) == swapped, name
    assert plan.lora_family == FLOW_LABEL[fam]
    assert plan.model_family == FLOW_LABEL[fam]
    report = keys_mod.make_report(plan, 1.0, None, {"transformer weights": n})
    assert f"transformer {n}/{n} modules matched (100%)" in report
    assert f"LoRA base {FLOW_LABEL[fam]}; model {FLOW_LABEL[fam]}" in report
    assert f"Format {FORMAT_LABEL[fmt]}" in report, report
    COVERAGE[fam, fmt] = f"{n}/{n}"


COVERAGE = {}
# (LoRA base, format) -> model: across UNet and transformer, between Flux and SD3.5, between SD3.5 sizes
FLOW_WRONG = [(("SDXL", "kohya_diffusers"), "Flux-dev"), (("SDXL", "diffusers_lora_down"), "SD3.5 large"),
              (("Flux-dev", "kohya"), "SDXL"), (("Flux-dev", "diffusers"), "SDXL"),
              (("Flux-dev", "kohya"), "SD3.5 large"), (("Flux-dev", "diffusers"), "SD3.5 large"),
              (("Flux-dev", "peft"), "SD3.5 medium"),
              (("SD3.5 large", "kohya"), "Flux-dev"), (("SD3.5 large", "diffusers"), "Flux-dev"),
              (("SD3.5 medium", "onetrainer"), "Flux-dev"),
              (("SD3.5 medium", "diffusers"), "SD3.5 large"), (("SD3.5 large", "kohya"), "SD3.5 medium")]
LABEL = {**FLOW_LABEL, "SDXL": "SDXL (cross-attention width 2048)", "SD1.5": "SD1.5 (cross-attention width 768)"}


@pytest.mark.parametrize("lora,model_fam", FLOW_WRONG, ids=[f"{a}-{b}-on-{m}" for (a, b), m in FLOW_WRONG])
def test_flow_wrong_base_refused(meta_models, flow_models, keys_mod, tcd_files, flow_files, lora, model_fam):
    models = {**meta_models, **flow_models}
    path, n = tcd_files[lora] if lora in tcd_files else (flow_files[lora][0], len(flow_files[lora][1]))
    name = f"{lora[0]}-{lora[1]}"
    plan = keys_mod.plan_lora(keys_mod.read_header(path), models[model_fam], None, name=name)
    with pytest.raises(keys_mod.TCDLoraError) as ei:
        keys_mod.check_plan(plan, {"unet", "other"})
    msg = str(ei.value)
    part = "UNet" if lora[0] in meta_models else "transformer"  # what the LoRA's modules are
    # the family first (it used to follow the unmatched modules), then the unmatched modules
    assert msg.startswith(f"'{name}' does not fit this model: the LoRA looks like {LABEL[lora[0]]}; the model is "
                          f"{LABEL[model_fam]}, another family. Also, only "), msg
    assert f" of {n} {part} modules match a weight" in msg, msg
    assert "Nothing was applied" in msg
    matched, total = plan.counts()["unet"]
    assert matched < total == n


def test_flux_double_blocks_on_sd35_refused_for_shape(flow_models, keys_mod):
    # diffusers names Flux's double blocks share with SD3.5 large: every module maps, none fits
    sd, expected = F.make_flow_lora("diffusers", flow_models["Flux-dev"], rank=1, only=r"^transformer_blocks\.")
    assert len(expected) == 19 * 14
    header = keys_mod.Header("flux_double.safetensors", {k: tuple(v.shape) for k, v in sd.items()},
                             {k: str(v.dtype) for k, v in sd.items()}, {}, {}, state_dict=sd)
    plan = keys_mod.plan_lora(header, flow_models["SD3.5 large"], None)
    assert plan.counts()["unet"] == (0, 266)
    assert all(m.target is not None for m in plan.modules.values())
    with pytest.raises(keys_mod.TCDLoraError) as ei:
        keys_mod.check_plan(plan, {"unet", "other"})
    msg = str(ei.value)
    # the family first (it used to follow the shapes), then the shapes
    assert msg.startswith(f"'flux_double.safetensors' does not fit this model: the LoRA looks like "
                          f"{LABEL['Flux-dev']}; the model is {LABEL['SD3.5 large']}, another family. Also, "), msg
    assert "266 module(s) have the wrong shape" in msg and "is 2432x2432" in msg, msg


def test_flux_weight_twice_refused(flow_models, keys_mod):
    # single block 0's linear1 in full (kohya) and its q rows (diffusers): the same rows twice
    model = flow_models["Flux-dev"]
    sd = F.make_flow_lora("kohya", model, rank=1, only=r"^single_blocks\.0\.linear1$")[0]
    sd.update(F.make_flow_lora("diffusers", model, rank=1, only=r"^single_transformer_blocks\.0\.attn\.to_q$")[0])
    assert len(sd) == 5
    header = keys_mod.Header("mixed.safetensors", {k: tuple(v.shape) for k, v in sd.items()},
                             {k: str(v.dtype) for k, v in sd.items()}, {}, {}, state_dict=sd)
    plan = keys_mod.plan_lora(header, model, None)
    assert plan.counts()["unet"] == (2, 2)
    with pytest.raises(keys_mod.TCDLoraError, match=r"holds 1 weight\(s\) twice .*single_blocks\.0\.linear1\.weight"):
        keys_mod.check_plan(plan, {"unet", "other"})
    # q and k rows of one weight, or q/k/v/proj_mlp together, do not overlap: accepted
    sd = F.make_flow_lora("diffusers", model, rank=1, only=r"^single_transformer_blocks\.0\.")[0]
    header = keys_mod.Header("ok.safetensors", {k: tuple(v.shape) for k, v in sd.items()}, {}, {}, {}, state_dict=sd)
    plan = keys_mod.plan_lora(header, model, None)
    assert plan.counts()["unet"] == (6, 6)
    keys_mod.check_plan(plan, {"unet", "other"})


@tcd_figures.reporter("Load TCD LoRA coverage on the full-size SD3.5 and Flux transformers (matched / total)")
def flow_coverage():
    return [f"{fam:13s} {fmt:20s} {c}" for (fam, fmt), c in COVERAGE.items()]
