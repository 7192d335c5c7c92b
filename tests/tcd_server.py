"""The real ComfyUI server (main.py) as a subprocess on loopback, with this pack and the test-model node loaded.

``ComfyServer()`` writes an extra_model_paths yaml that adds a custom_nodes folder (symlinks to the pack and to
tests/tcd_test_models) and the model folders; ``start()`` runs main.py and waits for /object_info; ``build_checkpoint``
and ``build_asset`` write test models in a helper subprocess. One server is shared by a whole pytest session (see
conftest.py).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tcd_host import REPO, custom_node_folders, host_root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    def __init__(self, workdir: Path | None = None, before=(), after=()):
        """A server with this pack and, for ``before`` / ``after``, other packs (folders) loaded before / after it."""
        self.root = host_root()
        if self.root is None:
            raise RuntimeError("COMFYUI_PATH is not set to a ComfyUI tree: run the tests with scripts/test.sh")
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="tcd-server-"))
        self.models = self.workdir / "models"
        for kind in ("checkpoints", "loras", "diffusion_models", "vae"):
            (self.models / kind).mkdir(parents=True, exist_ok=True)
        self.input = self.workdir / "input"
        self.output = self.workdir / "output"
        self.input.mkdir(exist_ok=True)
        self.output.mkdir(exist_ok=True)
        custom = "".join(f"\n    {folder.name}" for folder in custom_node_folders(self.workdir, before, after))
        self.yaml = self.workdir / "extra_model_paths.yaml"
        self.yaml.write_text(  # the host loads the custom_nodes folders in the yaml's order
            f"tcd_tests:\n  base_path: {self.workdir}\n  custom_nodes: |{custom}\n"
            f"  checkpoints: models/checkpoints\n  loras: models/loras\n  diffusion_models: models/diffusion_models\n"
            f"  vae: models/vae\n")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = self.workdir / "server.log"

    def start(self, timeout: float = 180.0):
        cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--extra-model-paths-config", str(self.yaml), "--output-directory", str(self.output),
               "--input-directory", str(self.input), "--disable-auto-launch", "--preview-method", "latent2rgb"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._logf = open(self.log, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.root, stdout=self._logf, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited early:\n{self.log.read_text()[-4000:]}")
            try:
                self.get("/object_info/TCDKSampler")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise RuntimeError(f"ComfyUI did not answer in {timeout}s:\n{self.log.read_text()[-4000:]}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if getattr(self, "_logf", None):
            self._logf.close()

    # -- HTTP ------------------------------------------------------------------------------------------------------
    def get(self, path: str, timeout: float = 30.0):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def post(self, path: str, payload, timeout: float = 30.0):
        """POST JSON; returns (status, parsed body) without raising on 4xx."""
        data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        req = urllib.request.Request(self.url + path, data=data.encode() if isinstance(data, str) else data,
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                body = r.read()
                return r.status, (json.loads(body) if body else None)
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return e.code, json.loads(body)
            except ValueError:
                return e.code, body.decode(errors="replace")

    def queue(self, prompt: dict, client_id: str | None = None):
        return self.post("/prompt", {"prompt": prompt, "client_id": client_id or str(uuid.uuid4())})

    def wait(self, prompt_id: str, timeout: float = 300.0) -> dict:
        """Poll /history until the prompt ends; returns its history entry (status + outputs)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            h = self.get(f"/history/{prompt_id}")
            if h and prompt_id in h and h[prompt_id].get("status", {}).get("completed") is not None:
                entry = h[prompt_id]
                if entry["status"].get("status_str") in ("success", "error") or entry["status"]["completed"]:
                    return entry
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout}s")

    def run(self, prompt: dict, timeout: float = 300.0) -> dict:
        status, body = self.queue(prompt)
        if status != 200:
            raise AssertionError(f"/prompt answered {status}: {body}")
        return self.wait(body["prompt_id"], timeout)

    def build_asset(self, folder: str, name: str, builder: str, *args) -> str:
        """Write a test model file with ``tcd_test_models.<builder>(path, *args)`` into this server's models/<folder>
        (in a helper process with the host loaded, not the server); returns the file name."""
        path = self.models / folder / name
        if not path.exists():
            code = ("import sys, json; sys.path[:0]=[sys.argv[1], sys.argv[2]]; from tcd_host import get_host; "
                    "get_host(); import tcd_test_models as m; "
                    "getattr(m, sys.argv[3])(sys.argv[4], *json.loads(sys.argv[5]))")
            subprocess.run([sys.executable, "-c", code, str(REPO / "tests"), str(REPO), builder, str(path),
                            json.dumps(list(args))], check=True, capture_output=True, timeout=300)
        return name

    def build_checkpoint(self, seed: int = 0, v_prediction: bool = False) -> str:
        """Build a TinySDXL checkpoint into this server's checkpoints folder (in a helper process, not the server)."""
        name = f"tiny_sdxl_{'v' if v_prediction else 'eps'}_{seed}.safetensors"
        path = self.models / "checkpoints" / name
        if not path.exists():
            code = ("import sys; sys.path[:0]=[sys.argv[1], sys.argv[2]]; from tcd_host import get_host; get_host(); "
                    "import tcd_test_models as m; m.build_checkpoint(sys.argv[3], int(sys.argv[4]), "
                    "sys.argv[5]=='1')")
            subprocess.run([sys.executable, "-c", code, str(REPO / "tests"), str(REPO), str(path), str(seed),
                            "1" if v_prediction else "0"], check=True, capture_output=True, timeout=300)
        return name
