"""The example workflows (workflows/*.json) in the real frontend and on the real server.

For every UI workflow in workflows/ (whatever files are there): the frontend bundled with the host loads it in headless
Debian Chromium with no missing node types, no page errors and no alert; every widget holds the value shipped (read by
name from the live widgets, so a shifted widgets_values list is caught); the frontend's own graph-to-prompt gives
exactly the shipped API copy in workflows/api/ (on another frontend: exactly what the server reads, see
``server_view``); the API copy, with the public file names swapped for the test models, a test LoRA and a test image
and the sizes shrunk, runs on the server and writes an image. A screenshot of each loaded workflow goes to
workflow_<name>.png in ``docs_images()``: a temporary folder, or docs/images when ``make docs-images`` runs this test
to redraw the pictures the docs embed. The host's template list and the frontend's template browser show the pack's
workflows with their thumbnails.
"""
from __future__ import annotations

import copy
import json
import urllib.request
import uuid
from pathlib import Path

import pytest

from tcd_host import PACK_NAME, docs_images

pytestmark = [pytest.mark.server, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
PACK = PACK_NAME  # the pack's folder name under custom_nodes on the test server (its registry name)
NAMES = sorted(p.stem for p in WORKFLOWS.glob("*.json"))

TEST_LORA = "tcd_test_lora_tiny_sdxl.safetensors"
TEST_IMAGE = "tcd_test_input.png"
SIDE = 64

# File names users will have (public model names), per loader input.
CLIPS = {"clip_g.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors"}
PUBLIC_FILES = {
    "ckpt_name": {"sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.safetensors", "sd3.5_large.safetensors"},
    "lora_name": {"TCD-SDXL-LoRA.safetensors", "TCD-SD15-LoRA.safetensors", "Hyper-SDXL-1step-lora.safetensors",
                  "Hyper-SD3-8steps-CFG-lora.safetensors", "Hyper-FLUX.1-dev-8steps-lora.safetensors"},
    "unet_name": {"flux1-dev.safetensors"},
    "vae_name": {"ae.safetensors"},
    "clip_name1": CLIPS, "clip_name2": CLIPS, "clip_name3": CLIPS,
    "image": {"example.png"},
}
# The flow workflows' public files -> the test files (the small models have no text encoder the host's loaders
# accept, so the test swaps each prompt encoded by a CLIP loader for seeded test conditioning).
FLOW_LORAS = {"Hyper-SD3-8steps-CFG-lora.safetensors": "sd3", "Hyper-FLUX.1-dev-8steps-lora.safetensors": "flux"}
CLIP_LOADERS = {"TripleCLIPLoader", "DualCLIPLoader"}

# What each shipped workflow must hold: {class_type: {input: value}} (every node of that type must match).
EXPECTED = {
    "tcd_sdxl_txt2img": {
        "CheckpointLoaderSimple": {"ckpt_name": "sd_xl_base_1.0.safetensors"},
        "TCDLoraLoader": {"lora_name": "TCD-SDXL-LoRA.safetensors"},
        "TCDKSampler": {"steps": 4, "gamma": 0.3, "cfg": 1, "scheduler": "tcd", "denoise": 1},
        "EmptyLatentImage": {"width": 1024, "height": 1024},
        "VAEDecode": {}, "SaveImage": {}},
    "tcd_sd15_txt2img": {
        "CheckpointLoaderSimple": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"},
        "TCDLoraLoader": {"lora_name": "TCD-SD15-LoRA.safetensors"},
        "TCDKSampler": {"steps": 4, "gamma": 0.3, "cfg": 1, "scheduler": "tcd", "denoise": 1},
        "EmptyLatentImage": {"width": 512, "height": 512},
        "VAEDecode": {}, "SaveImage": {}},
    "tcd_custom_sampler": {
        "SamplerCustomAdvanced": {}, "TCDSampler": {"gamma": 0.3},
        "TCDSigmas": {"steps": 4, "denoise": 1, "original_inference_steps": 50},
        "RandomNoise": {}, "BasicGuider": {}, "SaveImage": {}},
    "tcd_img2img": {
        "LoadImage": {"image": "example.png"}, "VAEEncode": {},
        "TCDKSampler": {"denoise": 0.6, "gamma": 0.3, "cfg": 1, "scheduler": "tcd"}, "SaveImage": {}},
    "tcd_sd35_txt2img": {
        "CheckpointLoaderSimple": {"ckpt_name": "sd3.5_large.safetensors"},
        "TripleCLIPLoader": {"clip_name1": "clip_g.safetensors", "clip_name2": "clip_l.safetensors",
                             "clip_name3": "t5xxl_fp16.safetensors"},
        "TCDLoraLoaderModelOnly": {"lora_name": "Hyper-SD3-8steps-CFG-lora.safetensors", "strength_model": 0.125},
        "TCDKSampler": {"steps": 8, "gamma": 0.3, "cfg": 5, "scheduler": "tcd", "denoise": 1},
        "EmptySD3LatentImage": {"width": 1024, "height": 1024}, "VAEDecode": {}, "SaveImage": {}},
    "tcd_flux_txt2img": {
        "UNETLoader": {"unet_name": "flux1-dev.safetensors"}, "VAELoader": {"vae_name": "ae.safetensors"},
        "DualCLIPLoader": {"clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl_fp16.safetensors", "type": "flux"},
        "TCDLoraLoaderModelOnly": {"lora_name": "Hyper-FLUX.1-dev-8steps-lora.safetensors", "strength_model": 0.125},
        "FluxGuidance": {"guidance": 3.5},
        "TCDKSampler": {"steps": 8, "gamma": 0.3, "cfg": 1, "scheduler": "tcd", "denoise": 1},
        "EmptySD3LatentImage": {"width": 1024, "height": 1024}, "VAEDecode": {}, "SaveImage": {}},
    "tcd_hyper_sd_1step": {
        "TCDLoraLoader": {"lora_name": "Hyper-SDXL-1step-lora.safetensors"},
        "TCDKSampler": {"steps": 1, "gamma": 1.0, "cfg": 1, "scheduler": "tcd", "denoise": 1},
        "SaveImage": {}},
}

# Frontend-only node types that never reach the server (allowed in the UI files, absent from the API copies).
FRONTEND_ONLY = {"Note", "MarkdownNote"}
# Widgets the frontend adds that are not node inputs.
UI_ONLY_WIDGETS = {"control_after_generate", "upload"}
# Display widgets that a frontend version gives one core node and that the server never reads (not inputs in its
# /object_info): PreviewAny shows its text in "preview" on frontend 1.32.9, in "preview_text" + "preview_mode" on 1.48.
# Only these may differ between hosts; every declared input, every link and this pack's widgets must match exactly.
FRONTEND_DISPLAY_WIDGETS = {"PreviewAny": {"preview", "preview_text", "preview_mode"}}


def declared_inputs(object_info, class_type) -> set:
    spec = object_info[class_type]["input"]
    return set(spec.get("required", {})) | set(spec.get("optional", {}))


def display_only(object_info, class_type, name) -> bool:
    """A frontend display widget of a core node, which the server does not declare as an input."""
    return name in FRONTEND_DISPLAY_WIDGETS.get(class_type, ()) and name not in declared_inputs(object_info, class_type)


def server_view(prompt: dict, object_info) -> dict:
    """Everything the server reads from an API prompt, exactly: node ids, class types and inputs, less display-only
    widget values and the ``_meta`` titles (a default title follows the frontend version: "BasicGuider" on 1.32.9,
    "Basic Guider" on 1.48)."""
    return {nid: {"class_type": n["class_type"],
                  "inputs": {k: v for k, v in n["inputs"].items() if not display_only(object_info, n["class_type"], k)}}
            for nid, n in prompt.items()}


SHIPPED_FRONTEND = "1.32.9"  # the frontend the shipped files were exported from (ComfyUI v0.3.75's)


def load(name):
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


def load_api(name):
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


def test_the_issue_workflows_are_shipped():
    assert set(EXPECTED) <= set(NAMES), f"missing workflows: {set(EXPECTED) - set(NAMES)}"


# -- fixtures ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info")


@pytest.fixture(scope="module")
def test_files(server):
    """The small test models (SDXL-, SD3- and Flux-shaped), a LoRA for each and a small PNG, in the server's
    folders."""
    import torch
    from PIL import Image

    ckpt = server.build_checkpoint(0)
    flow = {"sd3_ckpt": server.build_asset("checkpoints", "tiny_sd3_ckpt.safetensors", "build_flow_checkpoint", "sd3"),
            "flux": server.build_asset("diffusion_models", "tiny_flux.safetensors", "build_flow_model", "flux"),
            "vae16": server.build_asset("vae", "tiny_vae16.safetensors", "build_vae", 16)}
    for family in ("sd3", "flux"):
        flow[f"lora_{family}"] = server.build_asset("loras", f"tcd_test_lora_tiny_{family}.safetensors",
                                                    "build_flow_lora", family)
    lora = server.build_asset("loras", TEST_LORA, "build_sdxl_lora")
    img = server.input / TEST_IMAGE
    if not img.exists():
        y, x = torch.meshgrid(torch.linspace(0, 1, SIDE), torch.linspace(0, 1, SIDE), indexing="ij")
        rgb = (torch.stack([x, y, 1 - x * y], -1) * 255).to(torch.uint8).numpy()
        Image.fromarray(rgb).save(img)
    return {"ckpt": ckpt, "lora": lora, "image": TEST_IMAGE, **flow}


# -- the files themselves ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_workflow_files(name, object_info):
    wf, api = load(name), load_api(name)
    from PIL import Image
    with Image.open(WORKFLOWS / f"{name}.jpg") as im:  # the template browser asks for <name>.jpg
        assert im.format == "JPEG" and min(im.size) >= 128
    assert {"nodes", "links", "last_node_id", "last_link_id", "version"} <= set(wf)
    types = {n["type"] for n in wf["nodes"]}
    notes = [n for n in wf["nodes"] if n["type"] in FRONTEND_ONLY]
    assert notes and all(len(n["widgets_values"][0]) > 100 for n in notes), "each workflow carries a Note"
    note = "\n".join(n["widgets_values"][0] for n in notes)
    for t in types - FRONTEND_ONLY:
        assert t in object_info, f"{name}: node type {t} is not on a stock host with this pack"
        module = object_info[t]["python_module"]
        assert module.startswith(("nodes", "comfy_extras.")) or PACK in module, f"{name}: {t} comes from {module}"
    # loader widgets hold the public file names, and the Note names every model file
    for node in api.values():
        inputs, ct = node["inputs"], node["class_type"]
        for key in PUBLIC_FILES:
            value = inputs.get(key)
            if not isinstance(value, str) or (key == "image" and ct != "LoadImage"):
                continue
            assert value in PUBLIC_FILES[key], f"{name}: {ct}.{key} = {value!r} is not a public file name"
            if key != "image":
                assert value in note, f"{name}: the Note does not say where to get {value}"
    assert "gamma" in note
    # UI and API copies hold the same executable nodes
    assert {str(n["id"]) for n in wf["nodes"] if n["type"] not in FRONTEND_ONLY} == set(api)


# -- in the frontend and on the server -----------------------------------------------------------------------------
def rewrite_for_test(prompt: dict, files: dict, prefix: str) -> dict:
    """Public files -> the test model, LoRA and image; sizes (and sweep lengths) -> tiny; a unique output prefix."""
    p = copy.deepcopy(prompt)
    clip_loaders = [nid for nid, n in p.items() if n["class_type"] in CLIP_LOADERS]
    for nid in clip_loaders:
        del p[nid]
    for i, (nid, node) in enumerate(sorted(p.items())):
        clip = node["inputs"].get("clip")
        if node["class_type"] == "CLIPTextEncode" and isinstance(clip, list) and clip[0] in clip_loaders:
            p[nid] = {"class_type": "TCDTestConditioning", "inputs": {"seed": i, "guidance": 3.5}}
    for node in p.values():
        inputs, ct = node["inputs"], node["class_type"]
        if "ckpt_name" in inputs:
            inputs["ckpt_name"] = files["sd3_ckpt"] if inputs["ckpt_name"].startswith("sd3") else files["ckpt"]
        if "lora_name" in inputs:
            family = FLOW_LORAS.get(inputs["lora_name"])
            inputs["lora_name"] = files[f"lora_{family}"] if family else files["lora"]
        if "unet_name" in inputs:
            inputs["unet_name"] = files["flux"]
        if "vae_name" in inputs:
            inputs["vae_name"] = files["vae16"]
        if ct == "EmptySD3LatentImage":
            inputs.update(width=SIDE, height=SIDE, batch_size=1)
        if ct == "LoadImage":
            inputs["image"] = files["image"]
        if ct == "EmptyLatentImage":
            inputs.update(width=SIDE, height=SIDE, batch_size=1)
        if ct == "ImageScale":
            inputs.update(width=SIDE, height=SIDE)
        if ct == "TCDGammaSweep":
            inputs["gammas"] = "0, 1"  # two runs instead of the shipped list: the same graph, a third of the time
        if "filename_prefix" in inputs:
            inputs["filename_prefix"] = prefix
    return p


def check_widgets(name, live: dict, api: dict, object_info):
    """Every live widget (by name) holds the value of the shipped API copy, and the issue's values."""
    api = server_view(api, object_info)
    for node_id, node in api.items():
        assert node_id in live, f"{name}: node {node_id} ({node['class_type']}) did not load"
        got = live[node_id]
        assert got["type"] == node["class_type"]
        linked = {k for k, v in node["inputs"].items() if isinstance(v, list)}  # widget inputs fed by a link
        widgets = {k: v for k, v in got["widgets"].items() if k not in UI_ONLY_WIDGETS and k not in linked
                   and not display_only(object_info, node["class_type"], k)}
        literal = {k: v for k, v in node["inputs"].items() if k not in linked}
        assert widgets == literal, f"{name}: node {node_id} {node['class_type']} loaded {widgets}, shipped {literal}"
        if "control_after_generate" in got["widgets"]:
            assert got["widgets"]["control_after_generate"] in ("fixed", "increment", "decrement", "randomize")
    for class_type, values in EXPECTED.get(name, {}).items():
        nodes = [n for n in live.values() if n["type"] == class_type]
        assert nodes, f"{name}: no {class_type} node"
        for n in nodes:
            for k, v in values.items():
                assert n["widgets"][k] == pytest.approx(v), f"{name}: {class_type}.{k} = {n['widgets'][k]!r}, " \
                                                            f"expected {v!r}"


def check_outputs(name, server, entry, prompt):
    assert entry["status"]["status_str"] == "success", f"{name}: {json.dumps(entry['status'])[:3000]}"
    import numpy as np
    from PIL import Image
    saved = [node_id for node_id, n in prompt.items() if n["class_type"] in ("SaveImage", "PreviewImage")]
    assert saved, f"{name}: no node writes an image"
    for node_id in saved:
        images = entry["outputs"].get(node_id, {}).get("images", [])
        assert images, f"{name}: {prompt[node_id]['class_type']} {node_id} wrote nothing"
        for im in images:
            folder = server.output if im["type"] == "output" else Path(server.root) / "temp"
            path = folder / im["subfolder"] / im["filename"]
            with Image.open(path) as pic:
                a = np.asarray(pic.convert("RGB"), dtype=np.float32)
            assert a.shape[0] >= 32 and a.shape[1] >= 32 and np.isfinite(a).all() and a.std() > 0.5, \
                f"{name}: {path} is blank or tiny {a.shape}"
            if name in EXPECTED and any(n["class_type"] in ("EmptyLatentImage", "EmptySD3LatentImage")
                                        for n in prompt.values()):
                assert a.shape[:2] == (SIDE, SIDE), f"{name}: {path} is {a.shape}, the latent was {SIDE}x{SIDE}"
    for node_id, n in prompt.items():  # the LoRA loader's report reaches the text preview
        source = n["inputs"].get("source")
        if n["class_type"] == "PreviewAny" and isinstance(source, list) \
                and prompt[source[0]]["class_type"].startswith("TCDLoraLoader"):
            text = "".join(entry["outputs"][node_id]["text"])
            lora = next(n["inputs"]["lora_name"] for n in prompt.values() if "lora_name" in n["inputs"])
            assert lora in text, f"{name}: the preview shows {text!r}, not the LoRA report"


@pytest.mark.parametrize("name", NAMES)
def test_workflow_loads_converts_and_runs(name, server, frontend, test_files, object_info):
    wf, api = load(name), load_api(name)
    res = frontend.load(wf, name)
    assert res["missing"] == [] and res["unregistered"] == [], f"{name}: missing node types {res}"
    assert res["page_errors"] == [], f"{name}: page errors {res['page_errors']}"
    assert res["alerts"] == [], f"{name}: the frontend complained {res['alerts']}"
    assert res["count"] == len(wf["nodes"])
    check_widgets(name, frontend.widgets(), api, object_info)
    frontend.screenshot(docs_images() / f"workflow_{name}.png")

    errors_before = len(frontend.page_errors)
    converted = frontend.graph_to_prompt()
    assert frontend.page_errors[errors_before:] == []
    assert server_view(converted["output"], object_info) == server_view(api, object_info), \
        f"{name}: the frontend's graph-to-prompt differs from workflows/api/{name}.json"
    if frontend.version == SHIPPED_FRONTEND:  # the frontend the files were exported from gives them back byte for byte
        assert converted["output"] == api
    links = {tuple(link[:5]) for link in converted["workflow"]["links"]}
    assert links == {tuple(link[:5]) for link in wf["links"]}, f"{name}: links changed on load"

    prefix = f"tcd_wf_{name}_{uuid.uuid4().hex[:8]}"
    # the shipped API copy itself (what a script POSTs), which the server view above showed equal to the UI file's
    prompt = rewrite_for_test(api, test_files, prefix)
    entry = server.run(prompt, timeout=240)
    check_outputs(name, server, entry, prompt)


def test_template_list_and_thumbnails(server, frontend):
    listed = server.get("/api/workflow_templates")
    assert sorted(listed.get(PACK, [])) == NAMES, listed
    for name in NAMES:
        with urllib.request.urlopen(f"{server.url}/api/workflow_templates/{PACK}/{name}.json", timeout=30) as r:
            assert json.loads(r.read()) == load(name)
        with urllib.request.urlopen(f"{server.url}/api/workflow_templates/{PACK}/{name}.jpg", timeout=30) as r:
            assert r.headers["Content-Type"] == "image/jpeg" and r.read()[:2] == b"\xff\xd8"
    # the frontend's template browser: the pack's category, one card per workflow, each thumbnail decoded
    page = frontend.page
    page.evaluate("async () => await window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    try:
        page.get_by_role("dialog").get_by_text(PACK, exact=True).last.click()
        page.wait_for_function("(n) => Array.from(document.querySelectorAll('[role=dialog] img'))"
                               ".filter(i => i.complete && i.naturalWidth > 0).length >= n", arg=len(NAMES),
                               timeout=30_000)
        cards = page.evaluate("() => Array.from(document.querySelectorAll('[role=dialog] img'))"
                              ".map(i => [i.alt, i.naturalWidth])")
        assert sorted(alt for alt, w in cards if w > 0) == NAMES, cards
    finally:
        page.keyboard.press("Escape")
