"""Other TCD packs' workflows on this pack: the one table of which of their node ids this pack replaces and how, the
names node search finds this pack's nodes under, and their registration with the host (feature-detected: ComfyUI
v0.33.0 has node replacements and search aliases, v0.3.75 neither).

A replacement is ComfyUI's own ``io.NodeReplace``: where a workflow or API prompt holds a node id that no installed
pack registers, the frontend offers "Replace" and ``POST /prompt`` rewrites the node; a node id that is registered (the
other pack still installed) is never replaced. The docs page docs/other-packs.md describes this table.
"""
from __future__ import annotations

import dataclasses
import logging
import sys

from comfy_api.latest import io

from .host import PACK

DFL = "dfl/comfyui-tcd-scheduler"
LICYK = "licyk/ComfyUI-TCD-Sampler"
JETTHU = "JettHu/ComfyUI-TCD"
log = logging.getLogger(f"{PACK}.replacements")
GAMMA_ALIAS = "eta"  # diffusers' and JettHu's name for gamma


@dataclasses.dataclass(frozen=True)
class Replacement:
    old_id: str  # the other pack's node id
    old_name: str  # its display name (the id where the pack gives none)
    packs: tuple  # the packs that ship a node under old_id
    new_id: str  # this pack's node
    old_widgets: tuple  # the old node's widget inputs in its order: the positions of its saved widgets_values
    inputs: tuple  # (new input, old input) pairs: links and widget values carried over
    values: tuple = ()  # (new input, value) pairs: inputs the old node does not have, set to the value it implied
    outputs: tuple = (0,)  # the new output index of each old output, in the old output order
    dropped: tuple = ()  # old inputs with no counterpart here (their value cannot change this pack's result)

    def node_replace(self):
        """The host's ``io.NodeReplace`` for this row."""
        return io.NodeReplace(
            new_node_id=self.new_id, old_node_id=self.old_id, old_widget_ids=list(self.old_widgets),
            input_mapping=[{"new_id": new, "old_id": old} for new, old in self.inputs]
            + [{"new_id": new, "set_value": value} for new, value in self.values],
            output_mapping=[{"new_idx": new, "old_idx": old} for old, new in enumerate(self.outputs)])


REPLACEMENTS = (
    Replacement("SamplerTCD", "SamplerTCD", (DFL,), "TCDSampler", old_widgets=("gamma",),
                inputs=(("gamma", "gamma"),)),
    Replacement("TCDScheduler", "TCDScheduler", (DFL, LICYK), "TCDSigmas", old_widgets=("steps",),
                inputs=(("model", "model"), ("steps", "steps")), values=(("denoise", 1.0),)),
    Replacement("TCDModelSamplingDiscrete", "TCD Model Sampling Discrete", (JETTHU,), "TCDSamplerScheduler",
                old_widgets=("steps", "scheduler", "denoise", "eta"),
                inputs=(("model", "model"), ("steps", "steps"), ("denoise", "denoise"), ("gamma", "eta")),
                outputs=(0, 1, 2), dropped=("scheduler",)),
)

# Node ids of the other packs that are deliberately not replaced, and why (docs/other-packs.md).
NOT_REPLACED = {
    "SamplerTCD EulerA": (DFL, "an Euler-ancestral sampler that takes its down-step from the current timestep, "
                               "not TCD's: no node here samples it, and replacing it with SamplerTCD would change "
                               "what gamma means without telling"),
}

# The names node search finds each node under: the ids and display names of the nodes it replaces, and 'eta' for
# every node with a gamma input.
GAMMA_NODES = ("TCDKSampler", "TCDSampler", "TCDSamplerScheduler", "TCDGammaSweep", "TCDTwoExpertSampler")


def aliases(node_id: str) -> list:
    """The search aliases of one of this pack's nodes (old ids and names it replaces, then 'eta' for gamma)."""
    names = [n for r in REPLACEMENTS if r.new_id == node_id for n in (r.old_id, r.old_name)]
    names += [GAMMA_ALIAS] if node_id in GAMMA_NODES else []
    return list(dict.fromkeys(names))


def schema_aliases(node_id: str) -> dict:
    """``io.Schema`` keyword arguments for a node's search aliases: on hosts whose Schema has ``search_aliases``
    (v0.33.0), nothing on the others (v0.3.75)."""
    has = "search_aliases" in {f.name for f in dataclasses.fields(io.Schema)}
    names = aliases(node_id)
    return {"search_aliases": names} if has and names else {}


def replacement_api():
    """The host's node-replacement registry (``ComfyAPI().node_replacement``) when this host has the API and a
    server runs (it keeps replacements on the server: none in an in-process executor); else None."""
    server = sys.modules.get("server")  # the host's server module, only where main.py (or a test) imported it
    if not hasattr(io, "NodeReplace") or getattr(getattr(server, "PromptServer", None), "instance", None) is None:
        return None
    from comfy_api.latest import ComfyAPI
    return ComfyAPI().node_replacement


async def register_replacements() -> list:
    """Register every row of REPLACEMENTS with the host (once per row: the host ignores a repeated pair); returns the
    old ids registered, none where the host has no replacement API or no server."""
    api = replacement_api()
    if api is None:
        log.debug("%s: no node-replacement API on this host (ComfyUI v0.33.0 or newer has it), none registered", PACK)
        return []
    for r in REPLACEMENTS:
        await api.register(r.node_replace())
    done = [r.old_id for r in REPLACEMENTS]
    log.info("%s: other TCD packs' nodes open on this pack: %s", PACK,
             ", ".join(f"{r.old_id} -> {r.new_id}" for r in REPLACEMENTS))
    return done
