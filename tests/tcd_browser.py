"""The real ComfyUI frontend (the host's bundled frontend package) in headless Debian Chromium, driven by Playwright.

One browser and one page per session: ``Frontend(url)`` opens the page and waits for the app; ``load(workflow)``
loads a UI-format workflow the way the frontend's own "Open" does and reports the node types it found missing and any
page errors; ``graph_to_prompt()`` runs the frontend's own graph-to-prompt conversion; ``screenshot(path)`` fits the
graph to the window and saves a PNG. Playwright never downloads a browser here: Debian's ``/usr/bin/chromium`` only.
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
    name: "comfyui-tcd.tests",
    afterConfigureGraph(missing) { window.__tcd.missing = (missing || []).map(m => typeof m === "string" ? m : (m.type || JSON.stringify(m))); },
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

_FIT = """([inset, skip]) => {
  // Fit every node into the part of the canvas the side bar and the top bars leave visible.
  const c = window.app.canvas, th = window.LiteGraph.NODE_TITLE_HEIGHT || 30;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const n of window.app.graph._nodes) {
    if (skip.includes(n.type)) continue;
    x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - th);
    x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
  }
  const el = c.canvas, [l, t, r, b] = inset;
  const w = el.clientWidth - l - r, h = el.clientHeight - t - b;
  const s = Math.min(w / (x1 - x0), h / (y1 - y0), 1.25);
  c.ds.scale = s;
  c.ds.offset[0] = (l + (w - s * (x1 - x0)) / 2) / s - x0;
  c.ds.offset[1] = (t + (h - s * (y1 - y0)) / 2) / s - y0;
  c.setDirty(true, true);
  c.draw(true, true);
  return s;
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

    def fit(self, inset=(80, 110, 30, 30), skip=()) -> float:
        """Zoom and pan so the graph (less nodes of the types in ``skip``) shows between the side bar (left) and the
        tab and run bars (top); ``inset`` is (left, top, right, bottom) in pixels."""
        return self.page.evaluate(_FIT, [list(inset), list(skip)])

    def screenshot(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fit()
        self.page.wait_for_timeout(200)
        self.page.screenshot(path=str(path))
        return path

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
