"""Gamma sweeps and the first-step cache, through the real host: whole prompts on one long-lived executor (as the
server queue runs them, so the host's own node cache keeps unchanged models), with the model's evaluations counted
by a wrapper installed with the host's model-function wrapper hook."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tcd_prompts import base_graph, gamma_sweep, tcd_ksampler

pytestmark = pytest.mark.host

REPO = Path(__file__).resolve().parents[1]
EVALS = {"n": 0}  # model evaluations, one per cond in each call's cond_or_uncond
CAPTURED = {}


# -- test-only nodes, registered with the host at run time ----------------------------------------------------------
class CountModelCalls:
    """MODEL -> the same model with a model-function wrapper that counts evaluations."""
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "wrap"
    CATEGORY = "tests"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    def wrap(self, model):
        def counting(apply_model, args):
            EVALS["n"] += len(args["cond_or_uncond"])
            return apply_model(args["input"], args["timestep"], **args["c"])
        m = model.clone()
        m.set_model_unet_function_wrapper(counting)
        return (m,)


class Capture:
    """Output node keeping what it receives (re-executed on every queue run)."""
    RETURN_TYPES = ()
    FUNCTION = "keep"
    OUTPUT_NODE = True
    CATEGORY = "tests"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"key": ("STRING", {"default": ""})},
                "optional": {"latent": ("LATENT",), "image": ("IMAGE",), "text": ("STRING", {"forceInput": True})}}

    @classmethod
    def IS_CHANGED(cls, **_):
        return float("nan")

    def keep(self, key, latent=None, image=None, text=None):
        CAPTURED[key] = {"latent": latent, "image": image, "text": text}
        return {}


class Queue:
    """One PromptExecutor for the whole module, like the server's queue: its cache keeps unchanged node outputs."""

    def __init__(self, host):
        self.host = host
        host.nodes.NODE_CLASS_MAPPINGS.setdefault("TCDTestCountModelCalls", CountModelCalls)
        host.nodes.NODE_CLASS_MAPPINGS.setdefault("TCDTestCapture", Capture)
        self.ckpt = host.checkpoint(0)
        self.lora = write_lora(host, self.ckpt)
        self.cache = sys.modules[host.pack.__name__ + ".nodes.cache"]

    def run(self, prompt, restart=False):
        """Queue ``prompt`` on the host's long-lived executor; returns (model evaluations made, what the capture node
        saw). ``restart``: a new executor first, as after a server restart (every node runs again)."""
        CAPTURED.clear()
        EVALS["n"] = 0
        self.host.run(prompt, fresh=restart)
        return EVALS["n"], CAPTURED.get("out")


def write_lora(host, ckpt):
    """A small kohya-format LoRA (rank 4) on attention projections of the tiny UNet, in the host's loras folder."""
    import safetensors.torch

    import tcd_lora_files
    path = host.models / "loras" / "tiny_tcd_test_lora.safetensors"
    if not path.exists():
        model = host.call("CheckpointLoaderSimple", ckpt_name=ckpt)[0]
        sd, expected = tcd_lora_files.make_lora("kohya_ldm", model.model, seed=11, scale=0.3,
                                                only=r"attn1\.to_q|attn2\.to_[kv]")
        assert len(expected) >= 10
        safetensors.torch.save_file(sd, str(path))
    return path.name


def prompt(q, *, node="TCDKSampler", seed=5, text="a red fox in the snow", strength=1.0, width=64, height=64,
           batch=1, gamma=0.3, gammas=None, cfg=1.0, steps=4, grid=False):
    """API prompt: checkpoint -> call counter -> LoraLoader -> CLIPTextEncode x2 -> sampler or sweep -> capture."""
    p = base_graph(q.ckpt, width, height, batch, positive=text, clip=("lora", 1))
    p["count"] = {"class_type": "TCDTestCountModelCalls", "inputs": {"model": ["ckpt", 0]}}
    p["lora"] = {"class_type": "LoraLoader", "inputs": {"model": ["count", 0], "clip": ["ckpt", 1],
                                                        "lora_name": q.lora, "strength_model": strength,
                                                        "strength_clip": 1.0}}
    if node == "TCDGammaSweep":
        p["sampler"] = gamma_sweep(gammas, steps, cfg, seed=seed, model=("lora", 0))
    else:
        p["sampler"] = tcd_ksampler(gamma, steps, cfg, seed=seed, model=("lora", 0))
    cap = {"key": "out", "latent": ["sampler", 0]}
    if node == "TCDGammaSweep":
        cap["text"] = ["sampler", 1]
    if grid:
        p["decode"] = {"class_type": "VAEDecode", "inputs": {"samples": ["sampler", 0], "vae": ["ckpt", 2]}}
        p["grid"] = {"class_type": "TCDImageGrid", "inputs": {"images": ["decode", 0], "labels": ["sampler", 1],
                                                              "columns": 0}}
        cap["image"] = ["grid", 0]
    p["capture"] = {"class_type": "TCDTestCapture", "inputs": cap}
    return p


@pytest.fixture(scope="module")
def q(host):
    return Queue(host)


@pytest.fixture
def fresh_cache(q, monkeypatch):
    monkeypatch.delenv("TCD_FIRST_STEP_CACHE", raising=False)
    q.cache.clear()
    return q.cache


def ink_columns(strip: np.ndarray, background) -> np.ndarray:
    """Columns of a label strip holding any pixel that differs from the background."""
    return np.nonzero((np.abs(strip - np.asarray(background)) > 0.2).any(axis=(0, 2)))[0]


# -- the sweep -----------------------------------------------------------------------------------------------------
def test_sweep_shares_the_first_call(q, fresh_cache):
    gammas = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    evals, out = q.run(prompt(q, node="TCDGammaSweep", gammas="0:1:6", grid=True))
    assert evals == 1 + 6 * (4 - 1) == 19
    sweep = out["latent"]["samples"]
    assert sweep.shape == (6, 4, 8, 8)
    assert out["text"].splitlines() == [f"gamma {g:g}" for g in gammas]
    # gamma matters: no two results alike
    assert all(not torch.equal(sweep[i], sweep[j]) for i in range(6) for j in range(i + 1, 6))

    # The real grid of this sweep: 3 x 2 tiles of 64 px, each with a label strip under it.
    grid = out["image"]
    assert grid.shape[0] == 1 and grid.shape[2] == 3 * 64 and grid.shape[3] == 3
    cell_h = grid.shape[1] // 2
    assert grid.shape[1] == 2 * cell_h and cell_h > 64
    img = grid[0].numpy()
    for i in range(6):
        r, c = divmod(i, 3)
        strip = img[r * cell_h + 64:(r + 1) * cell_h, c * 64:(c + 1) * 64]
        assert len(ink_columns(strip, strip[0, 0])) > 10, f"no label under tile {i}"
    from PIL import Image

    from tcd_host import docs_images
    Image.fromarray((img * 255).round().astype(np.uint8)).save(docs_images() / "gamma_sweep_grid.png")

    # TCD Sampler with one of these gammas (a re-queue changing only the sampler) gives the same latent, bitwise,
    # and reuses the sweep's first evaluation.
    evals, single = q.run(prompt(q, gamma=0.6))
    assert evals == 3
    assert torch.equal(single["latent"]["samples"], sweep[3:4])


def test_each_sweep_result_equals_its_single_run_batch_and_cfg(q, fresh_cache):
    gammas = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    evals, out = q.run(prompt(q, node="TCDGammaSweep", gammas="0, 0.2, 0.4, 0.6, 0.8, 1", cfg=2.0, steps=2, batch=2,
                              seed=8))
    assert evals == 2 * (1 + 6 * (2 - 1))  # cond and uncond in each call
    assert out["text"].splitlines() == [f"gamma {g:g} #{b}" for g in gammas for b in (1, 2)]
    sweep = out["latent"]["samples"]
    assert sweep.shape == (12, 4, 8, 8)
    for i, g in enumerate(gammas):  # gamma-major: rows 2i, 2i+1 are gamma i's batch
        evals, single = q.run(prompt(q, gamma=g, cfg=2.0, steps=2, batch=2, seed=8))
        assert evals == 2 * 1, g
        assert torch.equal(single["latent"]["samples"], sweep[2 * i:2 * i + 2]), f"gamma {g}"


# -- the first-step cache of TCD Sampler ---------------------------------------------------------------------------
def test_gamma_only_requeue_skips_the_first_call_and_anything_else_misses(q, fresh_cache, monkeypatch):
    base = dict(seed=5, text="a red fox in the snow", strength=1.0, width=64)
    monkeypatch.setenv("TCD_FIRST_STEP_CACHE", "0")  # the reference: a run that neither uses nor fills the cache
    evals, uncached = q.run(prompt(q, **base, gamma=0.7))
    assert evals == 4
    monkeypatch.delenv("TCD_FIRST_STEP_CACHE")
    evals, first = q.run(prompt(q, **base, gamma=0.3))
    assert evals == 4
    evals, cached = q.run(prompt(q, **base, gamma=0.7))
    assert evals == 3
    assert torch.equal(cached["latent"]["samples"], uncached["latent"]["samples"])
    # Switched off, a gamma-only change makes all the calls again.
    monkeypatch.setenv("TCD_FIRST_STEP_CACHE", "0")
    assert q.run(prompt(q, **base, gamma=0.5))[0] == 4
    monkeypatch.delenv("TCD_FIRST_STEP_CACHE")
    for name, change in (("seed", {"seed": 6}), ("prompt", {"text": "a blue fox"}),
                         ("LoRA strength", {"strength": 0.5}), ("latent", {"width": 96})):
        evals, out = q.run(prompt(q, **{**base, "gamma": 0.3, **change}))
        assert evals == 4, f"changing the {name} made {evals} model calls"
        # the change really changes the result, so a cache hit would have been wrong
        assert not torch.equal(out["latent"]["samples"][..., :8], first["latent"]["samples"]), name
    assert fresh_cache.size() <= fresh_cache.MAX_ENTRIES


def test_cache_entries_die_with_the_model(q, fresh_cache):
    import gc
    model, clip = q.host.call("CheckpointLoaderSimple", ckpt_name=q.ckpt)[:2]
    cond = q.host.call("CLIPTextEncode", clip=clip, text="x")[0]
    latent = q.host.call("EmptyLatentImage", width=64, height=64, batch_size=1)[0]
    q.host.call("TCDKSampler", model=model, seed=1, steps=1, cfg=1.0, gamma=0.3, scheduler="tcd", positive=cond,
                negative=cond, latent_image=latent, denoise=1.0)
    assert fresh_cache.size() == 1
    mm = sys.modules["comfy.model_management"]
    del model
    mm.unload_all_models()  # the host's loaded-model list holds the model until unloaded
    mm.cleanup_models()
    gc.collect()
    assert fresh_cache.size() == 0


# -- gammas: parsing and validation errors -------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [("0, 0.2, 0.4", [0.0, 0.2, 0.4]), ("0:1:6", [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
                                           (" 0.3 ", [0.3]), ("1:0:3", [1.0, 0.5, 0.0]), ("0.25:0.25:1", [0.25])])
def test_gammas_accepted(host, text, expected):
    sweep = sys.modules[host.pack.__name__ + ".nodes.sweep"]
    assert sweep.parse_gammas(text) == expected


@pytest.mark.parametrize("text,fragment", [
    ("abc", "'abc' is not a number"), ("2", "'2' is outside the allowed range 0..1"), ("", "gammas is empty"),
    ("0:1:0", "count 0 is outside the allowed range 1..64"), ("0:1", "three parts"),
    ("0, nan", "'nan' is outside the allowed range 0..1"), ("0:1.5:3", "'1.5' is outside the allowed range 0..1")])
def test_bad_gammas_rejected_at_validation(q, text, fragment):
    ok, err, _, node_errors = q.host.validate(prompt(q, node="TCDGammaSweep", gammas=text))
    assert "sampler" in node_errors, (err, node_errors)
    details = " ".join(e["details"] for e in node_errors["sampler"]["errors"])
    assert fragment in details, details


# -- the grid on its own ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tile,n,columns,cols,rows", [(64, 5, 0, 3, 2), (64, 5, 5, 5, 1), (64, 3, 2, 2, 2),
                                                      (1024, 2, 0, 2, 1)])
def test_grid_layout_and_labels(host, tile, n, columns, cols, rows):
    colours = torch.linspace(0.1, 0.9, n)
    images = colours.view(n, 1, 1, 1).expand(n, tile, tile, 3).clone()
    images[:, :, :, 1] = 0.5
    labels = "\n".join(f"gamma {i / 10:g}" for i in range(n))
    (grid,) = host.call("TCDImageGrid", images=images, labels=labels, columns=columns)
    assert grid.shape[0] == 1 and grid.shape[2] == cols * tile and grid.shape[3] == 3
    assert grid.shape[1] % rows == 0
    cell_h = grid.shape[1] // rows
    strip_h = cell_h - tile
    assert max(10, tile // 20) <= strip_h <= tile // 2
    img = grid[0].numpy()
    background = img[tile, 0]  # the label strip's top-left corner
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        y, x = r * cell_h, c * tile
        if i >= n:  # empty cell
            assert (np.abs(img[y:y + cell_h, x:x + tile] - background) < 1e-6).all()
            continue
        assert np.allclose(img[y:y + tile, x:x + tile], images[i].numpy(), atol=1 / 255 + 1e-6)
        strip = img[y + tile:y + cell_h, x:x + tile]
        ink = ink_columns(strip, background)
        assert len(ink) > 0, f"no label under tile {i}"
        rows_with_ink = np.nonzero((np.abs(strip - background) > 0.2).any(axis=(1, 2)))[0]
        text_h = rows_with_ink.max() - rows_with_ink.min() + 1
        # Legible: the text is at least 6 px tall on 64-px tiles and scaled with the tile on 1024-px tiles,
        # and it fits the tile.
        assert text_h >= max(6, tile // 40), (tile, text_h)
        assert ink.max() - ink.min() + 1 <= tile - 2


# -- the example workflow ------------------------------------------------------------------------------------------
def test_sweep_workflow_files_agree_and_validate(q):
    """The UI file and its API copy describe the same graph (widget order as the frontend saves it: a
    control-after-generate value after seed), and the API prompt passes the host's validation with our files."""
    import json
    ui = json.loads((REPO / "workflows" / "tcd_gamma_sweep.json").read_text())
    api = json.loads((REPO / "workflows" / "api" / "tcd_gamma_sweep.json").read_text())
    widget_types = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
    by_id = {n["id"]: n for n in ui["nodes"]}
    assert {str(i) for i, n in by_id.items() if n["type"] != "Note"} == set(api)
    for nid, n in by_id.items():
        if n["type"] == "Note":
            assert "TCD-SDXL-LoRA.safetensors" in n["widgets_values"][0] and "gamma" in n["widgets_values"][0]
            continue
        a = api[str(nid)]
        assert a["class_type"] == n["type"]
        names = []
        for name, (kind, _opts) in q.host.input_specs(n["type"]).items():
            if isinstance(kind, list) or kind in widget_types:
                names += [name, "control after generate"] if name == "seed" else [name]
        values = n.get("widgets_values", [])
        assert len(values) == len(names), (n["type"], names, values)
        linked = {i["widget"]["name"] for i in n["inputs"] if "widget" in i and i["link"] is not None}
        for name, value in zip(names, values, strict=True):
            if name == "control after generate":
                assert value == "fixed"  # a sweep compares gammas at one seed
            elif name in linked:
                assert isinstance(a["inputs"][name], list), (n["type"], name)
            else:
                assert a["inputs"][name] == value, (n["type"], name, a["inputs"][name], value)
    for lid, src, sslot, dst, dslot, kind in ui["links"]:
        name = by_id[dst]["inputs"][dslot]["name"]
        assert api[str(dst)]["inputs"][name] == [str(src), sslot], (lid, name)
        assert kind in (by_id[src]["outputs"][sslot]["type"], "*") and lid in by_id[src]["outputs"][sslot]["links"]
        assert by_id[dst]["inputs"][dslot]["link"] == lid
    assert api["8"]["class_type"] == "TCDGammaSweep" and len(api["8"]["inputs"]["gammas"].split(",")) == 6
    assert api["8"]["inputs"]["steps"] == 4 and api["8"]["inputs"]["cfg"] == 1
    # With the tiny test files in place of SDXL and the TCD LoRA, the host accepts the prompt as it is.
    prompt_ = json.loads(json.dumps(api))
    prompt_["2"]["inputs"]["ckpt_name"] = q.ckpt
    prompt_["3"]["inputs"]["lora_name"] = q.lora
    ok, err, outputs, node_errors = q.host.validate(prompt_)
    assert ok and not node_errors, (err, node_errors)
    assert set(outputs) >= {"11"}


@pytest.mark.parametrize("name,value,fragment", [("steps", 60, "steps=60"), ("cfg", float("nan"), "cfg=nan"),
                                                 ("scheduler", "no_such", "scheduler='no_such'"),
                                                 ("denoise", 0.0, "denoise=0.0")])
def test_sweep_checks_its_other_inputs_like_tcd_sampler(q, name, value, fragment):
    p = prompt(q, node="TCDGammaSweep", gammas="0, 1")
    p["sampler"]["inputs"][name] = value
    ok, err, _, node_errors = q.host.validate(p)
    assert "sampler" in node_errors, (err, node_errors)
    assert fragment in " ".join(e["details"] for e in node_errors["sampler"]["errors"])
