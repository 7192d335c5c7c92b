"""Other TCD packs' workflows in the real frontend: they load, show the replacement, are replaced as a user replaces
them, keep their links and widget values, and run on the server (ComfyUI v0.33.0, frontend 1.48.7); on v0.3.75
(frontend 1.32.9, no replacements) they load with their nodes reported missing and nothing breaks.

The workflows are rebuilt as fixtures (tests/fixtures/other_packs/): ``dfl_tcd_workflow.json`` holds dfl's own
TCD_workflow.json's node types, node ids, links and widget values (SamplerTCD + TCDScheduler into SamplerCustom;
prompts of our own, its one unconnected node from a third pack left out); ``jetthu_tcd_workflow.json`` is a
JettHu/ComfyUI-TCD-style graph (TCD Model Sampling Discrete into SamplerCustom's model, sampler and sigmas). The
public model names are swapped for the test checkpoint and LoRA and the latent shrunk, as test_workflows_browser.py
does, before loading. What the test clicks: the error box's "View details", then in the Errors panel's "Swap Nodes"
group "Replace All" (dfl) or the row's "Replace Node" (JettHu), then the Run button.
"""
from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path

import pytest

from tcd_host import host_version

pytestmark = [pytest.mark.server, pytest.mark.browser]

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "other_packs"
TEST_LORA = "tcd_test_lora_tiny_sdxl.safetensors"  # the name test_workflows_browser.py gives it
SIDE = 64
REPLACING_FRONTEND = "1.48.7"  # ComfyUI v0.33.0's frontend, the one with node replacements

# name -> {node id: (old type, new type)}, the widget values a user had (set on the old nodes before loading: values
# that are not the new nodes' defaults, so a value that was not carried over shows), what the new nodes must then hold,
# and the button clicked in the Swap Nodes group.
CASES = {
    "dfl_tcd_workflow": {
        "replaced": {333: ("SamplerTCD", "TCDSampler"), 332: ("TCDScheduler", "TCDSigmas")},
        "user_values": {333: [0.45]},  # the fixture's gamma 0.3 is also TCDSampler's default
        "expected": {333: {"gamma": 0.45}, 332: {"steps": 8, "denoise": 1, "original_inference_steps": 50,
                                                   "timesteps": ""}},
        "click": "Replace All"},
    "jetthu_tcd_workflow": {
        "replaced": {3: ("TCDModelSamplingDiscrete", "TCDSamplerScheduler")},
        "user_values": {3: [6, "sgm_uniform", 0.75, 0.5]},
        "expected": {3: {"steps": 6, "denoise": 0.75, "gamma": 0.5}},
        "click": "Replace Node"},
}


@pytest.fixture(scope="module")
def model_files(server):
    return {"ckpt": server.build_checkpoint(0), "lora": server.build_asset("loras", TEST_LORA, "build_sdxl_lora")}


def workflow(name, files, prefix):
    """The fixture with the user's values, the test model and LoRA, a small latent and a unique output prefix."""
    wf = json.loads((FIXTURES / f"{name}.json").read_text())
    for node in wf["nodes"]:
        values = node.get("widgets_values")
        if node["type"] == "CheckpointLoaderSimple":
            values[0] = files["ckpt"]
        elif node["type"] in ("LoraLoader", "LoraLoaderModelOnly"):
            values[0] = files["lora"]
        elif node["type"] == "EmptyLatentImage":
            values[:2] = [SIDE, SIDE]
        elif node["type"] == "SaveImage":
            values[0] = prefix
        if node["id"] in CASES[name]["user_values"]:
            node["widgets_values"] = list(CASES[name]["user_values"][node["id"]])
    return wf


def links(wf) -> set:
    return {tuple(link[:5]) for link in wf["links"]}


def wait_for_new_prompt(server, before: set, timeout: float = 240) -> tuple[str, dict]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for pid, entry in server.get("/history").items():
            if pid not in before and entry.get("status", {}).get("completed") is not None:
                if entry["status"].get("status_str") in ("success", "error"):
                    return pid, entry
        time.sleep(0.3)
    raise TimeoutError("the Run button queued nothing that finished")


@pytest.mark.parametrize("name", list(CASES))
def test_other_pack_workflow_is_replaced_and_runs(name, server, frontend, model_files):
    case = CASES[name]
    wf = workflow(name, model_files, f"tcd_repl_{uuid.uuid4().hex[:8]}")
    old_types = sorted(old for old, _ in case["replaced"].values())
    res = frontend.load(copy.deepcopy(wf), name)
    assert sorted(res["missing"]) == old_types and res["page_errors"] == [], res
    if frontend.version != REPLACING_FRONTEND:  # v0.3.75's 1.32.9: missing, as before, and nothing else happens
        assert host_version() != "0.33.0", frontend.version
        assert sorted(res["unregistered"]) == old_types
        return
    page = frontend.page
    # what the user sees: the error box, then the Errors panel's Swap Nodes group, one row per old node
    overlay = page.locator('[data-testid="error-overlay"]')
    overlay.wait_for(state="visible", timeout=20_000)
    page.locator('[data-testid="error-overlay-see-errors"]').click()
    group = page.locator('[data-testid="error-group-swap-nodes"]')
    group.wait_for(state="visible", timeout=20_000)
    text = " ".join(group.inner_text().split())
    for old, new in case["replaced"].values():
        assert f"{old} This node will be replaced by: {new} Replace Node" in text, text
    buttons = group.get_by_role("button", name=case["click"], exact=True)
    assert buttons.count() == (1 if case["click"] == "Replace All" else len(case["replaced"])), text
    buttons.first.click()
    page.wait_for_function("() => Array.from(document.querySelectorAll('.p-toast-message'))"
                           ".some(e => /Replaced \\d+ node type/.test(e.innerText))", timeout=20_000)
    # replaced in place: no missing node left, the new types with the user's values, every link where it was
    live = frontend.widgets()
    assert frontend.evaluate("() => window.app.graph._nodes.filter(n => !window.LiteGraph.registered_node_types"
                             "[n.type]).map(n => n.type)") == []
    for node_id, (_, new) in case["replaced"].items():
        assert live[str(node_id)]["type"] == new
        assert live[str(node_id)]["widgets"] == case["expected"][node_id], live[str(node_id)]
    # both ends of every link: the graph's link table, and each replaced node's own output slots (what moving the
    # node or editing its links reads)
    converted = frontend.graph_to_prompt()
    assert links(converted["workflow"]) == links(wf)
    outputs = frontend.evaluate("(ids) => ids.map(i => window.app.graph.getNodeById(i).outputs"
                                ".map(o => o.links || []))", list(case["replaced"]))
    fixture_nodes = {n["id"]: n for n in wf["nodes"]}
    assert outputs == [[o["links"] for o in fixture_nodes[i]["outputs"]] for i in case["replaced"]], outputs
    prompt = converted["output"]
    for node_id, (_, new) in case["replaced"].items():
        assert prompt[str(node_id)]["class_type"] == new
    # Run, as a user does; the server runs this pack's nodes
    before = set(server.get("/history"))
    frontend.run_button().click()
    pid, entry = wait_for_new_prompt(server, before)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[-2000:]
    ran = entry["prompt"][2]
    assert {k: (v["class_type"], v["inputs"]) for k, v in ran.items()} == \
        {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}
    (out,) = [k for k, v in ran.items() if v["class_type"] in ("PreviewImage", "SaveImage")]
    assert entry["outputs"][out]["images"], entry["outputs"]


# The names a user types in node search (the other packs' ids and names, and eta) -> the node ids it must list.
SEARCHES = {
    "SamplerTCD": {"TCDSampler"}, "TCDScheduler": {"TCDSigmas"},
    "TCDModelSamplingDiscrete": {"TCDSamplerScheduler"}, "TCD Model Sampling Discrete": {"TCDSamplerScheduler"},
    "eta": {"TCDKSampler", "TCDSampler", "TCDSamplerScheduler", "TCDGammaSweep"},
}


def test_node_search_finds_our_nodes_under_their_names(frontend):
    if frontend.version != REPLACING_FRONTEND:
        pytest.skip(f"frontend {frontend.version}: the host serves no search aliases (ComfyUI v0.33.0 does)")
    for query, expected in SEARCHES.items():
        found = set(frontend.evaluate("""(q) => {
          const pinia = document.getElementById("vue-app").__vue_app__.config.globalProperties.$pinia;
          return pinia._s.get("nodeDef").nodeSearchService.searchNode(q).map(n => n.name); }""", query))
        assert expected <= found, (query, sorted(found)[:20])
