"""/object_info of every pack node on the real server, compared with what the V1 nodes gave on the same host.

``tests/fixtures/object_info_v1_<host version>.json`` holds each node's /object_info entry as the V1 nodes (commit
eb68991, before the move to the V3 node API) answered it on that host, captured with this module run as a script
(``COMFYUI_PATH=<host> python tests/test_object_info.py``, from that commit's tree with this file copied in; it adds
only the nodes a fixture lacks, so a node added later gets its first entry the same way: TCDSamplerScheduler's is its
first V3 entry, checked field by field when it was captured, and its ids, defaults, outputs and types are checked
independently by test_docs.py against docs/nodes.md and by test_replacements.py against JettHu's node). The
test applies the differences named in ``NAMED`` (each with its reason and the hosts where it shows) to the V1 entry
and requires the live entry to equal the result exactly: inputs, their order, defaults, bounds, step, round, display,
tooltips, optional inputs, outputs, output names and tooltips, category, display name and description. Every named
difference must also occur on its hosts, so the list is exactly what changed.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import tcd_figures
from tcd_host import PACK_NAME, host_version

pytestmark = pytest.mark.server

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PACK_NODES = ("TCDKSampler", "TCDSampler", "TCDSigmas", "TCDSamplerScheduler", "TCDLoraLoader",
              "TCDLoraLoaderModelOnly", "TCDGammaSweep", "TCDImageGrid", "TCDTwoExpertSampler")
ALL_HOSTS = ("0.3.75", "0.33.0")
LORAS = "<the loras folder's files>"  # lora_name's options, whatever the shared server's loras folder holds now
SEEN: list[str] = []  # the named differences this run found, for the summary


def combos_as_combo_type(entry):
    for part in entry["input"].values():
        for name, (kind, opts) in part.items():
            if isinstance(kind, list):
                part[name] = ["COMBO", {**opts, "multiselect": False, "options": kind}]


def module_in_pack_folder(entry):
    entry["python_module"] = f"custom_nodes.{PACK_NAME}"


def lora_families_listed(entry):
    if "SD3/SD3.5 and Flux;" in entry.get("description", ""):
        entry["description"] = entry["description"].replace(
            "SD1.5, SDXL, SD3/SD3.5 and Flux;", "SD1.5, SD2.x, SDXL, SD3/SD3.5, Flux, Qwen-Image, Wan 2.1 and Wan 2.2;")


def schema_flags(*names, aliases_none=False):
    def apply(entry):
        for name in names:
            entry[name] = {"api_node": False, "deprecated": False, "experimental": False, "dev_only": False}.get(name)
        if aliases_none and entry.get("search_aliases") == []:
            entry["search_aliases"] = None
    return apply


# The names node search finds a node under (v0.33.0): the other TCD packs' node ids and display names it replaces
# (dfl/comfyui-tcd-scheduler's SamplerTCD and TCDScheduler, licyk/ComfyUI-TCD-Sampler's TCDScheduler,
# JettHu/ComfyUI-TCD's TCDModelSamplingDiscrete, "TCD Model Sampling Discrete"), and diffusers' name for gamma on every
# node with a gamma.
SEARCH_ALIASES = {
    "TCDKSampler": ["eta"],
    "TCDSampler": ["SamplerTCD", "eta"],
    "TCDSigmas": ["TCDScheduler"],
    "TCDSamplerScheduler": ["TCDModelSamplingDiscrete", "TCD Model Sampling Discrete", "eta"],
    "TCDGammaSweep": ["eta"],
    "TCDTwoExpertSampler": ["eta"],
}


def search_aliases(entry):
    if entry["name"] in SEARCH_ALIASES:
        entry["search_aliases"] = SEARCH_ALIASES[entry["name"]]


# (hosts, what, why, V1 entry -> V3 entry)
NAMED = [
    (ALL_HOSTS, "combo inputs (scheduler, lora_name) are typed 'COMBO', their options list in 'options', plus "
                "'multiselect': false",
     "V3 declares a combo as io.Combo; both frontends read either form, and the values are the same list",
     combos_as_combo_type),
    (ALL_HOSTS, "'api_node', 'deprecated', 'experimental' are present as false",
     "a V3 schema reports every flag; V1 left out what was not set", schema_flags("api_node", "deprecated",
                                                                                   "experimental")),
    (ALL_HOSTS, "'python_module' is 'custom_nodes.<the pack's folder>', now tcd-exact (the V1 captures say "
                "comfyui-tcd)",
     "the folder is the registry name, renamed so as not to collide with JettHu/ComfyUI-TCD (issue 16)",
     module_in_pack_folder),
    (ALL_HOSTS, "Load TCD LoRA's description lists SD2.x, Qwen-Image and Wan 2.1 / 2.2 among the families it checks",
     "the planner's family table has rows for them now (issue 18)", lora_families_listed),
    (("0.33.0",), "'dev_only': false, 'essentials_category', 'output_matchtypes', 'price_badge': null; "
                  "'search_aliases' [] becomes null",
     "v0.33.0's V3 node info lists these fields for every node (empty when unset)",
     schema_flags("dev_only", "essentials_category", "output_matchtypes", "price_badge", aliases_none=True)),
    (("0.33.0",), "'search_aliases' of the nodes in SEARCH_ALIASES: the other TCD packs' node names and 'eta'",
     "node search finds this pack's nodes under the names users know from the other packs (docs/other-packs.md); "
     "v0.3.75 has no search aliases", search_aliases),
]


def pack_entries(server) -> dict:
    return {node: server.get(f"/object_info/{node}")[node] for node in PACK_NODES}


def without_lora_listing(entry, loras: list) -> dict:
    """The entry with lora_name's options (the loras folder's files, in either combo form) replaced by [LORAS], after
    checking that they are the folder's files (the V1 captures were made with an empty folder)."""
    entry = copy.deepcopy(entry)
    spec = entry["input"].get("required", {}).get("lora_name")
    if spec is not None:
        kind, opts = spec
        if isinstance(kind, list):
            assert kind in ([], loras), kind
            spec[0] = [LORAS]
        else:
            assert opts["options"] == loras, (opts["options"], loras)
            opts["options"] = [LORAS]
    return entry


def differences(a, b, path="") -> list[str]:
    """Where two JSON values differ, as 'path: a != b' lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in {**a, **b} for d in differences(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def input_order(entry) -> dict:
    return {part: list(inputs) for part, inputs in entry["input"].items()}


def test_object_info_is_the_v1_one_but_for_the_named_differences(server):
    version = host_version()
    fixture = FIXTURES / f"object_info_v1_{version}.json"
    if version not in ALL_HOSTS:
        pytest.skip(f"no V1 /object_info captured for ComfyUI {version}")
    loras = server.get("/models/loras")
    v1 = {node: without_lora_listing(e, loras) for node, e in json.loads(fixture.read_text()).items()}
    live = {node: without_lora_listing(e, loras) for node, e in pack_entries(server).items()}
    assert set(live) == set(v1)
    for hosts, what, why, apply in NAMED:
        if version not in hosts:
            continue
        changed = False
        for entry in v1.values():
            before = copy.deepcopy(entry)
            apply(entry)
            changed |= entry != before
        assert changed, f"named difference not seen on ComfyUI {version}: {what}"
        SEEN.append(f"  {what}: {why}")
    for node in PACK_NODES:
        expected, got = v1[node], live[node]
        assert input_order(got) == input_order(expected), node
        assert got == expected, f"{node}, expected (V1 + named) != live: " + "; ".join(differences(expected, got))


@tcd_figures.reporter("OBJECT_INFO: V3 nodes vs the V1 capture, the differences named and found")
def _report():
    return [f"ComfyUI {host_version()}, every other field identical:", *SEEN] if SEEN else []


if __name__ == "__main__":  # COMFYUI_PATH=<host> python tests/test_object_info.py: add the nodes the fixture lacks
    from tcd_server import ComfyServer
    out = FIXTURES / f"object_info_v1_{host_version()}.json"
    known = json.loads(out.read_text()) if out.exists() else {}
    srv = ComfyServer().start()
    try:
        entries = pack_entries(srv)
    finally:
        srv.stop()
    out.write_text(json.dumps({**entries, **known}, indent=1) + "\n")
    print(f"wrote {out}: {sorted(set(entries) - set(known)) or 'nothing new'}")
