"""Load TCD LoRA on rectified-flow transformers through the real host: small Flux-, SD3.5-medium- and Wan-shaped
models (the host's own classes and layouts, seeded weights), a LoRA in every key format the host maps, applied by the
node; the host's patched weights equal W + strength * (alpha / rank) * up @ down, recomputed here per module: on its
q, k or v rows of a fused qkv (or Flux's linear1), with the diffusers scale/shift halves swapped where the layouts
differ; Wan's diff (norms), diff_b (biases) and diff_m (modulation tables) as W + strength * diff. A LoRA for the other
family is refused, decided before any tensor is read. (Full-size coverage: test_lora_meta.py, test_lora_families.py.)
"""
import sys

import pytest
import safetensors.torch
import torch

import tcd_lora_files as F

pytestmark = pytest.mark.host
CPU = torch.device("cpu")
STRENGTH = 0.7
# Flux: 2 double + 2 single blocks, hidden 64; SD3.5-medium-like: 2 joint blocks (the last context stream pre-only),
# hidden 128, rms q/k norm and the second self-attention in block 0
TINY = {
    "Flux": {"image_model": "flux", "guidance_embed": True, "in_channels": 16, "out_channels": 16, "vec_in_dim": 32,
             "context_in_dim": 48, "hidden_size": 64, "mlp_ratio": 4.0, "num_heads": 4, "depth": 2,
             "depth_single_blocks": 2, "axes_dim": [4, 6, 6], "theta": 10000, "qkv_bias": True, "patch_size": 2},
    "SD3": {"in_channels": 16, "patch_size": 2, "out_channels": 16, "depth": 2, "input_size": None,
            "adm_in_channels": 32, "num_patches": 256, "pos_embed_max_size": 16, "pos_embed_scaling_factor": None,
            "context_embedder_config": {"target": "torch.nn.Linear",
                                        "params": {"in_features": 48, "out_features": 128}},
            "qk_norm": "rms", "x_block_self_attn_layers": [0]},
    # Wan 2.1's layout (the host's WAN21_T2V): 2 blocks of width 64, 2 heads, FFN 128, LayerNorm norm3, q/k RMSNorms
    "WAN21_T2V": {"image_model": "wan2.1", "model_type": "t2v", "dim": 64, "ffn_dim": 128, "num_heads": 2,
                  "num_layers": 2, "in_dim": 16, "out_dim": 16, "patch_size": (1, 2, 2), "freq_dim": 256,
                  "window_size": (-1, -1), "qk_norm": True, "cross_attn_norm": True, "eps": 1e-6},
}
CASES = [(fam, fmt) for fam in ("Flux", "SD3") for fmt in F.MMDIT_FORMATS
         if F.FLOW_FORMATS[fmt][0] != "ldm_qkv" or fam == "Flux"]


@pytest.fixture(scope="module")
def tiny(host):
    """family -> ModelPatcher of a small model of the host's stock class, every weight seeded."""
    import comfy.model_patcher
    import comfy.supported_models as sm

    import tcd_test_models
    out = {}
    for fam, config in TINY.items():
        config = tcd_test_models.flux_config(config) if fam == "Flux" else dict(config)
        model = getattr(sm, fam)(config).get_model({}, device=CPU)  # the stock class itself, whatever else is listed
        g = torch.Generator().manual_seed(len(fam))
        with torch.no_grad():
            for _, p in sorted(model.diffusion_model.named_parameters()):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        tcd_test_models.init_buffers(model.diffusion_model, len(fam) + 1)  # pos_embed: torch.empty otherwise
        out[fam] = comfy.model_patcher.ModelPatcher(model, load_device=CPU, offload_device=CPU)
    return out


@pytest.fixture(scope="module")
def pack(host):
    return sys.modules[host.nodes.NODE_CLASS_MAPPINGS["TCDLoraLoader"].__module__]


def write(host, name, sd):
    safetensors.torch.save_file(sd, str(host.models / "loras" / name))
    return name


def patched(patcher, keys):
    """The weights the host computes for these keys when it loads this patcher, then restored."""
    try:
        out = {}
        for k in keys:
            patcher.patch_weight_to_device(k, device_to=CPU)
            module = patcher.model
            for part in k.split("."):
                module = getattr(module, part)
            out[k] = module.detach().clone()
        return out
    finally:
        patcher.unpatch_model(device_to=CPU)


@pytest.mark.parametrize("fam,fmt", CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_flow_format_maps_every_module_and_patches_exactly(host, tiny, fam, fmt):
    model = tiny[fam]
    w0 = {k: v.detach().clone() for k, v in model.model.state_dict().items()}
    sd, expected = F.make_flow_lora(fmt, model.model, seed=len(fmt))
    kind = F.FLOW_FORMATS[fmt][0]
    n = len(expected)
    # every weight a LoRA can change (diffusers: q, k, v, proj_mlp as separate modules)
    assert n == {("Flux", "ldm"): 2 * 10 + 2 * 3 + 10, ("Flux", "ldm_qkv"): 2 * 10 + 2 * 3 + 10,
                 ("Flux", "diffusers"): 2 * 14 + 2 * 6 + 10,
                 ("SD3", "ldm"): 10 + 7 + 2 + 8, ("SD3", "diffusers"): 14 + 11 + 4 + 8}[fam, kind]
    name = write(host, f"flow_{fam}_{fmt}.safetensors", sd)
    new_model, report = host.call("TCDLoraLoaderModelOnly", model=model, lora_name=name, strength_model=STRENGTH)
    assert f"transformer {n}/{n} modules matched (100%)" in report, report
    assert "transformer weights" in report and not model.patches
    want = F.expected_flow_weights(w0, expected, STRENGTH)
    assert any(rows for _k, rows, *_ in expected.values()) == (kind != "ldm")  # slices: diffusers and linear1_qkv
    assert any(swapped for _k, _r, swapped, *_ in expected.values()) == (kind == "diffusers")
    got = patched(new_model, sorted(want))
    for k in want:
        assert not torch.equal(want[k], w0[k])
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
    untouched = [k for k in w0 if k not in want][:5]  # biases, norms
    assert untouched and all(torch.equal(v, w0[k]) for k, v in patched(new_model, untouched).items())


@pytest.mark.parametrize("lora_fam,model_fam", [("SD3", "Flux"), ("Flux", "SD3")])
def test_flow_other_family_refused_through_the_node(host, tiny, pack, lora_fam, model_fam):
    sd, expected = F.make_flow_lora("diffusers", tiny[lora_fam].model, seed=3)
    name = write(host, f"flow_{lora_fam}_on_{model_fam}.safetensors", sd)
    model = tiny[model_fam]
    before = dict(pack.STATS)
    with pytest.raises(pack.TCDLoraError) as ei:
        host.call("TCDLoraLoaderModelOnly", model=model, lora_name=name, strength_model=1.0)
    msg = str(ei.value)
    # the width decides and comes first (it used to follow the unmatched modules)
    widths = {"Flux": 64, "SD3": 128}
    assert msg.startswith(f"'{name}' does not fit this model: the LoRA's hidden width is {widths[lora_fam]}, the "
                          f"model's is {widths[model_fam]}. Also, only "), msg
    assert f"of {len(expected)} transformer modules" in msg, msg
    # the small widths are no published base: the LoRA is named by its layout (SD3.5 medium's: its second
    # attention), the model by its class
    labels = {"Flux": "Flux-like layout (hidden width 64)", "SD3": "SD3.5 medium-like layout (hidden width 128)"}
    models = {"Flux": "Flux of another size (hidden width 64)", "SD3": "SD3 of another size (hidden width 128)"}
    assert f"The LoRA looks like {labels[lora_fam]}; the model is {models[model_fam]}." in msg, msg
    assert "Nothing was applied" in msg
    # decided from the header: no tensor read, no patch built or added (the loader patches clones only, so the
    # input model's own patches could not tell)
    assert {k: pack.STATS[k] - before[k] for k in ("tensor_reads", "patch_builds", "patch_adds")} == dict.fromkeys(
        ("tensor_reads", "patch_builds", "patch_adds"), 0)


@pytest.mark.parametrize("fmt", ["lightx2v", "kijai", "wan_fun"])
def test_wan_spellings_patch_every_delta_exactly(host, tiny, fmt):
    # lightx2v's lora_A/B + alpha; Kijai's lora_down/up plus a diff_b on every biased module, a diff (+ diff_b) on
    # every norm and a diff_m on every modulation table; Wan-Fun's 'lora_unet__' (renamed by the host's convert_lora)
    model = tiny["WAN21_T2V"]
    w0 = {k: v.detach().clone() for k, v in model.model.state_dict().items()}
    sd, expected = F.make_flow_lora(fmt, model.model, seed=len(fmt))
    deltas = F.add_diffs(sd, model.model, seed=len(fmt)) if fmt == "kijai" else {}
    assert len(expected) == 2 * 10 + 7  # per block: 8 attention + 2 FFN linears; 7 embedding / head linears
    # per block: a diff_b on the 10 linears, norm3's diff and diff_b, the 4 q/k norms' diffs, the modulation's diff_m;
    # the 7 other linears' diff_b, the head's modulation
    assert len(deltas) == {"kijai": 2 * (10 + 2 + 4 + 1) + 7 + 1, "lightx2v": 0, "wan_fun": 0}[fmt]
    name = write(host, f"wan_{fmt}.safetensors", sd)
    new_model, report = host.call("TCDLoraLoaderModelOnly", model=model, lora_name=name, strength_model=STRENGTH)
    n = len(expected) + sum(1 for k in deltas if not k.endswith(".bias"))  # norms and modulation tables: modules
    assert f"transformer {n}/{n} modules matched (100%)" in report, report
    want = F.expected_flow_weights(w0, expected, STRENGTH)
    for k, d in deltas.items():
        want[k] = (w0[k].double() + STRENGTH * d.double()).to(w0[k].dtype)
    assert f"ModelPatcher: {len(want)} transformer weights" in report, report
    assert ("convert_lora" in report) == (fmt == "wan_fun")
    got = patched(new_model, sorted(want))
    for k in want:
        assert not torch.equal(want[k], w0[k])
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
    assert not model.patches  # the input model is left as it was
