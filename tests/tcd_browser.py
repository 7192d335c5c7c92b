"""The real ComfyUI frontend (the host's bundled frontend package) in headless Debian Chromium, driven by Playwright.

One browser and one page per session: ``Frontend(url)`` opens the page and waits for the app; ``load(workflow)``
loads a UI-format workflow the way the frontend's own "Open" does and reports the node types it found missing and any
page errors; ``graph_to_prompt()`` runs the frontend's own graph-to-prompt conversion; ``screenshot(path)`` fits the
graph to the window and saves a PNG. What a user does with the mouse, on frontend 1.32.9 and 1.48 alike:
``run_button()``, ``set_queue_mode(label)`` (the Run button's mode menu), ``drag_slider(node, widget, value)`` (a real
press, move and release on the canvas at the slider's place); ``node_image(node)`` reads back the picture a node
shows. Playwright never downloads a browser here: Debian's ``/usr/bin/chromium`` only.
"""
from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

# Frontend settings for a quiet, reproducible page: no first-run template browser, no minimap, no dialogs on load.
QUIET_SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "Comfy.Minimap.Visible": False,
    "Comfy.Graph.CanvasInfo": False,
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,  # full detail at any zoom (screenshots of wide graphs stay readable)
    "Comfy.Workflow.ShowMissingNodesWarning": False,
    "Comfy.Workflow.ShowMissingModelsWarning": False,
}

_INSTALL = """() => {
  if (window.__tcd) return true;
  window.__tcd = {missing: null};
  window.app.registerExtension({
    name: "tcd-exact.tests",
    afterConfigureGraph(missing) {
      window.__tcd.missing = (missing || []).map(m => typeof m === "string" ? m : (m.type || JSON.stringify(m)));
    },
  });
  return true;
}"""

_LOAD = """async ([wf, name]) => {
  window.__tcd.missing = null;
  await window.app.loadGraphData(wf, true, true, name,
                                 {showMissingNodesDialog: false, showMissingModelsDialog: false});
  const LG = window.LiteGraph;
  const unregistered = window.app.graph._nodes.filter(n => !LG.registered_node_types[n.type]).map(n => n.type);
  return {missing: window.__tcd.missing, unregistered, count: window.app.graph._nodes.length};
}"""

_TOASTS = """() => Array.from(document.querySelectorAll('.p-toast-message')).map(e => e.innerText)"""
_CLEAR_TOASTS = """() => { for (const b of document.querySelectorAll('.p-toast-close-button')) b.click(); }"""

# name -> value of every named widget of every node, read from the live widgets (not from widgets_values).
_WIDGETS = """() => {
  const out = {};
  for (const n of window.app.graph._nodes) {
    const w = {};
    for (const x of (n.widgets || [])) {
      if (!x.name) continue;
      w[x.name] = x.value;
    }
    out[String(n.id)] = {type: n.type, title: n.title, widgets: w};
  }
  return out;
}"""

_TO_PROMPT = """async () => {
  const p = await window.app.graphToPrompt();
  return JSON.stringify({output: p.output, workflow: p.workflow});
}"""

_FIT = """([inset, skip, only, maxScale]) => {
  // Fit every node (or the nodes with the ids in only) into the part of the canvas the side bar and the top bars
  // leave visible.
  const c = window.app.canvas, th = window.LiteGraph.NODE_TITLE_HEIGHT || 30;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const n of window.app.graph._nodes) {
    if (skip.includes(n.type) || (only && !only.map(String).includes(String(n.id)))) continue;
    x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - th);
    x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
  }
  const el = c.canvas, [l, t, r, b] = inset;
  const w = el.clientWidth - l - r, h = el.clientHeight - t - b;
  const s = Math.min(w / (x1 - x0), h / (y1 - y0), maxScale);
  c.ds.scale = s;
  c.ds.offset[0] = (l + (w - s * (x1 - x0)) / 2) / s - x0;
  c.ds.offset[1] = (t + (h - s * (y1 - y0)) / 2) / s - y0;
  c.setDirty(true, true);
  c.draw(true, true);
  return s;
}"""


# Graph coordinates -> page (client) coordinates: the canvas transform (scale, then offset), then the canvas's place.
_TO_CLIENT = """([x, y]) => {
  const c = window.app.canvas, r = c.canvas.getBoundingClientRect(), s = c.ds.scale, o = c.ds.offset;
  return [r.left + (x + o[0]) * s * r.width / c.canvas.clientWidth,
          r.top + (y + o[1]) * s * r.height / c.canvas.clientHeight];
}"""

_NODES_BOX = """(ids) => {
  const th = window.LiteGraph.NODE_TITLE_HEIGHT || 30, ns = ids.map(i => window.app.graph.getNodeById(i));
  return [Math.min(...ns.map(n => n.pos[0])), Math.min(...ns.map(n => n.pos[1] - th)),
          Math.max(...ns.map(n => n.pos[0] + n.size[0])), Math.max(...ns.map(n => n.pos[1] + n.size[1]))];
}"""

# The graph point of a value on a slider widget: litegraph's SliderWidget (1.32 and 1.48 alike) maps
# x - node.pos[0] in [15, width - 15] linearly onto [min, max]; its bar is the widget's row from widget.y.
_SLIDER_POINT = """([id, name, v]) => {
  const n = window.app.graph.getNodeById(id), w = (n.widgets || []).find(w => w.name === name);
  if (!w || w.type !== "slider") throw new Error(`${name} is a ${w && w.type} widget, not a slider`);
  const width = w.width || n.size[0], f = (v - w.options.min) / (w.options.max - w.options.min);
  const h = w.height || window.LiteGraph.NODE_WIDGET_HEIGHT || 20;
  return [n.pos[0] + 15 + f * (width - 30), n.pos[1] + w.y + h / 2];
}"""

# null when the point is on the graph canvas, else what covers it.
_COVERED = """([x, y]) => {
  const e = document.elementFromPoint(x, y);
  return e === window.app.canvas.canvas ? null : (e ? e.outerHTML.slice(0, 300) : "nothing");
}"""

# The queue mode the Run button acts on, from the frontend's Pinia store (app.ui.autoQueueMode is the legacy menu's).
_QUEUE_MODE = """() => {
  const a = document.getElementById("vue-app")?.__vue_app__;
  return a?.config.globalProperties.$pinia?._s.get("queueSettingsStore")?.mode ?? null;
}"""

_IMAGE_SHOWN = """([id, old]) => {
  const i = (window.app.graph.getNodeById(id).imgs || [])[0];
  return !!i && i.complete && i.naturalWidth > 0 && i.src !== old;
}"""

_IMAGE_PIXELS = """(id) => {
  const i = window.app.graph.getNodeById(id).imgs[0], c = document.createElement("canvas");
  c.width = i.naturalWidth; c.height = i.naturalHeight;
  const x = c.getContext("2d");
  x.drawImage(i, 0, 0);
  return {src: i.src, width: c.width, height: c.height, rgba: Array.from(x.getImageData(0, 0, c.width, c.height).data)};
}"""


def chromium_path() -> str | None:
    for p in (os.environ.get("TCD_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if p and Path(p).exists():
            return p
    return None


def set_settings(url: str, settings: dict) -> None:
    req = urllib.request.Request(url + "/api/settings", data=json.dumps(settings).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


class Frontend:
    """One headless Chromium page on the server's frontend, reused for every workflow."""

    def __init__(self, url: str, width: int = 1600, height: int = 900):
        from playwright.sync_api import sync_playwright
        exe = chromium_path()
        if exe is None:
            raise RuntimeError("Debian chromium is not installed (scripts/env.sh ensure_chromium installs it)")
        set_settings(url, QUIET_SETTINGS)
        self.url = url
        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
            self.page = self.browser.new_page(viewport={"width": width, "height": height})
            self.page_errors: list[str] = []
            self.console_errors: list[str] = []
            self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
            self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
            # The "try Nodes 2.0" banner is dismissed in local storage; keep it out of screenshots.
            self.page.add_init_script("try { localStorage.setItem('vueNodesBannerDismissed', 'true'); } catch (e) {}")
            self.page.goto(url)
            self.page.wait_for_function("window.app && window.app.extensionManager && window.app.graph "
                                        "&& window.LiteGraph", timeout=120_000)
            self.page.evaluate(_INSTALL)
            self.version = self.page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ || null")
        except Exception:
            self.close()
            raise

    def load(self, workflow: dict, name: str | None = None) -> dict:
        """Load a UI workflow like the frontend's Open does (as a tab called ``name``); returns the node types it
        found missing, the page and console errors and the alert toasts seen while loading."""
        self.page.evaluate(_CLEAR_TOASTS)
        pe, ce = len(self.page_errors), len(self.console_errors)
        res = self.page.evaluate(_LOAD, [workflow, name])
        self.page.wait_for_timeout(300)  # let widget callbacks and the first draw settle
        res["page_errors"] = self.page_errors[pe:]
        res["console_errors"] = self.console_errors[ce:]
        res["alerts"] = self.page.evaluate(_TOASTS)
        return res

    def widgets(self) -> dict:
        return self.page.evaluate(_WIDGETS)

    def graph_to_prompt(self) -> dict:
        # JSON.stringify in the page, like the frontend's own export (undefined fields are dropped, not nulled)
        return json.loads(self.page.evaluate(_TO_PROMPT))

    def evaluate(self, code: str, arg=None):
        return self.page.evaluate(code, arg)

    def fit(self, inset=(80, 110, 30, 30), skip=(), only=None, max_scale=1.25) -> float:
        """Zoom and pan so the graph (less nodes of the types in ``skip``; or only the nodes with the ids in ``only``)
        shows between the side bar (left) and the tab and run bars (top); ``inset`` is (left, top, right, bottom) in
        pixels. Returns the scale."""
        return self.page.evaluate(_FIT, [list(inset), list(skip), None if only is None else list(only), max_scale])

    def nodes_box(self, ids) -> dict:
        """The page rectangle (a Playwright clip) that the nodes with these ids cover, titles included."""
        x0, y0, x1, y1 = self.page.evaluate(_NODES_BOX, list(ids))
        (a, b), (c, d) = self.to_client(x0, y0), self.to_client(x1, y1)
        return {"x": a, "y": b, "width": c - a, "height": d - b}

    def screenshot(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fit()
        self.page.wait_for_timeout(200)
        self.page.screenshot(path=str(path))
        return path

    # -- what a user does with the mouse ------------------------------------------------------------------------
    def run_button(self):
        """The Run button of the action bar: a PrimeVue SplitButton's main button on frontend 1.32.9 (the test id sits
        on the split button's root), a plain button carrying the test id on 1.48."""
        loc = self.page.locator('[data-testid="queue-button"]')
        return loc if loc.evaluate("e => e.tagName") == "BUTTON" else loc.locator("button").first

    def set_queue_mode(self, label: str) -> str | None:
        """Pick a queue mode (e.g. "Run (On Change)") in the Run button's mode menu, clicking as a user does: the menu
        trigger is the button with a popup in the run button group (the SplitButton's dropdown arrow on 1.32.9, the
        reka dropdown trigger on 1.48); the modes are menu items named by their labels. The menu is then closed.
        Returns the mode the frontend's queue settings then hold ("disabled", "change", ...)."""
        page = self.page
        page.locator(".queue-button-group button[aria-haspopup]").first.click()
        item = page.get_by_role("menuitem", name=label, exact=True)
        item.click()
        page.wait_for_function("(l) => document.querySelector('[data-testid=queue-button]').innerText.trim() === l",
                               arg=label, timeout=10_000)
        # 1.48's menu stays open after a pick (its items prevent the select default) and, while open, makes the rest
        # of the page inert (body pointer-events: none); Escape does not close it there: close it with a click beside
        # it, as a user would (the click lands on the inert page, not on the graph).
        if item.is_visible():
            size = page.viewport_size
            page.mouse.click(size["width"] // 2, size["height"] - 60)
        item.wait_for(state="hidden", timeout=10_000)
        return self.queue_mode()

    def queue_mode(self) -> str | None:
        return self.page.evaluate(_QUEUE_MODE)

    def set_view(self, scale: float, offset) -> None:
        """Set the canvas transform (``scale`` and ``offset`` as the canvas's DragAndScale keeps them) and redraw."""
        self.page.evaluate("""([s, o]) => { const c = window.app.canvas; c.ds.scale = s;
            c.ds.offset[0] = o[0]; c.ds.offset[1] = o[1]; c.setDirty(true, true); c.draw(true, true); }""",
                           [scale, list(offset)])

    def to_client(self, x: float, y: float) -> tuple:
        """Graph coordinates -> page (client) coordinates."""
        return tuple(self.page.evaluate(_TO_CLIENT, [x, y]))

    def slider_point(self, node_id, widget: str, value: float) -> tuple:
        """The page point of ``value`` on a slider widget of a node, as the canvas draws it."""
        return self.to_client(*self.page.evaluate(_SLIDER_POINT, [node_id, widget, value]))

    def drag_slider(self, node_id, widget: str, to: float, steps: int = 8):
        """Drag a slider widget with the mouse from its current value to ``to``: press on the bar at the current
        value, move in ``steps`` and release (the release is when the frontend looks for a graph change). Both points
        must be on the graph canvas, not under a panel. Returns the widget's value after the release."""
        page = self.page
        start = self.widget_value(node_id, widget)
        (x0, y0), (x1, y1) = self.slider_point(node_id, widget, start), self.slider_point(node_id, widget, to)
        for x, y in ((x0, y0), (x1, y1)):
            covered = page.evaluate(_COVERED, [x, y])
            if covered is not None:
                raise AssertionError(f"the slider point ({x}, {y}) is covered by {covered}")
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x1, y1, steps=steps)
        page.mouse.up()
        return self.widget_value(node_id, widget)

    def widget_value(self, node_id, widget: str):
        return self.page.evaluate("([id, name]) => window.app.graph.getNodeById(id).widgets.find(w => w.name === name)"
                                  ".value", [node_id, widget])

    def node_image(self, node_id, timeout: float = 30_000, not_src: str | None = None) -> dict:
        """The image a node shows on the canvas (``node.imgs[0]``, what the frontend draws), once loaded and, with
        ``not_src``, once it is another picture than that one: its src, size and RGBA pixels (read through a canvas)."""
        self.page.wait_for_function(_IMAGE_SHOWN, arg=[node_id, not_src], timeout=timeout)
        return self.page.evaluate(_IMAGE_PIXELS, node_id)

    def redraw(self) -> None:
        """Draw the canvas now and wait two frames (so that a screenshot shows the current state)."""
        self.page.evaluate("""() => new Promise(r => { const c = window.app.canvas; c.setDirty(true, true);
            c.draw(true, true); requestAnimationFrame(() => requestAnimationFrame(r)); })""")

    def close(self):
        for obj in ("browser",):
            try:
                getattr(self, obj).close()
            except Exception:
                pass
        try:
            self._pw.stop()
        except Exception:
            pass
