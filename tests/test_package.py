"""Packaging contracts: the pack imports without the host and exposes only its V3 entry point inside it, no pure
package touches the host, every node documents every input and output, and the host registrations are idempotent."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The host's top-level modules: a pure package imports none of them (nor the pack's adapters in nodes/).
HOST_MODULES = ("comfy", "comfy_api", "comfy_extras", "comfy_execution", "nodes", "folder_paths", "latent_preview",
                "execution", "server", "node_helpers")
# Every top-level package of the repository except nodes/ (the adapters) is pure.
PURE_PACKAGES = sorted(p.parent.name for p in REPO.glob("*/__init__.py") if p.parent.name != "nodes")


def test_root_package_imports_without_comfy():
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('comfyui_tcd', sys.argv[1], "
            "submodule_search_locations=[sys.argv[2]]); m = importlib.util.module_from_spec(spec); "
            "sys.modules['comfyui_tcd'] = m; spec.loader.exec_module(m); "
            "assert not hasattr(m, 'comfy_entrypoint') and not hasattr(m, 'NODE_CLASS_MAPPINGS'); "
            "assert 'comfy' not in sys.modules; "
            "from comfyui_tcd.samplers import tcd_timesteps; print(tcd_timesteps(4))")
    out = subprocess.run([sys.executable, "-c", code, str(REPO / "__init__.py"), str(REPO)], capture_output=True,
                         text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[999, 759, 499, 259]"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a source file of the repository, at any depth of its code;
    relative imports are resolved from the repository root (a pure package's ``..nodes`` is ``nodes``)."""
    package = list(path.relative_to(REPO).parts[:-1])  # the file's own package (level 1 of a relative import)
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:max(0, len(package) - node.level + 1)] if node.level else []
            if node.module:
                out.append((node.lineno, ".".join([*base, node.module])))
            else:
                out += [(node.lineno, ".".join([*base, a.name])) for a in node.names]
    return out


def test_pure_packages_never_import_the_host():
    assert "samplers" in PURE_PACKAGES, PURE_PACKAGES
    bad = [f"{f.relative_to(REPO)}:{line} imports {name}" for pkg in PURE_PACKAGES
           for f in sorted((REPO / pkg).rglob("*.py")) for line, name in imported_modules(f)
           if name.split(".")[0] in HOST_MODULES]
    assert not bad, bad
    # And at run time: every module of every pure package imports, and no host module comes with it.
    code = ("import importlib, pkgutil, sys; pkgs = sys.argv[1:]; "
            "[importlib.import_module(m.name) for p in pkgs for m in pkgutil.walk_packages("
            "importlib.import_module(p).__path__, p + '.')]; "
            f"bad = [m for m in sys.modules if m.split('.')[0] in {HOST_MODULES!r}]; print(bad); assert not bad")
    out = subprocess.run([sys.executable, "-c", code, *PURE_PACKAGES], capture_output=True, text=True,
                         cwd=str(REPO))
    assert out.returncode == 0, out.stdout + out.stderr


def pack_nodes(host):
    """The pack's node classes, as its one extension lists them."""
    mod = host.pack
    assert mod is not None, "the host did not record the pack module"
    assert not hasattr(mod, "NODE_CLASS_MAPPINGS")  # the host would take it and skip comfy_entrypoint
    extension = host.loop.run_until_complete(mod.comfy_entrypoint())
    return host.loop.run_until_complete(extension.get_node_list())


@pytest.mark.host
def test_every_node_input_and_output_is_documented(host):
    from comfy_api.latest import io
    classes = pack_nodes(host)
    ids = []
    for cls in classes:
        assert issubclass(cls, io.ComfyNode), cls
        schema = cls.define_schema()
        node_id = schema.node_id
        ids.append(node_id)
        assert node_id.startswith("TCD"), node_id
        assert schema.display_name, f"{node_id} has no display name"
        assert schema.description.strip(), f"{node_id} has no description"
        for i in schema.inputs:
            assert i.tooltip, f"{node_id}.{i.id} has no tooltip"
        assert schema.outputs and all(o.tooltip for o in schema.outputs), f"{node_id} outputs lack tooltips"
        assert host.nodes.NODE_CLASS_MAPPINGS[node_id] is cls  # registered with the host as is
        assert host.nodes.NODE_DISPLAY_NAME_MAPPINGS[node_id] == schema.display_name
    assert set(ids) >= {"TCDKSampler", "TCDSampler", "TCDSigmas"} and len(set(ids)) == len(ids)


@pytest.mark.host
def test_gamma_tooltip_explains_the_knob(host):
    (ks,) = [c for c in pack_nodes(host) if c.define_schema().node_id == "TCDKSampler"]
    (gamma,) = [i for i in ks.define_schema().inputs if i.id == "gamma"]
    tip = gamma.tooltip
    assert "eta" in tip and "0 =" in tip and "1 =" in tip and "higher step counts" in tip.lower()
    assert "Default 0.3" in tip and "Allowed range 0..1" in tip


@pytest.mark.host
def test_sampler_and_scheduler_registered_once(host):
    import comfy.k_diffusion.sampling as ks
    import comfy.samplers
    assert comfy.samplers.KSampler.SAMPLERS.count("tcd") == 1
    assert comfy.samplers.KSampler.SCHEDULERS.count("tcd") == 1
    before = ks.sample_tcd
    again = sys.modules[host.pack.__name__ + ".nodes.host_names"].register_host_names()
    assert again == {"sampler": False, "scheduler": False}
    assert comfy.samplers.KSampler.SAMPLERS.count("tcd") == 1 and ks.sample_tcd is before
    info = host.nodes.NODE_CLASS_MAPPINGS["KSampler"].INPUT_TYPES()["required"]
    assert "tcd" in info["sampler_name"][0] and "tcd" in info["scheduler"][0]
