"""The docs match the code: docs/nodes.md's node table against what the real server reports in /object_info (every
node id, display name, category, input, default and output), so a renamed input or a changed default fails here."""
import json
import re
from pathlib import Path

import pytest

from tcd_host import PACK_NAME

NODES_MD = Path(__file__).resolve().parents[1] / "docs" / "nodes.md"
COLUMNS = ["Node id", "Display name", "Category", "Inputs (default)", "Outputs", "What for"]
INPUT = re.compile(r'`(\w+)`(?: \(("[^"]*"|[^()]*)\))?')  # `name` or `name` (default as JSON)


def table(text: str) -> dict:
    """docs/nodes.md's node table: {node id: {"display", "category", "required", "optional", "outputs"}}, each input
    as (name, default or None)."""
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("| Node id |"))
    assert [c.strip() for c in lines[head].strip("|").split("|")] == COLUMNS, lines[head]
    rows = {}
    for line in lines[head + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == len(COLUMNS), line
        node_id, display, category, inputs, outputs = (c.strip("`") if i < 3 else c for i, c in enumerate(cells[:5]))
        required, _, optional = inputs.partition("*optional:*")

        def parse(part):
            return [(name, json.loads(default) if default else None) for name, default in INPUT.findall(part)]
        rows[node_id] = {"display": display, "category": category, "required": parse(required),
                         "optional": parse(optional), "outputs": re.findall(r"`(\w+)`", outputs)}
    return rows


def test_nodes_table_parses():
    rows = table(NODES_MD.read_text())
    assert rows["TCDSigmas"]["optional"] == [("original_inference_steps", 50), ("timesteps", "")]
    assert rows["TCDGammaSweep"]["required"][4] == ("gammas", "0, 0.2, 0.4, 0.6, 0.8, 1")
    assert rows["TCDSampler"] == {"display": "SamplerTCD", "category": "sampling/TCD", "required": [("gamma", 0.3)],
                                  "optional": [("gamma_end", None)], "outputs": ["SAMPLER"]}


@pytest.mark.server
def test_nodes_table_matches_object_info(server):
    info = server.get("/object_info")
    ours = {nid: n for nid, n in info.items() if n.get("python_module", "").endswith(f"custom_nodes.{PACK_NAME}")}
    rows = table(NODES_MD.read_text())
    assert sorted(rows) == sorted(ours), "docs/nodes.md's table and the pack's nodes in /object_info differ"
    for nid, row in rows.items():
        node = ours[nid]
        assert (row["display"], row["category"]) == (node["display_name"], node["category"]), nid
        for section in ("required", "optional"):
            served = node["input"].get(section, {})
            documented = [name for name, _ in row[section]]
            assert documented == list(served), f"{nid} {section} inputs: docs {documented}, server {list(served)}"
            for name, default in row[section]:
                spec = served[name]
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                assert default == options.get("default"), \
                    f"{nid}.{name}: docs give the default {default!r}, the server {options.get('default')!r}"
        assert row["outputs"] == node["output_name"], f"{nid} outputs: docs {row['outputs']}, {node['output_name']}"
