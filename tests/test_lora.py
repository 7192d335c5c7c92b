"""Load TCD LoRA through the real host: every key format maps 100% of its modules on the tiny SDXL-shaped model and the
host's patched weights equal W + strength * (alpha / rank) * up @ down (recomputed here); bad files are refused with
their message and nothing is applied; the loader runs in a real graph, chains, and reads a file only when it changes.
"""
import logging
import os
import re
import shutil
import sys

import pytest
import safetensors.torch
import torch

import tcd_figures
import tcd_lora_files as F

pytestmark = pytest.mark.host
CPU = torch.device("cpu")
SM, SC = 0.8, 1.3
COVERAGE = {}


@pytest.fixture(scope="module")
def base(host):
    model, clip, _vae = host.call("CheckpointLoaderSimple", ckpt_name=host.checkpoint(0))
    w0 = {k: v.detach().clone() for k, v in model.model.state_dict().items()}
    w0.update({k: v.detach().clone() for k, v in clip.cond_stage_model.state_dict().items()})
    return model, clip, w0


@pytest.fixture(scope="module")
def pack(host):
    return sys.modules[host.nodes.NODE_CLASS_MAPPINGS["TCDLoraLoader"].__module__]


def write(host, name, sd, pt=False):
    path = host.models / "loras" / name
    if pt:
        torch.save(sd, str(path))
    else:
        safetensors.torch.save_file(sd, str(path))
    return name


def patched(patcher, keys):
    """The weights the host computes for these keys when it loads this patcher (``patch_weight_to_device``, what
    ``ModelPatcher.load`` does per weight), then restored with ``unpatch_model``."""
    try:
        out = {}
        for k in keys:
            patcher.patch_weight_to_device(k, device_to=CPU)
            out[k] = comfy_get(patcher.model, k).detach().clone()
        return out
    finally:
        patcher.unpatch_model(device_to=CPU)


def comfy_get(module, key):
    for part in key.split("."):
        module = getattr(module, part)
    return module


def sample_keys(keys, per_kind=2):
    """A few weights of every kind (digits folded): every layer type is checked without patching all 800."""
    seen, out = {}, []
    for k in sorted(keys):
        kind = "".join(c for c in k if not c.isdigit())
        if seen.get(kind, 0) < per_kind:
            seen[kind] = seen.get(kind, 0) + 1
            out.append(k)
    return out


def check_weights(model, clip, w0, expected, sm, sc):
    keys = sample_keys(expected)
    got = patched(model, [k for k in keys if k.startswith("diffusion_model.")])
    if clip is not None:
        got.update(patched(clip.patcher, [k for k in keys if not k.startswith("diffusion_model.")]))
    assert set(got) == set(keys)
    for k in keys:
        up, down, alpha = expected[k]
        want = F.expected_weight(w0[k], up, down, alpha, sm if k.startswith("diffusion_model.") else sc)
        assert not torch.equal(want, w0[k])
        # fp16 weights: the host rounds the patched weight stochastically to fp16 (one ulp)
        tol = dict(rtol=2e-3, atol=2e-4) if w0[k].dtype == torch.float16 else dict(rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(got[k], want, **tol, msg=lambda m, k=k: f"{k}: {m}")
    return keys


FORMAT_CASES = [(f, False) for f in F.FORMATS] + [("kohya_ldm", True)]


@pytest.mark.parametrize("fmt,pt", FORMAT_CASES, ids=[f + (".pt" if pt else "") for f, pt in FORMAT_CASES])
def test_format_maps_every_module_and_patches_exactly(host, base, fmt, pt):
    model, clip, w0 = base
    sd, expected = F.make_lora(fmt, model.model, clip.cond_stage_model, seed=len(fmt))
    name = write(host, f"fmt_{fmt}.{'pt' if pt else 'safetensors'}", sd, pt)
    new_model, new_clip, report = host.call("TCDLoraLoader", model=model, clip=clip, lora_name=name,
                                            strength_model=SM, strength_clip=SC)
    n_unet = sum(k.startswith("diffusion_model.") for k in expected)
    n_l = sum(k.startswith("clip_l.") for k in expected)
    n_g = sum(k.startswith("clip_g.") for k in expected)
    # the file holds every TCD target module of the model (the old processor form: every attention projection)
    all_targets = F.unet_targets(model.model)
    if fmt == "diffusers_old_processor":
        all_targets = [t for t in all_targets if F.ATTN.search(t[0])]
    assert n_unet == len(all_targets) > 500
    assert f"UNet {n_unet}/{n_unet} modules matched (100%)" in report
    for label, n in (("text encoder 1 (clip_l)", n_l), ("text encoder 2 (clip_g)", n_g)):
        assert (f"{label} {n}/{n} modules matched (100%)" in report) == bool(n), report
    assert f"strength_model {SM:g}, strength_clip {SC:g}" in report
    checked = check_weights(new_model, new_clip if (n_l or n_g) else None, w0, expected, SM, SC)
    assert len(checked) > 30
    assert not model.patches and not clip.patcher.patches, "the input model was modified"
    # what the report itself says, part by part (printed and re-checked below)
    parts = re.findall(r"(UNet|text encoder \d \(clip_[lg]\)) (\d+)/(\d+) modules", report)
    COVERAGE[fmt + (".pt" if pt else "")] = parts


def test_report_logged_once_and_model_only_loader(host, base, pack, caplog):
    model, clip, w0 = base
    sd, expected = F.make_lora("kohya_ldm", model.model, clip.cond_stage_model, seed=7)
    name = write(host, "model_only.safetensors", sd)
    with caplog.at_level(logging.INFO):
        new_model, report = host.call("TCDLoraLoaderModelOnly", model=model, lora_name=name, strength_model=1.5)
    ours = [r for r in caplog.records if r.getMessage().startswith("TCD LoRA ")]
    assert [r.getMessage() for r in ours] == [report]
    n_unet = sum(k.startswith("diffusion_model.") for k in expected)
    assert f"UNet {n_unet}/{n_unet} modules matched" in report
    assert "text encoder 1 18 modules not checked or applied (no CLIP input)" in report
    unet_only = {k: v for k, v in expected.items() if k.startswith("diffusion_model.")}
    check_weights(new_model, None, w0, unet_only, 1.5, None)


def test_chained_loaders_apply_both(host, base):
    model, clip, w0 = base
    sd_a, exp_a = F.make_lora("kohya_diffusers", model.model, clip.cond_stage_model, seed=11)
    sd_b, exp_b = F.make_lora("diffusers_lora_down", model.model, None, seed=12)
    a, b = write(host, "chain_a.safetensors", sd_a), write(host, "chain_b.safetensors", sd_b)
    m1, c1, _ = host.call("TCDLoraLoader", model=model, clip=clip, lora_name=a, strength_model=1.0, strength_clip=1.0)
    m2, c2, _ = host.call("TCDLoraLoader", model=m1, clip=c1, lora_name=b, strength_model=0.5, strength_clip=1.0)
    keys = [k for k in exp_b if "attn2.to_k" in k or "input_blocks.0.0" in k or "proj_in" in k][:20]
    keys += [k for k in exp_b if k.endswith(("emb_layers.1.weight", "op.weight"))][:5]
    got = patched(m2, keys)
    assert len(got) == len(keys) > 10
    for k in keys:
        up_a, down_a, al_a = exp_a[k]
        up_b, down_b, al_b = exp_b[k]
        want = F.expected_weight(F.expected_weight(w0[k], up_a, down_a, al_a, 1.0), up_b, down_b, al_b, 0.5)
        torch.testing.assert_close(got[k], want, rtol=1e-4, atol=1e-5)


# -- bad files ---------------------------------------------------------------------------------------------------
def refused(host, pack, base, name, *patterns, model_only=False):
    """The loader's message for a refused file; the refusal must come from the header alone: no tensor read, no
    patch built by the host, none added to a clone (the loader only patches clones, so the input model's own
    ``patches`` could never show it)."""
    model, clip, _ = base
    before = dict(pack.STATS)
    with pytest.raises(pack.TCDLoraError) as ei:
        if model_only:
            host.call("TCDLoraLoaderModelOnly", model=model, lora_name=name, strength_model=1.0)
        else:
            host.call("TCDLoraLoader", model=model, clip=clip, lora_name=name, strength_model=1.0, strength_clip=1.0)
    msg = str(ei.value)
    assert name in msg
    for p in patterns:
        assert p in msg, msg
    after = {k: pack.STATS[k] - before[k] for k in ("tensor_reads", "patch_builds", "patch_adds")}
    assert after == {"tensor_reads": 0, "patch_builds": 0, "patch_adds": 0}, after
    return msg


def test_checkpoint_as_lora_refused(host, pack, base):
    src = host.models / "checkpoints" / host.checkpoint(0)
    shutil.copy(src, host.models / "loras" / "actually_a_checkpoint.safetensors")
    refused(host, pack, base, "actually_a_checkpoint.safetensors", "holds no LoRA tensors", "checkpoint",
            "Nothing was applied")


def test_vae_as_lora_refused(host, pack, base):
    sd = {"encoder.conv_in.weight": torch.zeros(8, 3, 3, 3), "decoder.conv_out.weight": torch.zeros(3, 8, 3, 3)}
    refused(host, pack, base, write(host, "a_vae.safetensors", sd), "holds no LoRA tensors", "VAE")


def test_truncated_file_refused(host, pack, base):
    model, clip, _ = base
    sd, _ = F.make_lora("kohya_ldm", model.model, None, seed=3)
    write(host, "whole.safetensors", sd)
    data = (host.models / "loras" / "whole.safetensors").read_bytes()
    (host.models / "loras" / "truncated.safetensors").write_bytes(data[: len(data) * 2 // 3])
    refused(host, pack, base, "truncated.safetensors", "cannot be read", "truncated")
    (host.models / "loras" / "garbage.safetensors").write_bytes(os.urandom(4096))
    refused(host, pack, base, "garbage.safetensors", "cannot be read")
    write(host, "whole.pt", sd, pt=True)
    data = (host.models / "loras" / "whole.pt").read_bytes()
    (host.models / "loras" / "truncated.pt").write_bytes(data[: len(data) // 2])
    refused(host, pack, base, "truncated.pt", "cannot be read with the host's weights-only loader")


def test_one_wrong_shape_refused(host, pack, base):
    model, clip, _ = base
    sd, _ = F.make_lora("kohya_ldm", model.model, clip.cond_stage_model, seed=4)
    key = next(k for k in sd if "attn2_to_k.lora_down" in k)
    sd[key] = torch.zeros(sd[key].shape[0], sd[key].shape[1] + 16)
    msg = refused(host, pack, base, write(host, "one_bad_shape.safetensors", sd), "1 module(s) have the wrong shape",
                  key[:-len(".lora_down.weight")])
    assert "x64" in msg and "80" in msg  # the weight is 64 wide (context_dim), the LoRA 80


def test_one_unknown_module_refused(host, pack, base):
    model, clip, _ = base
    sd, expected = F.make_lora("diffusers_lora_down", model.model, None, seed=5)
    # a module SD1.5 has and SDXL has not (attention at the first level)
    sd["unet.down_blocks.0.attentions.0.proj_in.lora.down.weight"] = torch.zeros(4, 32)
    sd["unet.down_blocks.0.attentions.0.proj_in.lora.up.weight"] = torch.zeros(32, 4)
    n = len(expected)
    refused(host, pack, base, write(host, "one_unknown.safetensors", sd),
            f"only {n} of {n + 1} UNet modules match", "down_blocks.0.attentions.0.proj_in", model_only=True)


# -- through the executor ----------------------------------------------------------------------------------------
def graph(host, loras, seed=1):
    g = {"ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": host.checkpoint(0)}}}
    m, c = ["ckpt", 0], ["ckpt", 1]
    for i, name in enumerate(loras):
        g[f"lora{i}"] = {"class_type": "TCDLoraLoader", "inputs": {
            "model": m, "clip": c, "lora_name": name, "strength_model": 1.0, "strength_clip": 1.0}}
        m, c = [f"lora{i}", 0], [f"lora{i}", 1]
    g["pos"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": c}}
    g["latent"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}}
    g["sample"] = {"class_type": "TCDKSampler", "inputs": {
        "model": m, "seed": seed, "steps": 1, "cfg": 1.0, "gamma": 0.3, "scheduler": "tcd", "positive": ["pos", 0],
        "negative": ["pos", 0], "latent_image": ["latent", 0], "denoise": 1.0}}
    return g


class Runner:
    """Prompts on the host's long-lived executor (its CLASSIC cache: unchanged nodes, e.g. the checkpoint or an
    unchanged LoRA loader, are not run again, exactly as in the app); returns the sampled latent."""

    def __init__(self, host):
        self.host = host

    def latent(self, prompt):
        return self.host.run_latent(prompt, ["sample", 0])


SMALL = r"attn2\.to_[kv]|ff\.net\.2|\.proj_out"  # a small LoRA keeps each sampling run cheap


def test_graph_lora_changes_output_and_chains(host, base, pack):
    model, clip, _ = base
    a = write(host, "graph_a.safetensors", F.make_lora("kohya_ldm", model.model, clip.cond_stage_model,
                                                          seed=21, scale=0.3, only=SMALL)[0])
    b = write(host, "graph_b.safetensors", F.make_lora("peft", model.model, None, seed=22, scale=0.3, only=SMALL)[0])
    run = Runner(host)
    plain = run.latent(graph(host, []))
    with_a = run.latent(graph(host, [a]))
    with_ab = run.latent(graph(host, [a, b]))
    assert torch.isfinite(with_ab).all()
    # A changes the output; B chained after A changes it again (the weights of both: test_chained_loaders_apply_both)
    for x, y in ((plain, with_a), (with_a, with_ab), (plain, with_ab)):
        assert (x - y).abs().max() > 1e-3

    # downstream change (the sampler's seed): the file is not read again; a rewritten file is read again and changes
    # the result
    reads = pack.STATS["header_reads"]
    sig = pack.TCDLoraLoader.fingerprint_inputs(lora_name=a)
    again = run.latent(graph(host, [a], seed=2))
    assert pack.STATS["header_reads"] == reads
    assert host.call("TCDLoraLoader", model=model, clip=clip, lora_name=a, strength_model=1.0,
                     strength_clip=1.0)[2]  # the node run again: still no read
    assert pack.STATS["header_reads"] == reads
    assert pack.TCDLoraLoader.fingerprint_inputs(lora_name=a) == sig
    assert (again - with_a).abs().max() > 1e-4  # the seed did change the sampling
    write(host, a, F.make_lora("kohya_ldm", model.model, clip.cond_stage_model, seed=23, scale=0.3, only=SMALL)[0])
    st = os.stat(host.models / "loras" / a)
    os.utime(host.models / "loras" / a, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert pack.TCDLoraLoader.fingerprint_inputs(lora_name=a) != sig
    rewritten = run.latent(graph(host, [a]))  # same executor, same inputs: fingerprint_inputs makes the host re-run it
    assert pack.STATS["header_reads"] == reads + 1
    assert (rewritten - with_a).abs().max() > 1e-3


@tcd_figures.reporter("TCD LoRA coverage per format (tiny SDXL-shaped model), as the loader's report says")
def coverage():
    return [f"{fmt:28s} " + ", ".join(f"{p} {m}/{n}" for p, m, n in parts) for fmt, parts in COVERAGE.items()]
