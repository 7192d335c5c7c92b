"""Other TCD packs' nodes on this pack: the replacement table against those packs' node definitions, the node that
replaces JettHu's, the replacements the real server lists and applies to API prompts, and what the result changes.

``OTHER_PACKS`` is written from the other packs' node definitions (their ``INPUT_TYPES`` and ``RETURN_TYPES``, read,
never copied or installed): dfl/comfyui-tcd-scheduler's ``SamplerTCD``, ``SamplerTCD EulerA`` and ``TCDScheduler``,
licyk/ComfyUI-TCD-Sampler's ``TCDScheduler`` (the same inputs as dfl's), JettHu/ComfyUI-TCD's
``TCDModelSamplingDiscrete``. An API prompt with those ids, posted to the real server (ComfyUI v0.33.0), must give
exactly the latents of this pack's own nodes with the same gamma, steps, denoise and seed; on v0.3.75, which has no
replacements, it is refused as a missing node naming the id, and the server keeps serving. The browser side (the
frontend's Replace) is tests/test_replacements_browser.py.
"""
from __future__ import annotations

import copy
import dataclasses
import sys
import urllib.error
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import tcd_figures
from tcd_host import PACK_NAME, host_version
from tcd_prompts import MODEL, base_graph, custom_nodes, save_latent, tcd_ksampler

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "other-packs.md"
REPLACING_HOSTS = ("0.33.0",)  # the hosts with ComfyUI's node-replacement API (v0.3.75 has none)

# The other packs' nodes: id -> inputs in order ({name: type}; a widget's type is its kind), widget inputs in order
# (the positions of a saved node's widgets_values), output types in order.
OTHER_PACKS = {
    "SamplerTCD": {"inputs": {"gamma": "FLOAT"}, "widgets": ["gamma"], "outputs": ["SAMPLER"]},
    "SamplerTCD EulerA": {"inputs": {"gamma": "FLOAT"}, "widgets": ["gamma"], "outputs": ["SAMPLER"]},
    "TCDScheduler": {"inputs": {"model": "MODEL", "steps": "INT"}, "widgets": ["steps"], "outputs": ["SIGMAS"]},
    "TCDModelSamplingDiscrete": {
        "inputs": {"model": "MODEL", "steps": "INT", "scheduler": "COMBO", "denoise": "FLOAT", "eta": "FLOAT"},
        "widgets": ["steps", "scheduler", "denoise", "eta"], "outputs": ["MODEL", "SAMPLER", "SIGMAS"]},
}
# What replaces what (the contract users see in GET /node_replacements and docs/other-packs.md).
EXPECTED_NEW = {"SamplerTCD": "TCDSampler", "TCDScheduler": "TCDSigmas",
                "TCDModelSamplingDiscrete": "TCDSamplerScheduler"}
NOT_REPLACED = {"SamplerTCD EulerA"}
FIGURES: list[str] = []


def pack_module(host, name):
    return sys.modules[f"{host.pack.__name__}.nodes.{name}"]


# -- the table, in process -----------------------------------------------------------------------------------------
@pytest.mark.host
def test_the_table_maps_every_input_and_output_of_the_other_packs_nodes(host):
    table = pack_module(host, "replacements")
    rows = {r.old_id: r for r in table.REPLACEMENTS}
    assert {k: r.new_id for k, r in rows.items()} == EXPECTED_NEW
    assert set(table.NOT_REPLACED) == NOT_REPLACED and not NOT_REPLACED & set(rows)
    for old_id, r in rows.items():
        old = OTHER_PACKS[old_id]
        new = host.input_specs(r.new_id)
        assert list(r.old_widgets) == old["widgets"], old_id  # the frontend reads widgets_values by these positions
        carried = dict(r.inputs)
        # every old input is carried to an input of the same type, or named as dropped
        assert sorted(list(carried.values()) + list(r.dropped)) == sorted(old["inputs"]), old_id
        for new_name, old_name in carried.items():
            assert new_name in new, f"{old_id}.{old_name} -> {r.new_id}.{new_name}: no such input"
            assert new[new_name][0] == old["inputs"][old_name], (old_id, old_name, new[new_name][0])
        # every required input of the new node is carried or set (POST /prompt copies only the mapped inputs)
        required = [k for k, (_, opts) in new.items() if not opts.get("optional")]
        set_values = dict(r.values)
        assert sorted(required) == sorted(list(carried) + list(set_values)), (r.new_id, required)
        for name, value in set_values.items():
            lo, hi = new[name][1].get("min"), new[name][1].get("max")
            assert lo <= value <= hi, (r.new_id, name, value)
        # every old output lands on a new output of the same type
        cls = host.nodes.NODE_CLASS_MAPPINGS[r.new_id]
        new_outputs = [o.get_io_type() for o in cls.define_schema().outputs]
        assert len(r.outputs) == len(old["outputs"]), old_id
        assert [new_outputs[i] for i in r.outputs] == old["outputs"], (old_id, new_outputs)


@pytest.mark.host
def test_in_process_nothing_is_registered_and_aliases_follow_the_host(host, caplog):
    """The in-process executor has no server to hold replacements: the pack loads, registers none and says nothing
    above debug; the schema carries search aliases only where the host's Schema has the field."""
    import logging

    from comfy_api.latest import io
    table = pack_module(host, "replacements")
    assert table.replacement_api() is None
    with caplog.at_level(logging.DEBUG):
        assert host.loop.run_until_complete(table.register_replacements()) == []
    assert [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG] == []
    schema = host.nodes.NODE_CLASS_MAPPINGS["TCDSamplerScheduler"].define_schema()
    if hasattr(io, "NodeReplace"):
        assert schema.search_aliases == ["TCDModelSamplingDiscrete", "TCD Model Sampling Discrete", "eta"]
    else:  # v0.3.75: no replacement API, no search aliases, and nothing asked of them
        assert "search_aliases" not in {f.name for f in dataclasses.fields(io.Schema)}
        assert table.schema_aliases("TCDSampler") == {}


@pytest.mark.host
def test_docs_name_every_mapping_and_what_is_not_replaced(host):
    text = DOCS.read_text()
    table = pack_module(host, "replacements")
    for r in table.REPLACEMENTS:
        assert f"| `{r.old_id}` |" in text and f"`{r.new_id}`" in text, r.old_id
        for pack in r.packs:
            assert pack in text, pack
    for old_id in table.NOT_REPLACED:
        assert f"`{old_id}`" in text and "not replaced" in text


# -- the new node, in process --------------------------------------------------------------------------------------
def jetthu(steps, denoise, eta, scheduler="simple", model=MODEL):
    """JettHu's TCDModelSamplingDiscrete ('jet') into SamplerCustom ('sample'), as its README wires it."""
    g = custom_nodes(eta, steps, 1.0, denoise, model=("jet", 0))
    g["sample"]["inputs"].update(sampler=["jet", 1], sigmas=["jet", 2])
    del g["sampler"], g["sigmas"]
    g["jet"] = {"class_type": "TCDModelSamplingDiscrete", "inputs": {
        "model": list(model), "steps": steps, "scheduler": scheduler, "denoise": denoise, "eta": eta}}
    return g


def as_ours(prompt):
    """The node JettHu's is replaced by, with the inputs the table carries (what the server's rewrite gives)."""
    p = copy.deepcopy(prompt)
    i = p["jet"]["inputs"]
    p["jet"] = {"class_type": "TCDSamplerScheduler", "inputs": {
        "model": i["model"], "steps": i["steps"], "denoise": i["denoise"], "gamma": i["eta"]}}
    return p


@pytest.mark.host
# not the defaults (4, 1.0, 0.3), so an input dropped or left at its default shows; the defaults are the old-id prompts'
# (JettHu simple, 4 steps, eta 0.3)
@pytest.mark.parametrize("steps,denoise,gamma", [(3, 0.6, 0.8)])
def test_sampler_scheduler_is_sampler_tcd_and_tcd_scheduler(host, steps, denoise, gamma):
    g = base_graph(host.checkpoint(0))
    ours = host.run_latent({**g, **custom_nodes(gamma, steps, 1.0, denoise)}, ["sample", 0])
    combined = host.run_latent({**g, **as_ours(jetthu(steps, denoise, gamma))}, ["sample", 0])
    assert ours.abs().max() > 0.1
    assert torch.equal(combined, ours)
    model, out_model, sampler, sigmas = host.run_nodes({**g, **as_ours(jetthu(steps, denoise, gamma))},
                                                       [["ckpt", 0], ["jet", 0], ["jet", 1], ["jet", 2]])
    assert out_model is model  # passed on unchanged: the very object, no clone, no patch
    assert sampler.extra_options["gamma"] == gamma
    assert torch.equal(sigmas, host.call("TCDSigmas", model=model, steps=steps, denoise=denoise)[0])


@pytest.mark.host
def test_sampler_scheduler_refuses_what_tcd_refuses(host):
    from tcd_host import PromptRejected
    g = base_graph(host.checkpoint(0))
    for steps, denoise, gamma, named in ((8, 0.1, 0.3, "steps=8"), (4, 1.0, 1.5, "gamma=1.5"),
                                         (4, 0.0, 0.3, "denoise=0.0")):
        with pytest.raises(PromptRejected) as e:
            host.run({**g, **as_ours(jetthu(steps, denoise, gamma)),
                      "save": save_latent(("sample", 0))})
        assert named in str(e.value), str(e.value)


# -- what the result changes: their grids, by the host's own schedulers ----------------------------------------------
@pytest.mark.host
def test_what_the_other_grids_change(host):
    """dfl's and licyk's TCDScheduler take the host's ddim_uniform grid (no denoise); JettHu's takes the host's
    'simple' or 'sgm_uniform' over a 50-step distilled schedule (comfy_extras' ModelSamplingDiscreteDistilled, the
    class its model patch derives from), the last ``steps`` of ``int(steps / denoise)``. Measured against the TCD
    grid: the timesteps, and dfl's grid sampled with SamplerTCD on the test model."""
    import comfy.samplers
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscreteDistilled
    g = base_graph(host.checkpoint(0))
    (model,) = host.run_nodes(g, [["ckpt", 0]])
    ms = model.get_model_object("model_sampling")
    tcd = pack_module(host, "host")

    def timesteps(sigmas):
        return [int(torch.argmin((ms.sigmas.log() - torch.log(s)).abs())) for s in sigmas[:-1]]

    for steps in (4, 8):
        ours = tcd.tcd_schedule(ms, steps)
        theirs = comfy.samplers.calculate_sigmas(ms, "ddim_uniform", steps).cpu()
        assert timesteps(ours)[0] == 999 and timesteps(theirs)[0] < 999 and len(theirs) == len(ours)
        g2 = {**g, **custom_nodes(0.3, steps, 1.0)}
        a = host.run_latent(g2, ["sample", 0])
        g2["sigmas"] = {"class_type": "BasicScheduler",
                        "inputs": {"model": list(MODEL), "scheduler": "ddim_uniform", "steps": steps, "denoise": 1.0}}
        b = host.run_latent(g2, ["sample", 0])
        rel = float((a - b).abs().max() / a.abs().max())
        assert rel > 0.05, rel  # a different grid, a different picture (the same sampler, seed and noise)
        FIGURES.append(f"TCDScheduler of dfl/licyk ({steps} steps): ddim_uniform timesteps {timesteps(theirs)} vs "
                       f"TCD {timesteps(ours)}; SamplerTCD gamma 0.3 on it vs on the TCD grid: relative max "
                       f"difference {rel:.3f}")
    distilled = ModelSamplingDiscreteDistilled(model.model.model_config)
    for scheduler in ("simple", "sgm_uniform"):
        for steps, denoise in ((4, 1.0), (8, 1.0), (4, 0.5)):
            total = int(steps / denoise)
            theirs = comfy.samplers.calculate_sigmas(distilled, scheduler, total).cpu()[-(steps + 1):]
            ours = tcd.tcd_schedule(ms, steps, denoise)
            same = timesteps(theirs) == timesteps(ours)
            if scheduler == "simple":
                assert same, (steps, denoise, timesteps(theirs), timesteps(ours))
            FIGURES.append(f"TCDModelSamplingDiscrete of JettHu, {scheduler}, {steps} steps, denoise {denoise:g}: "
                           f"timesteps {timesteps(theirs)} vs TCD {timesteps(ours)}"
                           + (" (the same)" if same else ""))


# -- the real server -------------------------------------------------------------------------------------------------
def dfl(gamma, steps):
    """dfl's SamplerTCD + TCDScheduler into SamplerCustom (its TCD_workflow.json's wiring)."""
    g = custom_nodes(gamma, steps, 1.0)
    g["sampler"] = {"class_type": "SamplerTCD", "inputs": {"gamma": gamma}}
    g["sigmas"] = {"class_type": "TCDScheduler", "inputs": {"model": list(MODEL), "steps": steps}}
    return g


def licyk(steps):
    """licyk's TCDScheduler with its sampler 'tcd' (here: this pack's) from KSamplerSelect into SamplerCustom."""
    g = dfl(0.3, steps)
    g["sampler"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "tcd"}}
    return g


def with_meta(prompt):
    """The prompt as the frontend exports it: each node with its _meta title (the server's rewrite needs it)."""
    return {k: {**v, "_meta": {"title": v["class_type"]}} for k, v in prompt.items()}


def served(server, prompt, node="sample"):
    """Run a prompt on the server with a SaveLatent of ``node``; returns (latent, the history entry)."""
    prompt = {**prompt, "save": save_latent((node, 0), f"repl/{uuid.uuid4().hex[:10]}")}
    entry = server.run(with_meta(prompt), timeout=240)
    assert entry["status"]["status_str"] == "success", entry["status"]
    (item,) = entry["outputs"]["save"]["latents"]
    return load_file(str(server.output / item["subfolder"] / item["filename"]))["latent_tensor"], entry


def cached(entry) -> list:
    return [n for kind, d in entry["status"]["messages"] if kind == "execution_cached" for n in d["nodes"]]


# (name, old-id prompt, the gamma, steps and denoise it asks for). This pack's own node to compare with is TCD Sampler
# (seed 42, cfg 1, scheduler 'tcd'), which gives exactly SamplerCustom + SamplerTCD + TCD Scheduler's latents
# (test_host_parity.py) and shares no cache entry with the rewritten prompt, so both really run.
SERVED = [
    ("dfl SamplerTCD + TCDScheduler, 8 steps", dfl(0.3, 8), (0.3, 8, 1.0)),
    ("dfl SamplerTCD gamma 0.6 + TCDScheduler, 4 steps", dfl(0.6, 4), (0.6, 4, 1.0)),
    ("licyk TCDScheduler + KSamplerSelect tcd, 4 steps", licyk(4), (0.3, 4, 1.0)),
    ("JettHu TCDModelSamplingDiscrete simple, 4 steps, eta 0.3", jetthu(4, 1.0, 0.3), (0.3, 4, 1.0)),
    ("JettHu TCDModelSamplingDiscrete sgm_uniform, 3 steps, denoise 0.6, eta 0.8",
     jetthu(3, 0.6, 0.8, "sgm_uniform"), (0.8, 3, 0.6)),
]


@pytest.mark.server
def test_node_replacements_are_listed(server):
    if host_version() not in REPLACING_HOSTS:
        with pytest.raises(urllib.error.HTTPError) as e:  # no such route: nothing to list, nothing broken
            server.get("/node_replacements")
        assert e.value.code == 404
        return
    listed = server.get("/node_replacements")
    ours = {k: v for k, v in listed.items() if any(r["new_node_id"].startswith("TCD") for r in v)}
    assert ours == {
        "SamplerTCD": [{"new_node_id": "TCDSampler", "old_node_id": "SamplerTCD", "old_widget_ids": ["gamma"],
                        "input_mapping": [{"new_id": "gamma", "old_id": "gamma"}],
                        "output_mapping": [{"new_idx": 0, "old_idx": 0}]}],
        "TCDScheduler": [{"new_node_id": "TCDSigmas", "old_node_id": "TCDScheduler", "old_widget_ids": ["steps"],
                          "input_mapping": [{"new_id": "model", "old_id": "model"},
                                            {"new_id": "steps", "old_id": "steps"},
                                            {"new_id": "denoise", "set_value": 1.0}],
                          "output_mapping": [{"new_idx": 0, "old_idx": 0}]}],
        "TCDModelSamplingDiscrete": [{
            "new_node_id": "TCDSamplerScheduler", "old_node_id": "TCDModelSamplingDiscrete",
            "old_widget_ids": ["steps", "scheduler", "denoise", "eta"],
            "input_mapping": [{"new_id": "model", "old_id": "model"}, {"new_id": "steps", "old_id": "steps"},
                              {"new_id": "denoise", "old_id": "denoise"}, {"new_id": "gamma", "old_id": "eta"}],
            "output_mapping": [{"new_idx": 0, "old_idx": 0}, {"new_idx": 1, "old_idx": 1},
                               {"new_idx": 2, "old_idx": 2}]}],
    }, ours
    assert not NOT_REPLACED & set(listed)
    log = server.log.read_text()
    assert log.count(f"{PACK_NAME}: other TCD packs' nodes open on this pack") == 1
    FIGURES.append("GET /node_replacements (this pack's): " + "; ".join(
        f"{k} -> {v[0]['new_node_id']}" for k, v in ours.items()))


@pytest.mark.server
@pytest.mark.parametrize("name,old,asked", SERVED, ids=[s[0] for s in SERVED])
def test_old_id_prompts_give_our_nodes_latents(server, name, old, asked):
    g = base_graph(server.build_checkpoint(0))
    if host_version() not in REPLACING_HOSTS:
        old_ids = sorted({n["class_type"] for n in old.values()} - {"SamplerCustom", "KSamplerSelect"})
        status, body = server.queue(with_meta({**g, **old, "save": save_latent(("sample", 0))}))
        # refused as a missing node, naming it (v0.3.75 stops at the first missing id)
        assert status == 400 and any(f"node {i} does not exist" in str(body) for i in old_ids), (status, body)
        assert server.get("/object_info/TCDSampler")  # the server keeps serving
        return
    gamma, steps, denoise = asked
    theirs, entry = served(server, {**g, **old})
    assert "sample" not in cached(entry)  # the rewritten prompt sampled
    ours, _ = served(server, {**g, "ks": tcd_ksampler(gamma, steps, 1.0, denoise)}, "ks")
    assert ours.abs().max() > 0.1
    diff = float((theirs - ours).abs().max())
    FIGURES.append(f"{name}: old-id prompt vs TCD Sampler (gamma {gamma:g}, {steps} steps, denoise {denoise:g}), "
                   f"max |difference| {diff}")
    assert torch.equal(theirs, ours), diff


@pytest.mark.server
def test_the_hosts_rewrite_needs_meta(server):
    """What docs/other-packs.md says of the host (v0.33.0): its rewrite reads each replaced node's ``_meta`` and, where
    a hand-built prompt has none, answers 500 (a KeyError in the host), and the server keeps serving."""
    if host_version() not in REPLACING_HOSTS:
        pytest.skip(f"ComfyUI {host_version()} rewrites nothing")
    status, body = server.queue({**base_graph(server.build_checkpoint(0)), **dfl(0.3, 4),
                                 "save": save_latent(("sample", 0))})
    assert status == 500, (status, body)
    assert "KeyError: '_meta'" in server.log.read_text()
    assert server.get("/object_info/TCDSampler")


@pytest.mark.server
def test_sampler_tcd_euler_a_is_not_replaced(server):
    """The one node deliberately left out: a prompt with it is refused by name on every host, never run as TCD."""
    g = base_graph(server.build_checkpoint(0))
    prompt = dfl(0.3, 4)
    prompt["sampler"]["class_type"] = "SamplerTCD EulerA"
    status, body = server.queue(with_meta({**g, **prompt, "save": save_latent(("sample", 0))}))
    assert status == 400 and "SamplerTCD EulerA" in str(body), (status, body)


@tcd_figures.reporter("OTHER TCD PACKS: replacements and what their grids change")
def _report():
    return [f"ComfyUI {host_version()}:", *FIGURES] if FIGURES else []
