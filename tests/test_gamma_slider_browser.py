"""The gamma slider with "Run (On Change)", in the real frontend on the real server.

The shipped SDXL workflow (workflows/tcd_sdxl_txt2img.json) is loaded in the frontend bundled with the host, with the
test model swapped in and a test-only TCDTestCallLog node put between the LoRA loader and TCD Sampler (with the
LiteGraph API in the page, as a user could with the mouse), so the server's model calls can be counted. After one
normal run, the queue mode is switched to "Run (On Change)" in the Run button's mode menu and gamma is dragged with the
mouse on TCD Sampler's slider: each release runs the prompt by itself, with the new gamma, in steps - 1 model calls
(the pack's first-step cache), and the image on the SaveImage node changes; dragging back to 0.3 brings back the first
image, pixel for pixel. A strip of UI pictures (gamma 0, 0.3, 0.6, 1) goes to gamma_slider_strip.png in docs_images()
(a temporary folder; docs/images under ``make docs-images``).
"""
from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path

import pytest

import tcd_figures
from tcd_host import docs_images

pytestmark = [pytest.mark.server, pytest.mark.browser]

WORKFLOW = Path(__file__).resolve().parents[1] / "workflows" / "tcd_sdxl_txt2img.json"
TEST_LORA = "tcd_test_lora_tiny_sdxl.safetensors"  # the name test_workflows_browser.py gives it
SIDE = 64
CKPT, LORA, LATENT, SAMPLER, SAVE = 2, 3, 6, 8, 10  # node ids in the shipped workflow
STEPS = 4
# Graph -> page transform while dragging: scale 1 and whole-pixel offsets, so the gammas used here land on whole pixels
# of the 320-wide TCD Sampler (x = 15 + gamma * 290; the widget rounds to 0.01, about 3 pixels); TCD Sampler and
# SaveImage sit right of the side bar and under the top bars.
VIEW = (1.0, (-880, 110))
EMPTY = (1700, 700)  # a point of the graph with no node on it (where the mouse rests for the pictures)
FIGURES = []


@tcd_figures.reporter("GAMMA SLIDER in the frontend (tests/test_gamma_slider_browser.py)")
def report():
    return FIGURES


@pytest.fixture(scope="module")
def model_files(server):
    """The tiny SDXL checkpoint and the SDXL test LoRA for it (the tests' one LoRA writer, through the test-model
    builder: the same file test_workflows_browser.py uses)."""
    return {"ckpt": server.build_checkpoint(0), "lora": server.build_asset("loras", TEST_LORA, "build_sdxl_lora")}


def slider_workflow(files: dict, prefix: str) -> dict:
    """The shipped workflow with the test model, the test LoRA, a 64x64 latent and a unique output prefix."""
    wf = json.loads(WORKFLOW.read_text())
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert nodes[SAMPLER]["type"] == "TCDKSampler" and nodes[SAVE]["type"] == "SaveImage"
    assert nodes[SAMPLER]["widgets_values"][2] == STEPS and nodes[SAMPLER]["widgets_values"][4] == 0.3
    nodes[CKPT]["widgets_values"][0] = files["ckpt"]
    nodes[LORA]["widgets_values"][0] = files["lora"]
    nodes[LATENT]["widgets_values"][:2] = [SIDE, SIDE]
    nodes[SAVE]["widgets_values"][0] = prefix
    nodes[SAVE]["pos"], nodes[SAVE]["size"] = [1340, 40], [200, 170]  # next to TCD Sampler, for the pictures
    return wf


# Put TCDTestCallLog(path) between the LoRA loader's MODEL output and TCD Sampler's model input.
_INSERT_CALL_LOG = """([lora, sampler, path]) => {
  const g = window.app.graph, src = g.getNodeById(lora), dst = g.getNodeById(sampler);
  const n = window.LiteGraph.createNode("TCDTestCallLog");
  n.pos = [520, 870];
  g.add(n);
  n.widgets.find(w => w.name === "path").value = path;
  src.connect(0, n, 0);
  n.connect(0, dst, dst.inputs.findIndex(i => i.name === "model"));
  window.app.canvas.setDirty(true, true);
  return n.id;
}"""


def ours(server, prefix: str) -> dict:
    """This test's prompts in the server's history (by their SaveImage prefix): prompt id -> history entry."""
    out = {}
    for pid, entry in server.get("/history").items():
        prompt = entry["prompt"][2]
        if prompt.get(str(SAVE), {}).get("inputs", {}).get("filename_prefix") == prefix:
            out[pid] = entry
    return out


def wait_new_run(server, prefix: str, before: set, timeout: float = 240.0) -> tuple:
    """Wait until a prompt of ours that was not in ``before`` has finished and the queue is empty; returns
    (its prompt id, its history entry, the ids of all new prompts)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        new = {pid: e for pid, e in ours(server, prefix).items() if pid not in before}
        done = {pid: e for pid, e in new.items() if e.get("status", {}).get("completed") is not None}
        q = server.get("/queue")
        if done and len(done) == len(new) and not q["queue_running"] and not q["queue_pending"]:
            pid = max(done, key=lambda p: done[p]["prompt"][0])  # the latest by queue number
            return pid, done[pid], set(new)
        time.sleep(0.1)
    raise TimeoutError(f"no new run of {prefix} finished in {timeout}s (history: {sorted(ours(server, prefix))})")


def model_calls(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.startswith("start")) if path.exists() else 0


def saved_pixels(server, entry):
    import numpy as np
    from PIL import Image
    im = entry["outputs"][str(SAVE)]["images"][0]
    with Image.open(server.output / im["subfolder"] / im["filename"]) as pic:
        return np.asarray(pic.convert("RGBA"))


def shown_pixels(shown: dict):
    import numpy as np
    return np.asarray(shown["rgba"], dtype=np.uint8).reshape(shown["height"], shown["width"], 4)


def test_gamma_slider_run_on_change(server, frontend, model_files, tmp_path):
    import numpy as np
    from PIL import Image

    t0 = time.perf_counter()
    fe, page = frontend, frontend.page
    prefix = f"tcd_gamma_slider_{uuid.uuid4().hex[:8]}"
    calls_file = tmp_path / "model_calls.log"

    res = fe.load(slider_workflow(model_files, prefix), "gamma_slider")
    assert res["missing"] == [] and res["unregistered"] == [] and res["page_errors"] == [], res
    log_id = fe.evaluate(_INSERT_CALL_LOG, [LORA, SAMPLER, str(calls_file)])
    prompt = fe.graph_to_prompt()["output"]
    assert prompt[str(SAMPLER)]["inputs"]["model"] == [str(log_id), 0], prompt[str(SAMPLER)]
    assert prompt[str(log_id)]["inputs"]["model"] == [str(LORA), 0]
    fe.set_view(*VIEW)
    fe.redraw()

    def frame():
        """A picture of TCD Sampler (with its slider) and the SaveImage node as the page shows them, zoomed in."""
        page.mouse.move(*fe.to_client(*EMPTY))  # off the nodes: no tooltip
        page.wait_for_function("() => !Array.from(document.querySelectorAll('.node-tooltip'))"
                               ".some(e => e.offsetParent !== null)", timeout=10_000)
        fe.fit(only=[SAMPLER, SAVE], max_scale=1.5, inset=(80, 110, 30, 20))
        fe.redraw()
        box = fe.nodes_box([SAMPLER, SAVE])
        pad = 8
        png = page.screenshot(clip={"x": box["x"] - pad, "y": box["y"] - pad, "width": box["width"] + 2 * pad,
                                    "height": box["height"] + 2 * pad})
        fe.set_view(*VIEW)
        return Image.open(io.BytesIO(png)).convert("RGB")

    client_id = fe.evaluate("() => (window.app.api && window.app.api.clientId) || sessionStorage.getItem('clientId')")
    assert client_id

    # 1. one normal run, with the Run button
    assert fe.queue_mode() == "disabled"
    fe.run_button().click()
    pid, entry, new = wait_new_run(server, prefix, set())
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert entry["prompt"][3].get("client_id") == client_id, "the run did not come from the page"
    assert len(new) == 1 and entry["prompt"][2][str(SAMPLER)]["inputs"]["gamma"] == pytest.approx(0.3)
    first_calls = model_calls(calls_file)
    assert first_calls == STEPS, f"the first run made {first_calls} model calls, not {STEPS}"
    first = fe.node_image(SAVE)
    assert first["width"] == SIDE and first["height"] == SIDE
    assert entry["outputs"][str(SAVE)]["images"][0]["filename"] in first["src"]
    assert np.array_equal(shown_pixels(first), saved_pixels(server, entry)), "the UI shows another image than saved"
    frames = {0.3: frame()}

    # 2. "Run (On Change)" from the Run button's mode menu
    assert fe.set_queue_mode("Run (On Change)") == "change"

    # 3. drag the gamma slider; every release runs the prompt by itself
    seen, shown, per_move, diffs = set(ours(server, prefix)), first, [], []
    for target in (0.6, 0.3, 0.0, 1.0):
        calls_before = model_calls(calls_file)
        value = fe.drag_slider(SAMPLER, "gamma", target)
        assert value == pytest.approx(target), f"the slider was dragged to {target} but holds {value}"
        pid, entry, new = wait_new_run(server, prefix, seen)
        assert len(new) == 1, f"one slider move queued {len(new)} prompts"
        seen |= new
        assert entry["status"]["status_str"] == "success", entry["status"]
        assert entry["prompt"][3].get("client_id") == client_id, "the run did not come from the page"
        assert entry["prompt"][2][str(SAMPLER)]["inputs"]["gamma"] == pytest.approx(target)
        calls = model_calls(calls_file) - calls_before
        per_move.append((target, calls))
        assert calls == STEPS - 1, f"gamma {target}: {calls} model calls, not steps - 1 = {STEPS - 1}"
        now = fe.node_image(SAVE, not_src=shown["src"])
        assert entry["outputs"][str(SAVE)]["images"][0]["filename"] in now["src"]
        pixels = shown_pixels(now)
        assert np.array_equal(pixels, saved_pixels(server, entry)), "the UI shows another image than saved"
        assert not np.array_equal(pixels, shown_pixels(shown)), f"gamma {target}: the image shown did not change"
        diffs.append(np.abs(pixels.astype(np.int16) - shown_pixels(shown).astype(np.int16)).mean())
        if target == 0.3:
            assert np.array_equal(pixels, shown_pixels(first)), "back at gamma 0.3 the first image did not return"
        frames[target] = frame()
        shown = now

    assert fe.set_queue_mode("Run") == "disabled"
    assert set(ours(server, prefix)) == seen, "a prompt ran that no slider move asked for"

    # 4. the strip: gamma 0 -> 0.3 -> 0.6 -> 1
    order = [frames[g] for g in (0.0, 0.3, 0.6, 1.0)]
    w = 440
    order = [f.resize((w, round(f.height * w / f.width)), Image.LANCZOS) for f in order]
    strip = Image.new("RGB", (w * len(order) + 8 * (len(order) - 1), order[0].height), (32, 32, 32))
    for i, f in enumerate(order):
        strip.paste(f, (i * (w + 8), 0))
    out = docs_images() / "gamma_slider_strip.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    strip.save(out, optimize=True)

    wall = time.perf_counter() - t0
    moves = ", ".join(f"{g} ({c} calls, mean pixel change {d:.2f})" for (g, c), d in zip(per_move, diffs, strict=True))
    FIGURES.append(f"frontend {fe.version}: first run {first_calls} model calls; slider moves to {moves}; test wall "
                   f"time {wall:.1f}s; strip {out}")
