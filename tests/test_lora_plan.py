"""The LoRA planner without the host (``lora_plan``): key grammar, header reading, the family table, the plan's shape
checks delta by delta, the refusal order and the report, on pure data: key maps and weight shapes written here (the
rules the host's ``model_lora_keys_unet`` applies to every weight: 'diffusion_model.<name>' and kohya's
'lora_unet_<name>'; for Qwen-Image also its bare and 'transformer.' names), LoRA headers as shape tables, and small
safetensors files in tmp_path. Full-size widths cost nothing here: a shape is a tuple. (The host's own key maps and
models: test_lora_meta.py and test_lora_families.py.)"""
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch

import lora_plan as P

REPO = Path(__file__).resolve().parents[1]
UNET = {"unet", "other"}


# -- pure data: model layouts and LoRA headers ---------------------------------------------------------------------
def wan_weights(dim, blocks, ffn, clip_image=False):
    """{weight name: shape} of a Wan transformer's blocks, with their biases, norms and modulation tables."""
    out = {}
    for i in range(blocks):
        b = f"blocks.{i}"
        for p in ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q", "cross_attn.k",
                  "cross_attn.v", "cross_attn.o") + (("cross_attn.k_img", "cross_attn.v_img") if clip_image else ()):
            out[f"{b}.{p}.weight"], out[f"{b}.{p}.bias"] = (dim, dim), (dim,)
        out[f"{b}.ffn.0.weight"], out[f"{b}.ffn.0.bias"] = (ffn, dim), (ffn,)
        out[f"{b}.ffn.2.weight"], out[f"{b}.ffn.2.bias"] = (dim, ffn), (dim,)
        out[f"{b}.norm3.weight"], out[f"{b}.norm3.bias"] = (dim,), (dim,)
        out[f"{b}.modulation"] = (1, 6, dim)
    return out


QWEN_BLOCK = {"attn.to_q": (3072, 3072), "attn.to_k": (3072, 3072), "attn.to_v": (3072, 3072),
              "attn.to_out.0": (3072, 3072), "attn.add_q_proj": (3072, 3072), "attn.add_k_proj": (3072, 3072),
              "attn.add_v_proj": (3072, 3072), "attn.to_add_out": (3072, 3072), "img_mlp.net.0.proj": (12288, 3072),
              "img_mlp.net.2": (3072, 12288), "txt_mlp.net.0.proj": (12288, 3072), "txt_mlp.net.2": (3072, 12288),
              "img_mod.1": (18432, 3072), "txt_mod.1": (18432, 3072)}
FLUX_ATTN = [k for k in QWEN_BLOCK if k.startswith("attn.")]  # Flux's diffusers double-block attention: same names


def qwen_weights(blocks=60):
    return {f"transformer_blocks.{i}.{k}.weight": s for i in range(blocks) for k, s in QWEN_BLOCK.items()}


def model(weights, classes, config, qwen_map=False):
    """ModelData as the host gives it: every weight as 'diffusion_model.<name>', the host's generic key map for it
    (kohya 'lora_unet_' and 'diffusion_model.' names; a non-weight parameter under its own key), and for Qwen-Image
    its own map (bare and 'transformer.' names)."""
    shapes = {"diffusion_model." + k: s for k, s in weights.items()}
    key_map = {}
    for k in shapes:
        if not k.endswith(".weight"):
            key_map[k] = k
            continue
        name = k[len("diffusion_model."):-len(".weight")]
        key_map["lora_unet_" + name.replace(".", "_")] = key_map["diffusion_model." + name] = k
        if qwen_map:
            key_map[name] = key_map["transformer." + name] = k
    return P.ModelData(key_map, shapes, {"unet"}, tuple(classes), dict(config))


WAN13 = model(wan_weights(1536, 30, 8960), ("WAN21_T2V", "BASE", "object"), {"dim": 1536, "in_dim": 16})
WAN5B = model(wan_weights(3072, 30, 14336), ("WAN22_T2V", "WAN21_T2V", "BASE", "object"), {"dim": 3072})
QWEN = model(qwen_weights(), ("QwenImage", "BASE", "object"), {"num_layers": 60}, qwen_map=True)


def lora(modules, name=lambda n: "diffusion_model." + n, down=".lora_down.weight", up=".lora_up.weight", rank=4,
         alpha=None, extra=None, path="test.safetensors"):
    """A LoRA header from {module: weight shape}: down (rank, in...), up (out, rank, 1...), optional alpha; ``extra``:
    more {key: shape} (diff, diff_b, diff_m tensors), inserted first (as a sorted file lists '.diff_b' first)."""
    shapes, alphas = dict(extra or {}), {}
    for n, s in modules.items():
        shapes[name(n) + down] = (rank, *s[1:])
        shapes[name(n) + up] = (s[0], rank, *([1] * (len(s) - 2)))
        if alpha is not None:
            shapes[name(n) + ".alpha"] = ()
            alphas[name(n) + ".alpha"] = alpha
    return P.Header(path, shapes, {}, alphas, {})


def lora_of(weights, pattern=".weight", **kw):
    """The low-rank modules of every 2-D+ weight whose name ends with ``pattern``."""
    return lora({k[:-len(".weight")]: s for k, s in weights.items() if k.endswith(pattern) and len(s) >= 2}, **kw)


def refusal(plan):
    with pytest.raises(P.TCDLoraError) as ei:
        P.check_plan(plan, UNET)
    return str(ei.value)


# -- the package stays host-free -----------------------------------------------------------------------------------
def test_planner_imports_nothing_of_the_host():
    code = ("import sys, lora_plan; bad = [m for m in sys.modules if m.split('.')[0] in ('comfy', 'comfy_extras', "
            "'comfy_api', 'nodes', 'folder_paths', 'latent_preview', 'execution', 'server')]; print(bad); "
            "assert not bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO))
    assert out.returncode == 0, out.stdout + out.stderr


def test_lora_error_is_a_value_error_of_its_own():
    import samplers
    assert issubclass(P.TCDLoraError, ValueError) and not issubclass(P.TCDLoraError, samplers.TCDInputError)


# -- key grammar ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key,want", [
    ("m.lora_up.weight", ("m", "lora", "up", "m.lora_up.weight")),
    ("m.lora_A.weight", ("m", "lora", "down", "m.lora_A.weight")),
    ("m.lora_B.default.weight", ("m", "lora", "up", "m.lora_B.default.weight")),
    ("m.to_q.lora_linear_layer.up.weight", ("m.to_q", "lora", "up", "m.to_q.lora_linear_layer.up.weight")),
    ("m.to_q_lora.down.weight", ("m.to_q", "lora", "down", "m.to_q_lora.down.weight")),
    ("m.hada_w1_a", ("m", "loha", "w1a", "m.hada_w1_a")), ("m.lokr_w2_b", ("m", "lokr", "w2b", "m.lokr_w2_b")),
    ("m.diff", ("m", "diff", "diff", "m.diff")), ("m.diff_b", ("m", "diff_b", "diff_b", "m.diff_b")),
    ("m.alpha", ("m", None, "alpha", "m.alpha")),
    # Wan's per-block modulation difference: read by the host as '<block>.modulation.diff'
    ("diffusion_model.blocks.3.diff_m", ("diffusion_model.blocks.3.modulation", "diff", "diff",
                                         "diffusion_model.blocks.3.modulation.diff")),
    ("m.weight", None), ("alpha", None)])
def test_key_grammar(key, want):
    assert P.split_key(key) == want


# -- header reading ------------------------------------------------------------------------------------------------
def test_safetensors_header_read_without_the_tensors(tmp_path):
    path = tmp_path / "small.safetensors"
    safetensors.torch.save_file({"a.lora_down.weight": torch.zeros(4, 32, dtype=torch.float16),
                                 "a.lora_up.weight": torch.zeros(16, 4), "a.alpha": torch.tensor(2.5)}, str(path))
    h = P.read_header(str(path))
    assert h.shapes == {"a.lora_down.weight": (4, 32), "a.lora_up.weight": (16, 4), "a.alpha": ()}
    assert h.alphas == {"a.alpha": 2.5} and h.dtypes["a.lora_down.weight"] == "F16" and h.state_dict is None


def test_unreadable_files_are_named_with_the_reason(tmp_path):
    path = tmp_path / "whole.safetensors"
    safetensors.torch.save_file({f"m{i}.lora_down.weight": torch.zeros(4, 256) for i in range(8)}, str(path))
    data = path.read_bytes()
    (tmp_path / "half.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.safetensors").write_bytes(os.urandom(4096))
    cases = {"half.safetensors": "the file is truncated: its header lists 8 tensors",
             "noise.safetensors": "does not start with a safetensors header",
             "absent.safetensors": "does not exist"}
    for name, reason in cases.items():
        with pytest.raises(P.TCDLoraError, match=f"^LoRA file '{name}' ") as ei:
            P.read_header(str(tmp_path / name), name)
        assert reason in str(ei.value), str(ei.value)


def test_header_from_tensors_keeps_what_the_loader_read():
    sd = {"a.lora_down.weight": torch.zeros(2, 8), "a.alpha": torch.tensor(1.0), "note": "not a tensor"}
    h = P.header_from_tensors("a.pt", sd)
    assert h.shapes == {"a.lora_down.weight": (2, 8), "a.alpha": ()} and h.alphas == {"a.alpha": 1.0}
    assert set(h.state_dict) == {"a.lora_down.weight", "a.alpha"}
    with pytest.raises(P.TCDLoraError, match="does not hold a dictionary of tensors"):
        P.header_from_tensors("b.pt", [1, 2])


# -- the family table ----------------------------------------------------------------------------------------------
def test_the_table_has_one_row_per_family():
    names = [f.name for f in P.FAMILIES]
    assert len(names) == len(set(names))
    assert {"Qwen-Image", "Wan 2.1 1.3B", "Wan 2.1 14B I2V", "Wan 2.2 TI2V 5B", "Wan 2.2 A14B I2V expert",
            "Wan 2.1 14B T2V / Wan 2.2 A14B T2V expert", "Flux", "SD3.5 large", "SDXL", "SD1.5"} <= set(names)
    for f in P.FAMILIES:  # rows sharing a LoRA name share the architecture and the width
        assert f.width > 0 and f.host
        assert {(g.arch, g.width) for g in P.FAMILIES if g.lora == f.lora} == {(f.arch, f.width)}, f.lora


LORAS = {  # label the report gives -> the LoRA (written from the published layouts)
    "Qwen-Image (hidden width 3072)": lora_of(qwen_weights(), name=lambda n: n, alpha=4.0),  # Lightning: bare
    "Flux (hidden width 3072)": lora({f"transformer.transformer_blocks.{i}.{k}": (3072, 3072) for i in range(19)
                                      for k in FLUX_ATTN}, name=lambda n: n, down=".lora_A.weight",
                                     up=".lora_B.weight"),
    "Flux or Qwen-Image (hidden width 3072)": lora(
        {f"transformer.transformer_blocks.{i}.{k}": (3072, 3072) for i in range(10) for k in FLUX_ATTN},
        name=lambda n: n),
    "Wan 2.1 1.3B (hidden width 1536)": lora_of(wan_weights(1536, 30, 8960)),
    "Wan 14B (hidden width 5120)": lora_of(wan_weights(5120, 40, 13824), name=lambda n: "lora_unet_" +
                                           n.replace(".", "_")),
    "Wan 2.1 14B I2V (hidden width 5120)": lora_of(wan_weights(5120, 40, 13824, clip_image=True)),
    "Wan 2.2 5B (hidden width 3072)": lora_of(wan_weights(3072, 30, 14336), down=".lora_A.weight",
                                              up=".lora_B.weight", alpha=8.0),
    "Wan-like layout (hidden width 64)": lora_of(wan_weights(64, 2, 128)),
    "unknown": lora({"some.thing": (8, 8)}, name=lambda n: n),
}


@pytest.mark.parametrize("label", LORAS)
def test_lora_family_from_its_keys(label):
    assert P.plan_lora(LORAS[label], None).lora_family == label


@pytest.mark.parametrize("classes,config,label", [
    (("WAN21_T2V",), {"dim": 1536, "in_dim": 16}, "Wan 2.1 1.3B (hidden width 1536)"),
    (("WAN21_T2V",), {"dim": 5120, "in_dim": 16}, "Wan 2.1 14B T2V / Wan 2.2 A14B T2V expert (hidden width 5120)"),
    (("WAN21_T2V",), {"dim": 5120, "in_dim": 36}, "Wan 2.2 A14B I2V expert (hidden width 5120)"),
    (("WAN21_I2V", "WAN21_T2V"), {"dim": 5120, "in_dim": 36}, "Wan 2.1 14B I2V (hidden width 5120)"),
    (("WAN22_T2V", "WAN21_T2V"), {"dim": 3072, "in_dim": 48}, "Wan 2.2 TI2V 5B (hidden width 3072)"),
    (("WAN21_Vace", "WAN21_T2V"), {"dim": 1536}, "Wan 2.1 1.3B-type WAN21_Vace (hidden width 1536)"),
    (("QwenImage",), {"num_layers": 60}, "Qwen-Image (hidden width 3072)"),
    (("FluxSchnell", "Flux"), {"hidden_size": 3072}, "Flux schnell (hidden width 3072)"),
    (("Flux",), {"hidden_size": 64}, "Flux of another size (hidden width 64)"),
    (("SD3",), {"depth": 24, "x_block_self_attn_layers": [0, 1]}, "SD3.5 medium (hidden width 1536)"),
    (("SD3",), {"depth": 24}, "SD3 medium (hidden width 1536)"),
    (("SD3",), {"depth": 2}, "SD3 of another size (hidden width 128)"),
    (("TinySDXL", "SDXL"), {"context_dim": 64}, "SDXL-type TinySDXL (cross-attention width 64)"),
    (("HiDream", "BASE"), {}, "HiDream"), ((), {}, "unknown (no model)")])
def test_model_family_from_its_config(classes, config, label):
    assert P.model_family(classes, config).label == label


# -- families decide, and lead the message -------------------------------------------------------------------------
def test_another_family_is_refused_even_where_every_key_fits():
    plan = P.plan_lora(LORAS["Flux (hidden width 3072)"], QWEN, "flux_attn")
    assert plan.counts() == {"unet": (152, 152)}
    assert refusal(plan) == (
        "'flux_attn' does not fit this model: the LoRA looks like Flux (hidden width 3072); the model is Qwen-Image "
        "(hidden width 3072), another family (its modules would all fit by name and shape). Use the LoRA made for "
        "this model's base. Nothing was applied.")
    # a LoRA on fewer blocks cannot tell Flux from Qwen-Image: it is applied (to either)
    P.check_plan(P.plan_lora(LORAS["Flux or Qwen-Image (hidden width 3072)"], QWEN), UNET)


def test_the_family_comes_before_the_missing_blocks():
    msg = refusal(P.plan_lora(LORAS["Wan 14B (hidden width 5120)"], WAN13, "wan14b"))
    assert msg.startswith("'wan14b' does not fit this model: the LoRA looks like Wan 14B (hidden width 5120); the "
                          "model is Wan 2.1 1.3B (hidden width 1536), another family. Also, only 300 of 400 "
                          "transformer modules match a weight of the model (not found: 'lora_unet_blocks_30_"), msg
    assert "; 300 module(s) have the wrong shape" in msg


def test_the_width_comes_first_where_no_family_is_known():
    small = model(wan_weights(32, 2, 64), ("WAN21_T2V",), {"dim": 32})
    msg = refusal(P.plan_lora(LORAS["Wan-like layout (hidden width 64)"], small, "tiny"))
    assert msg.startswith("'tiny' does not fit this model: the LoRA's hidden width is 64, the model's is 32. Also, "
                          "20 module(s) have the wrong shape"), msg
    assert msg.endswith("The LoRA looks like Wan-like layout (hidden width 64); the model is WAN21_T2V of another "
                        "size (hidden width 32). Use the LoRA made for this model's base. Nothing was applied."), msg


def test_a_module_the_model_lacks_is_refused_with_both_families():
    weights = wan_weights(1536, 30, 8960)
    h = lora_of(weights)
    h.shapes.update({"diffusion_model.blocks.0.extra.lora_down.weight": (4, 1536),
                     "diffusion_model.blocks.0.extra.lora_up.weight": (1536, 4)})
    msg = refusal(P.plan_lora(h, WAN13, "one_more"))
    assert msg.startswith("'one_more' does not fit this model: only 300 of 301 transformer modules match a weight of "
                          "the model (not found: 'diffusion_model.blocks.0.extra'). The LoRA looks like Wan 2.1 1.3B "
                          "(hidden width 1536); the model is Wan 2.1 1.3B (hidden width 1536)."), msg


# -- every delta shape-checked, whatever its keys' order and kinds ---------------------------------------------------
def kijai_module(dim, rank=4, bias=None, lora_in=None):
    """One Kijai-style module on block 0's self-attention q: lora_down/up (input width ``lora_in``) and a diff_b."""
    n = "diffusion_model.blocks.0.self_attn.q"
    return {n + ".diff_b": (bias or dim,), n + ".lora_down.weight": (rank, lora_in or dim),
            n + ".lora_up.weight": (lora_in or dim, rank)}


def test_diff_b_first_does_not_hide_a_wrong_lora_shape():
    # the old planner took a module's kind from its first key; '.diff_b' sorts first, so the module was a 'diff'
    # module, and a diff module without a '.diff' tensor skipped the shape check: a 1536-wide LoRA "fitted" 3072
    keys = kijai_module(3072, lora_in=1536)
    problems = set()
    for order in itertools.permutations(keys):
        plan = P.plan_lora(P.Header("k.safetensors", {k: keys[k] for k in order}, {}, {}, {}), WAN5B)
        m = plan.modules["diffusion_model.blocks.0.self_attn.q"]
        assert m.kinds == {"lora", "diff_b"} and plan.counts() == {"unet": (0, 1)}
        problems.add(m.problem)
    assert problems == {"the LoRA changes a 1536x1536 weight, the model's "
                        "diffusion_model.blocks.0.self_attn.q.weight is 3072x3072"}


@pytest.mark.parametrize("extra,problem", [
    ({"diffusion_model.blocks.0.self_attn.q.diff_b": (3072,)}, None),
    ({"diffusion_model.blocks.0.self_attn.q.diff_b": (1536,)},
     "its diff_b is 1536, the model's diffusion_model.blocks.0.self_attn.q.bias is 3072"),
    ({"diffusion_model.blocks.0.norm3.diff": (3072,)}, None),
    ({"diffusion_model.blocks.0.norm3.diff": (1536,)},
     "its diff is 1536, the model's diffusion_model.blocks.0.norm3.weight is 3072"),
    ({"diffusion_model.blocks.0.diff_m": (1, 6, 3072)}, None),
    ({"diffusion_model.blocks.0.diff_m": (1, 6, 1536)},
     "its diff is 1x6x1536, the model's diffusion_model.blocks.0.modulation is 1x6x3072"),
    # a diff_b where the host would put it on '<target less .weight>.bias': the modulation table has none
    ({"diffusion_model.blocks.0.modulation.diff_b": (3072,)},
     "its diff_b has no bias to change (diffusion_model.blocks.0.mod.bias is not in the model)")])
def test_diff_kinds_checked_against_what_the_host_changes(extra, problem):
    plan = P.plan_lora(P.Header("d.safetensors", extra, {}, {}, {}), WAN5B)
    (m,) = plan.modules.values()
    assert m.target is not None and m.problem == problem
    if problem is None:  # what the host will patch, and under which key it reads the tensor
        (key,) = extra
        assert P.patch_keys(m) == [m.target if "diff_b" not in key else m.target[:-len(".weight")] + ".bias"]
        assert plan.renames() == ({key: "diffusion_model.blocks.0.modulation.diff"} if "diff_m" in key else {})


@pytest.mark.parametrize("shapes,damage", [
    ({"m.lora_up.weight": (8, 4), "m.lora_down.weight": (4, 8), "m.diff": (8, 8)},
     "holds lora and diff deltas for one weight (the host applies only one of them)"),
    ({"m.lora_up.weight": (8, 4)}, "incomplete module (no down tensor)"),
    ({"m.lora_up.weight": (8, 4), "m.lora_A.weight": (4, 8)}, "are spelled in two formats"),
    ({"m.lora_up.weight": (8, 4), "m.lora.up.weight": (8, 4), "m.lora_down.weight": (4, 8)}, "two tensors for its up"),
    ({"m.lora_up.weight": (8, 4), "m.lora_down.weight": (2, 8)}, "do not chain (rank mismatch)"),
    ({"m.lokr_w1": (2, 2), "m.lokr_w2_a": (4, 2)}, "incomplete module (no w2 / w2b tensor)"),
    ({"m.hada_w1_a": (8, 2), "m.hada_w1_b": (2, 8), "m.hada_w2_a": (8, 2), "m.hada_w2_b": (2, 8),
      "m.hada_t1": (2, 2, 3, 3)}, "a hada_t1 without hada_t2")])
def test_damaged_modules_refused_whatever_the_model(shapes, damage):
    plan = P.plan_lora(P.Header("bad.safetensors", shapes, {}, {}, {}), None)
    assert damage in plan.modules["m"].damage
    with pytest.raises(P.TCDLoraError, match="^'bad.safetensors' has damaged LoRA modules: m: "):
        P.check_plan(plan, UNET)


@pytest.mark.parametrize("shapes,fits", [
    ({"m.lokr_w1": (2, 4), "m.lokr_w2": (4, 8)}, True),                                # kron: (2*4) x (4*8)
    ({"m.lokr_w1": (2, 4), "m.lokr_w2_a": (4, 3), "m.lokr_w2_b": (3, 8)}, True),
    ({"m.lokr_w1": (2, 4), "m.lokr_w2_a": (3, 4), "m.lokr_w2_b": (3, 8), "m.lokr_t2": (3, 3, 1, 1)}, True),  # Tucker
    ({"m.lokr_w1": (2, 4), "m.lokr_w2": (4, 4)}, False),
    ({"m.hada_w1_a": (8, 2), "m.hada_w1_b": (2, 32), "m.hada_w2_a": (8, 2), "m.hada_w2_b": (2, 32)}, True),
    ({"m.hada_w1_a": (2, 8), "m.hada_w1_b": (2, 32), "m.hada_w2_a": (2, 8), "m.hada_w2_b": (2, 32),
      "m.hada_t1": (2, 2, 1, 1), "m.hada_t2": (2, 2, 1, 1)}, True),                     # Tucker: (rank, out) factors
    ({"m.hada_w1_a": (8, 2), "m.hada_w1_b": (2, 16), "m.hada_w2_a": (8, 2), "m.hada_w2_b": (2, 16)}, False)])
def test_lokr_and_loha_deltas_shape_checked(shapes, fits):
    data = P.ModelData({"m": "diffusion_model.m.weight"}, {"diffusion_model.m.weight": (8, 32)}, {"unet"})
    (m,) = P.plan_lora(P.Header("x.safetensors", shapes, {}, {}, {}), data).modules.values()
    assert (m.problem is None) == fits, m.problem


# -- the report ------------------------------------------------------------------------------------------------------
def test_report_names_both_families_and_reads_the_rank_of_mixed_modules():
    weights = wan_weights(1536, 30, 8960)
    extra = {f"diffusion_model.{k[:-len('.bias')]}.diff_b": s for k, s in weights.items() if k.endswith(".bias")}
    extra.update({f"diffusion_model.blocks.{i}.diff_m": (1, 6, 1536) for i in range(30)})
    plan = P.plan_lora(lora_of(weights, rank=16, alpha=8.0, extra=extra), WAN13, "kijai")
    P.check_plan(plan, UNET)
    report = P.make_report(plan, 1.0, None, {"transformer weights": 690})
    assert report.startswith("TCD LoRA 'kijai': transformer 360/360 modules matched (100%). Format LDM "
                             "(diffusion_model.) (diff_b 330, lora 300, diff 30). LoRA base Wan 2.1 1.3B (hidden "
                             "width 1536); model Wan 2.1 1.3B (hidden width 1536). rank 16, alpha 8 (scale 0.5)"), \
        report


def test_what_a_file_without_lora_tensors_is():
    assert "bare UNet / diffusion model" in P.what_is_it(["blocks.0.self_attn.q.weight", "head.head.weight"])
    assert "bare UNet / diffusion model" in P.what_is_it(["transformer_blocks.0.attn.to_q.weight"])
    assert "full checkpoint" in P.what_is_it(["model.diffusion_model.input_blocks.0.0.weight"])
    assert "VAE" in P.what_is_it(["decoder.conv_in.weight"])
