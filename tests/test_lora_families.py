"""The few-step families of 2026 on full-size layouts (the host's own models on the ``meta`` device, from its own
detection of each checkpoint's keys): Qwen-Image, Wan 2.1 1.3B / 14B T2V / 14B I2V, Wan 2.2 TI2V 5B and A14B (T2V and
I2V; the high- and low-noise experts share one layout). Every weight a LoRA can change, in each spelling people ship,
maps 100% through the host's key map (Wan-Fun's through the host's convert_lora first) and every delta fits; the
report names both families. Then every family's LoRA on every other family's model (SDXL, SD1.5, Flux-dev and SD3.5
too): refused naming both families, the family first, even where every key fits by name and shape.

The planner (``lora_plan``) runs on the host's data: ``lora_keys.model_data`` (key maps, shapes, config) once per
model, ``lora_keys.host_spelling`` per file. Files are shape-only (meta tensors): no bytes are written.
"""
import sys

import pytest
import torch

import tcd_figures
import tcd_lora_files as F
import tcd_meta_models as MM

pytestmark = pytest.mark.host
NEW = [n for n in MM.LAYOUTS if n.startswith(("Qwen", "Wan"))]
# what the report calls each model (written here from the published line-up, not read from the table)
MODEL_LABEL = {
    "SDXL": "SDXL (cross-attention width 2048)", "SD1.5": "SD1.5 (cross-attention width 768)",
    "Flux-dev": "Flux (hidden width 3072)", "SD3.5 large": "SD3.5 large (hidden width 2432)",
    "SD3.5 medium": "SD3.5 medium (hidden width 1536)", "Qwen-Image": "Qwen-Image (hidden width 3072)",
    "Wan 2.1 1.3B": "Wan 2.1 1.3B (hidden width 1536)",
    "Wan 2.1 14B T2V": "Wan 2.1 14B T2V / Wan 2.2 A14B T2V expert (hidden width 5120)",
    "Wan 2.1 14B I2V": "Wan 2.1 14B I2V (hidden width 5120)", "Wan 2.2 TI2V 5B": "Wan 2.2 TI2V 5B (hidden width 3072)",
    "Wan 2.2 A14B T2V (high/low noise)": "Wan 2.1 14B T2V / Wan 2.2 A14B T2V expert (hidden width 5120)",
    "Wan 2.2 A14B I2V (high/low noise)": "Wan 2.2 A14B I2V expert (hidden width 5120)",
}
# what the report calls a LoRA written for each layout: a 14B T2V LoRA cannot tell Wan 2.1 from a Wan 2.2 expert, nor
# T2V from I2V (its keys are a subset of I2V's); the image cross-attention makes a 14B LoRA Wan 2.1 I2V
LORA_LABEL = {**MODEL_LABEL, "Wan 2.1 14B T2V": "Wan 14B (hidden width 5120)",
              "Wan 2.1 14B I2V": "Wan 2.1 14B I2V (hidden width 5120)",
              "Wan 2.2 TI2V 5B": "Wan 2.2 5B (hidden width 3072)",
              "Wan 2.2 A14B T2V (high/low noise)": "Wan 14B (hidden width 5120)",
              "Wan 2.2 A14B I2V (high/low noise)": "Wan 14B (hidden width 5120)"}
# (dim, blocks, image cross-attention, I2V patch embedding) as published (Wan 2.1 / 2.2 configs)
WAN = {"Wan 2.1 1.3B": (1536, 30, False), "Wan 2.1 14B T2V": (5120, 40, False), "Wan 2.1 14B I2V": (5120, 40, True),
       "Wan 2.2 TI2V 5B": (3072, 30, False), "Wan 2.2 A14B T2V (high/low noise)": (5120, 40, False),
       "Wan 2.2 A14B I2V (high/low noise)": (5120, 40, False)}


@pytest.fixture(scope="module")
def keys_mod(host):
    lora = sys.modules[host.nodes.NODE_CLASS_MAPPINGS["TCDLoraLoader"].__module__]
    return sys.modules[lora.__name__.rsplit(".", 1)[0] + ".lora_keys"]


@pytest.fixture(scope="module")
def planner(keys_mod):
    return sys.modules[keys_mod.__name__.rsplit(".", 2)[0] + ".lora_plan"]


@pytest.fixture(scope="module")
def models(host, keys_mod):
    """name -> (BaseModel on meta, the host's data for the planner)."""
    out = {}
    for name in MM.LAYOUTS:
        model = MM.build(name)
        out[name] = (model, keys_mod.model_data(model))
    return out


def plan(planner, keys_mod, sd, data, name):
    header = planner.header_from_tensors(name + ".safetensors", sd)
    return planner.plan_lora(keys_mod.host_spelling(header), data, name)


def n_modules(name, fmt):
    """Modules of a full LoRA, counted from the published block structure (not from the host's tables)."""
    if name == "Qwen-Image":  # 60 blocks x (8 attention + 4 MLP + 2 modulation) + 6 embedder / output linears
        return 60 * 14 + 6
    dim, blocks, clip_image = WAN[name]
    # a block: self- and cross-attention q, k, v, o and the 2 FFN linears (+ the image k, v); + patch, text (2), time
    # (2) embeddings, time projection, head (+ the 2 image-embedding linears)
    n = blocks * (10 + 2 * clip_image) + 7 + 2 * clip_image
    if fmt == "kijai":  # + per block: norm3 and the q/k norms of both attentions (+ image k norm), the modulation;
        n += blocks * (6 + clip_image) + 1 + 2 * clip_image  # the head's modulation (+ image-embedding norms)
    return n


CASES = [(name, label, fmt) for name in NEW
         for label, fmt in F.SPELLINGS["Qwen-Image" if name.startswith("Qwen") else "Wan"]]
COVERAGE = {}


def test_layouts_are_the_published_ones(models):
    # Qwen-Image: 60 blocks of 3072; Wan: blocks x dim as published, I2V: image cross-attention and 36 input channels
    for name, (model, _data) in models.items():
        sd = model.state_dict()
        assert all(v.device.type == "meta" for k, v in sd.items() if k.startswith("diffusion_model."))
        if name == "Qwen-Image":
            assert sd["diffusion_model.transformer_blocks.59.attn.to_q.weight"].shape == (3072, 3072)
            assert "diffusion_model.transformer_blocks.60.attn.to_q.weight" not in sd
        elif name in WAN:
            dim, blocks, clip_image = WAN[name]
            assert sd[f"diffusion_model.blocks.{blocks - 1}.self_attn.q.weight"].shape == (dim, dim), name
            assert f"diffusion_model.blocks.{blocks}.self_attn.q.weight" not in sd, name
            assert ("diffusion_model.blocks.0.cross_attn.k_img.weight" in sd) == clip_image, name
            in_dim = sd["diffusion_model.patch_embedding.weight"].shape[1]
            assert in_dim == (48 if "5B" in name else 36 if "I2V" in name else 16), name


@pytest.mark.parametrize("name,label,fmt", CASES, ids=[f"{n}-{f}" for n, _l, f in CASES])
def test_every_spelling_maps_every_module(planner, keys_mod, models, name, label, fmt):
    model, data = models[name]
    sd, expected = F.make_flow_lora(fmt, model, rank=1, dtype=torch.float16, meta=True)
    deltas = F.add_diffs(sd, model, dtype=torch.float16, meta=True) if fmt == "kijai" else {}
    p = plan(planner, keys_mod, sd, data, f"{name}-{fmt}")
    n = n_modules(name, fmt)
    assert p.counts() == {"unet": (n, n)}, p.counts()
    planner.check_plan(p, {"unet", "other"})  # does not raise
    converted = fmt == "wan_fun"
    for module, (key, _rows, _swapped, *_rest) in expected.items():  # each on the weight the writer took it from
        host_name = module.replace("lora_unet__", "lora_unet_") if converted else module
        assert p.modules[host_name].target == key, module
    patched = {k for m in p.modules.values() for k in planner.patch_keys(m)}
    assert patched == {e[0] for e in expected.values()} | set(deltas)  # and every diff / diff_b / diff_m on its own
    assert (p.header.converted_by is not None) == converted
    assert p.lora_family == LORA_LABEL[name] and p.model_family == MODEL_LABEL[name]
    report = planner.make_report(p, 1.0, None, {"transformer weights": len(patched)})
    assert f"transformer {n}/{n} modules matched (100%)" in report
    assert f"LoRA base {LORA_LABEL[name]}; model {MODEL_LABEL[name]}" in report, report
    assert "rank 1" in report and ("convert_lora" in report) == converted
    COVERAGE[name, label] = f"{n}/{n}"


@tcd_figures.reporter("Load TCD LoRA matrix: family x spelling on the full-size layouts (modules matched / total)")
def lora_matrix():
    return [f"{name:34s} {label:48s} {c}" for (name, label), c in COVERAGE.items()]


# -- every family's LoRA on every other family's model ---------------------------------------------------------------
def family_lora(name, model):
    """A LoRA as people ship one for this layout: the TCD LoRA layout (UNets), every weight in diffusers spelling
    (Flux, SD3.5), Lightning's (Qwen-Image), lightx2v's on the blocks (Wan)."""
    if name in ("SDXL", "SD1.5"):
        unet_name, _te, dsuf, usuf, _alpha = F.FORMATS["diffusers_lora_down"]
        sd = {}
        for dn, ln, shape, _key in F.unet_targets(model):
            sd[unet_name(dn, ln) + dsuf] = torch.empty((1, *shape[1:]), device="meta")
            sd[unet_name(dn, ln) + usuf] = torch.empty((shape[0], 1, *([1] * (len(shape) - 2))), device="meta")
        return sd
    fmt, only = {"Qwen-Image": ("bare_ldm", None)}.get(name, ("lightx2v", r"^blocks\.") if name in WAN
                                                     else ("diffusers", None))
    return F.make_flow_lora(fmt, model, rank=1, meta=True, only=only)[0]


LORAS = [n for n in MM.LAYOUTS if not n.startswith("Wan 2.2 A14B")]  # an A14B expert's LoRA is a 14B LoRA
# (LoRA, model) pairs of different layouts that fit: a 14B T2V LoRA on the blocks also fits 14B I2V and both A14B
ACCEPTED = {("Wan 2.1 14B T2V", m) for m in ("Wan 2.1 14B I2V", "Wan 2.2 A14B T2V (high/low noise)",
                                            "Wan 2.2 A14B I2V (high/low noise)")}
REFUSALS = {}


@pytest.mark.parametrize("lora", LORAS)
def test_other_family_refused_naming_both(planner, keys_mod, models, lora):
    sd = family_lora(lora, models[lora][0])
    for name, (_model, data) in models.items():
        p = plan(planner, keys_mod, sd, data, f"{lora} LoRA")
        fits = name == lora or (lora, name) in ACCEPTED
        if fits:
            planner.check_plan(p, {"unet", "other"})  # does not raise
            continue
        with pytest.raises(planner.TCDLoraError) as ei:
            planner.check_plan(p, {"unet", "other"})
        msg = str(ei.value)
        lead = (f"'{lora} LoRA' does not fit this model: the LoRA looks like {LORA_LABEL[lora]}; the model is "
                f"{MODEL_LABEL[name]}, another family")
        assert msg.startswith(lead), msg
        assert msg.endswith("Nothing was applied.")
        matched, total = p.counts()["unet"]
        REFUSALS[lora, name] = "family" + (f"; also {total - matched}/{total} modules unmatched or misfit"
                                           if matched < total else " alone: every module fits by name and shape")


@tcd_figures.reporter("Load TCD LoRA refusal matrix (LoRA -> model: first reason; both families named)")
def refusal_matrix():
    return [f"{lora:16s} -> {name:34s} {why}" for (lora, name), why in REFUSALS.items()]


# -- the cases the old planner got wrong ---------------------------------------------------------------------------
def test_flux_attention_lora_refused_on_qwen_image(planner, keys_mod, models):
    # a diffusers Flux LoRA on the 19 double blocks' attention: the host's Qwen key map takes every name and every
    # width agrees (3072), but 19 blocks are Flux's double blocks, not the first 19 of Qwen-Image's 60
    flux, _ = models["Flux-dev"]
    sd, expected = F.make_flow_lora("diffusers", flux, rank=1, meta=True,
                                    only=r"^transformer_blocks\.\d+\.attn\.(to_[qkv]|to_out\.0|add_[qkv]_proj|"
                                         r"to_add_out)$")
    assert len(expected) == 19 * 8 == 152
    p = plan(planner, keys_mod, sd, models["Qwen-Image"][1], "flux_attn")
    assert p.counts() == {"unet": (152, 152)}  # every key fits by name and shape ...
    with pytest.raises(planner.TCDLoraError) as ei:
        planner.check_plan(p, {"unet", "other"})  # ... and the family refuses it
    assert str(ei.value).startswith(
        "'flux_attn' does not fit this model: the LoRA looks like Flux (hidden width 3072); the model is Qwen-Image "
        "(hidden width 3072), another family (its modules would all fit by name and shape)."), str(ei.value)
    planner.check_plan(plan(planner, keys_mod, sd, models["Flux-dev"][1], "flux_attn"), {"unet", "other"})


def test_wan_14b_lora_on_1_3b_refused_for_its_family_first(planner, keys_mod, models):
    sd = family_lora("Wan 2.1 14B T2V", models["Wan 2.1 14B T2V"][0])
    p = plan(planner, keys_mod, sd, models["Wan 2.1 1.3B"][1], "wan14b")
    with pytest.raises(planner.TCDLoraError) as ei:
        planner.check_plan(p, {"unet", "other"})
    msg = str(ei.value)
    # the width decides (it used to read "only 300 of 400 ... not found: blocks.30 ..."); the missing blocks follow
    assert msg.startswith("'wan14b' does not fit this model: the LoRA looks like Wan 14B (hidden width 5120); the "
                          "model is Wan 2.1 1.3B (hidden width 1536), another family. Also, only 300 of 400 "
                          "transformer modules match"), msg
    assert "not found: 'diffusion_model.blocks.30." in msg


def test_diff_b_first_wan_1_3b_lora_on_5b_checked_delta_by_delta(planner, keys_mod, models):
    # lora_down/up + diff_b per module, diff_b first in the file (it sorts first): every delta is 1536 wide, every
    # weight of Wan 2.2 5B 3072; the old planner took the module's kind from its first key and checked nothing
    model, _ = models["Wan 2.1 1.3B"]
    lora, _ = F.make_flow_lora("kijai", model, rank=1, meta=True, only=r"^blocks\.")
    F.add_diffs(lora, model, meta=True)
    sd = {k: v for k, v in lora.items() if k.endswith(".diff_b") and k[:-len(".diff_b")] + ".lora_up.weight" in lora}
    sd.update({k: v for k, v in lora.items() if k.endswith(("lora_down.weight", "lora_up.weight"))})
    assert next(iter(sd)).endswith(".diff_b") and len([k for k in sd if k.endswith(".diff_b")]) == 300
    p = plan(planner, keys_mod, sd, models["Wan 2.2 TI2V 5B"][1], "wan13b_diff_b")
    assert p.counts() == {"unet": (0, 300)}
    assert all("1536" in m.problem and "3072" in m.problem for m in p.modules.values())
    assert "rank 1" in planner.make_report(p, 1.0, None, {})  # its rank is read (it was "no rank")
    with pytest.raises(planner.TCDLoraError, match=r"^'wan13b_diff_b' does not fit this model: the LoRA looks like "
                                                   r"Wan 2\.1 1\.3B .*300 module\(s\) have the wrong shape"):
        planner.check_plan(p, {"unet", "other"})
