"""Full-size layouts without memory: the host's real SDXL and SD1.5 UNets built on the ``meta`` device, rank-1 LoRA
files in the key layout of the TCD LoRAs for each (diffusers ``unet.…lora.down`` and kohya ``lora_unet_``), checked by
the loader's planner: 100% of the modules map for the right base, a clear refusal naming both families for the wrong
one.
"""
import sys

import pytest
import safetensors.torch
import torch

import tcd_lora_files as F

pytestmark = pytest.mark.host
META = torch.device("meta")


def full_unet_config(name):
    """The full UNet configs of stock SDXL and SD1.5, as in the host's detection tables (comfy/model_detection.py,
    v0.3.75); the fixture below checks that the host's own detection picks the stock class for each."""
    sdxl = {'use_checkpoint': False, 'image_size': 32, 'out_channels': 4, 'use_spatial_transformer': True,
            'legacy': False, 'num_classes': 'sequential', 'adm_in_channels': 2816, 'dtype': None, 'in_channels': 4,
            'model_channels': 320, 'num_res_blocks': [2, 2, 2], 'transformer_depth': [0, 0, 2, 2, 10, 10],
            'channel_mult': [1, 2, 4], 'transformer_depth_middle': 10, 'use_linear_in_transformer': True,
            'context_dim': 2048, 'num_head_channels': 64, 'transformer_depth_output': [0, 0, 0, 2, 2, 2, 10, 10, 10],
            'use_temporal_attention': False, 'use_temporal_resblock': False}
    sd15 = {'use_checkpoint': False, 'image_size': 32, 'out_channels': 4, 'use_spatial_transformer': True,
            'legacy': False, 'adm_in_channels': None, 'dtype': None, 'in_channels': 4, 'model_channels': 320,
            'num_res_blocks': [2, 2, 2, 2], 'transformer_depth': [1, 1, 1, 1, 1, 1, 0, 0],
            'channel_mult': [1, 2, 4, 4], 'transformer_depth_middle': 1, 'use_linear_in_transformer': False,
            'context_dim': 768, 'num_heads': 8, 'transformer_depth_output': [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
            'use_temporal_attention': False, 'use_temporal_resblock': False}
    return {"SDXL": sdxl, "SD1.5": sd15}[name]


@pytest.fixture(scope="module")
def meta_models(host):
    import comfy.model_detection
    import comfy.supported_models as sm
    out = {}
    for fam, cls in (("SDXL", sm.SDXL), ("SD1.5", sm.SD15)):
        cfg = comfy.model_detection.model_config_from_unet_config(dict(full_unet_config(fam)))
        assert type(cfg) is cls, f"the host detects {type(cfg).__name__} for the {fam} config"
        out[fam] = cfg.get_model({}, device=META)
    return out


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
    assert f"'TCD-{lora_fam}' does not fit this model" in msg
    assert f"of {n_modules} UNet modules match" in msg or "wrong shape" in msg
    assert f"The LoRA looks like {lora_fam} (cross-attention width" in msg
    assert f"the model is {model_fam} (cross-attention width" in msg
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
