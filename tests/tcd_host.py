"""The real ComfyUI host, in this test process: set-up, a prompt runner, and model-call counting.

Host state is global, so there is one host per process (``get_host()``). The host root goes to the front of
``sys.path`` (its ``nodes.py`` must win over this pack's ``nodes/`` package); the pack itself is loaded by the host as
a custom node from a folder holding a symlink to the repository, exactly as a user installs it.
"""
from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pyproject_value(section: str, key: str) -> str:
    """A string ``key = "..."`` of a [section] in the pack's pyproject.toml (Python 3.10 has no tomllib)."""
    text = (REPO / "pyproject.toml").read_text()
    return re.search(rf'^\[{re.escape(section)}\]\n(?:[^\[].*\n|\n)*?{key} = "([^"]*)"', text, re.M)[1]


PACK_NAME = pyproject_value("project", "name")  # the pack's folder under custom_nodes: its registry name, as in README


def custom_node_folders(workdir: Path, before=(), after=()) -> list[Path]:
    """The custom_nodes folders of a test host, in load order: a folder with this pack and tests/tcd_test_models
    (symlinks), and one folder of its own for each other pack (a folder) loaded ``before`` / ``after`` them (the host
    loads custom_nodes folders one after the other, each in os.listdir order)."""
    packs = ([(f"custom_nodes_before_{i}", {Path(p).name: Path(p)}) for i, p in enumerate(before)]
             + [("custom_nodes", {PACK_NAME: REPO, "tcd_test_models": REPO / "tests" / "tcd_test_models"})]
             + [(f"custom_nodes_after_{i}", {Path(p).name: Path(p)}) for i, p in enumerate(after)])
    folders = []
    for folder, links in packs:
        (workdir / folder).mkdir(exist_ok=True)
        for name, target in links.items():
            if not (workdir / folder / name).exists():
                (workdir / folder / name).symlink_to(target, target_is_directory=True)
        folders.append(workdir / folder)
    return folders


def host_root() -> Path | None:
    p = os.environ.get("COMFYUI_PATH")
    if p and (Path(p) / "main.py").exists():
        return Path(p)
    return None


def host_version(root: Path | None = None) -> str:
    """The ComfyUI version of the host tree (its comfyui_version.py), e.g. '0.3.75'."""
    root = root or host_root()
    text = (root / "comfyui_version.py").read_text() if root and (root / "comfyui_version.py").exists() else ""
    m = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text)
    return m.group(1) if m else "unknown"


DEFAULT_HOST_VERSION = "0.3.75"  # the embedded default host, whose frontend the README's pictures show
DOCS_IMAGES_ENV = "TCD_DOCS_IMAGES"  # set only by scripts/docs-images.sh (make docs-images)
_IMAGES: list[Path] = []


def docs_images() -> Path:
    """Where tests write pictures: a temporary folder, so a test run never changes the repository; the folder in
    $TCD_DOCS_IMAGES when ``make docs-images`` (scripts/docs-images.sh) runs the picture-taking tests on purpose to
    redraw docs/images (the default host only: the pictures show its frontend)."""
    target = os.environ.get(DOCS_IMAGES_ENV)
    if target:
        if host_version() != DEFAULT_HOST_VERSION:
            raise RuntimeError(f"{DOCS_IMAGES_ENV} is set, but the docs' pictures are taken on ComfyUI "
                               f"{DEFAULT_HOST_VERSION}, not {host_version()}")
        path = Path(target)
    else:
        if not _IMAGES:
            _IMAGES.append(Path(tempfile.mkdtemp(prefix="tcd-images-")))
        path = _IMAGES[0]
    path.mkdir(parents=True, exist_ok=True)
    return path


class Server:
    """The few server methods the executor calls; records what it sends."""

    def __init__(self):
        self.client_id = "tests"
        self.last_node_id = None
        self.last_prompt_id = None
        self.messages = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))

    def queue_updated(self):
        pass


class Host:
    def __init__(self, root: Path, workdir: Path, before=(), after=()):
        """The host in this process, with this pack and, for ``before`` / ``after``, other packs loaded before /
        after it (see custom_node_folders)."""
        self.root, self.workdir = root, workdir
        sys.path.insert(0, str(root))
        # As main.py does first: import the host's `utils` package before nodes.py puts comfy/ at the front of
        # sys.path (where comfy/utils.py would shadow it and some core extras would fail to import).
        import comfy.options
        import utils.extra_config  # noqa: F401
        comfy.options.enable_args_parsing(False)
        import comfy.cli_args
        comfy.cli_args.args.cpu = True
        comfy.cli_args.args.disable_all_custom_nodes = False
        import folder_paths
        self.models = workdir / "models"
        for kind in ("checkpoints", "loras", "diffusion_models"):
            (self.models / kind).mkdir(parents=True, exist_ok=True)
            folder_paths.add_model_folder_path(kind, str(self.models / kind), is_default=True)
        folders = custom_node_folders(workdir, before, after)
        self.custom = folders[len(before)]
        for folder in reversed(folders):  # each goes to the front: the list ends in load order
            folder_paths.add_model_folder_path("custom_nodes", str(folder), is_default=True)
        self.output = workdir / "output"
        self.output.mkdir(exist_ok=True)
        folder_paths.set_output_directory(str(self.output))
        folder_paths.set_input_directory(str(workdir / "input"))
        (workdir / "input").mkdir(exist_ok=True)
        folder_paths.set_temp_directory(str(workdir / "temp"))
        import execution

        import nodes
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
        self.nodes = nodes
        self.execution = execution
        self.server = Server()
        self.pack = sys.modules.get(str(self.custom / PACK_NAME)) or sys.modules.get(PACK_NAME)
        missing = [n for n in ("TCDKSampler", "TCDSampler", "TCDSigmas") if n not in nodes.NODE_CLASS_MAPPINGS]
        if missing:
            raise RuntimeError(f"the host did not load the pack (missing {missing})")
        self.executor = None

    # -- models --------------------------------------------------------------------------------------------------
    def checkpoint(self, seed: int = 0, v_prediction: bool = False) -> str:
        """File name (in the host's checkpoints folder) of a TinySDXL checkpoint with these seeded weights."""
        name = f"tiny_sdxl_{'v' if v_prediction else 'eps'}_{seed}.safetensors"
        path = self.models / "checkpoints" / name
        if not path.exists():
            import tcd_test_models
            tcd_test_models.build_checkpoint(str(path), seed=seed, v_prediction=v_prediction)
        return name

    def flow_model(self, family: str, seed: int = 0) -> str:
        """File name (in the host's diffusion_models folder) of a small SD3- or Flux-shaped model, seeded weights."""
        name = f"tiny_{family}_{seed}.safetensors"
        path = self.models / "diffusion_models" / name
        if not path.exists():
            import tcd_test_models
            tcd_test_models.build_flow_model(str(path), family, seed)
        return name

    # -- running prompts -----------------------------------------------------------------------------------------
    def validate(self, prompt: dict):
        pid = str(uuid.uuid4())
        return self.loop.run_until_complete(self.execution.validate_prompt(pid, prompt, None))

    def run(self, prompt: dict, outputs: list[str] | None = None, fresh: bool = False):
        """Validate and execute an API-format prompt on one long-lived executor, like the server's queue (its cache
        keeps unchanged node outputs, e.g. a loaded checkpoint); ``fresh``: a new executor first, as after a server
        restart. Returns the executor, or raises PromptRejected / PromptFailed with the host's error."""
        ok, err, good_outputs, node_errors = self.validate(prompt)
        if not ok or node_errors:
            raise PromptRejected(err, node_errors)
        if fresh or self.executor is None:
            self.executor = self.execution.PromptExecutor(self.server, cache_type=self.execution.CacheType.CLASSIC,
                                                          cache_args={"lru": 0, "ram": 0, "ram_inactive": 0})
        ex = self.executor
        self.server.messages.clear()
        self.loop.run_until_complete(ex.execute_async(prompt, str(uuid.uuid4()), {}, outputs or good_outputs))
        if not ex.success:
            errs = [d for e, d in self.server.messages if e == "execution_error"]
            raise PromptFailed(errs[0] if errs else ex.status_messages)
        return ex

    def run_latent(self, prompt: dict, source: list):
        """Execute ``prompt`` plus a SaveLatent of ``source`` ([node id, slot]); return the latent the host saved."""
        import safetensors.torch
        prefix = f"latents/t{uuid.uuid4().hex[:12]}"
        self.run({**prompt, "save_latent": {"class_type": "SaveLatent",
                                            "inputs": {"samples": source, "filename_prefix": prefix}}})
        files = sorted(self.output.glob(prefix + "_*.latent"))
        assert len(files) == 1, files
        return safetensors.torch.load_file(str(files[0]))["latent_tensor"]

    def run_nodes(self, prompt: dict, wanted: list) -> list:
        """Evaluate the nodes of an API prompt that ``wanted`` ([node id, slot] pairs) needs by calling them directly
        (as ``call`` does), returning those outputs as Python objects (models, conditioning, sigmas...)."""
        done = {}

        def value(nid):
            if nid not in done:
                node = prompt[nid]
                inputs = {k: value(v[0])[v[1]] if isinstance(v, list) else v for k, v in node["inputs"].items()}
                done[nid] = self.call(node["class_type"], **inputs)
            return done[nid]
        return [value(nid)[slot] for nid, slot in wanted]

    def call(self, class_type: str, **inputs):
        """Run one node directly (as the executor would: a V3 node's ``execute``, a V1 node's FUNCTION), returning
        its output tuple."""
        from comfy_api.latest import io
        cls = self.nodes.NODE_CLASS_MAPPINGS[class_type]
        if issubclass(cls, io.ComfyNode):
            return tuple(cls.execute(**inputs).result)
        return getattr(cls(), cls.FUNCTION)(**inputs)

    def input_specs(self, class_type: str) -> dict:
        """{input name: (type, options)} of a node, required then optional, in order: from a V3 node's schema, from a
        V1 node's INPUT_TYPES. A combo's type is its options list (V1) or 'COMBO' (V3)."""
        from comfy_api.latest import io
        cls = self.nodes.NODE_CLASS_MAPPINGS[class_type]
        if issubclass(cls, io.ComfyNode):
            inputs = cls.define_schema().inputs
            return {i.id: (i.get_io_type(), i.as_dict()) for i in sorted(inputs, key=lambda i: bool(i.optional))}
        spec = cls.INPUT_TYPES()
        return {k: (v[0], v[1] if len(v) > 1 else {}) for part in ("required", "optional")
                for k, v in spec.get(part, {}).items()}


class PromptRejected(Exception):
    def __init__(self, error, node_errors):
        super().__init__(f"{error} {node_errors}")
        self.error, self.node_errors = error, node_errors


class PromptFailed(Exception):
    def __init__(self, detail):
        super().__init__(str(detail))
        self.detail = detail


_HOST: Host | None = None


def get_host() -> Host:
    global _HOST
    if _HOST is None:
        root = host_root()
        if root is None:
            raise RuntimeError("COMFYUI_PATH is not set to a ComfyUI tree: run the tests with scripts/test.sh")
        _HOST = Host(root, Path(tempfile.mkdtemp(prefix="tcd-host-")))
    return _HOST
