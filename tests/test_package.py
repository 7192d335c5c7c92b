"""Packaging contracts: the pack imports without the host, samplers/ never touches the host, every node documents
every input and output, and the host registrations are idempotent."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_root_package_imports_without_comfy():
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('comfyui_tcd', sys.argv[1], "
            "submodule_search_locations=[sys.argv[2]]); m = importlib.util.module_from_spec(spec); "
            "sys.modules['comfyui_tcd'] = m; spec.loader.exec_module(m); "
            "assert m.NODE_CLASS_MAPPINGS == {} and 'comfy' not in sys.modules; "
            "from comfyui_tcd.samplers import tcd_timesteps; print(tcd_timesteps(4))")
    out = subprocess.run([sys.executable, "-c", code, str(REPO / "__init__.py"), str(REPO)], capture_output=True,
                         text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[999, 759, 499, 259]"


def test_samplers_never_import_the_host():
    code = "import sys, samplers, samplers.tcd; bad = [m for m in sys.modules if m.split('.')[0] in " \
           "('comfy', 'nodes', 'folder_paths', 'latent_preview', 'execution')]; print(bad); assert not bad"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO))
    assert out.returncode == 0, out.stdout + out.stderr


def pack_nodes(host):
    mod = host.pack
    assert mod is not None, "the host did not record the pack module"
    return mod.NODE_CLASS_MAPPINGS, mod.NODE_DISPLAY_NAME_MAPPINGS


@pytest.mark.host
def test_every_node_input_and_output_is_documented(host):
    classes, names = pack_nodes(host)
    assert set(classes) >= {"TCDKSampler", "TCDSampler", "TCDSigmas"}
    for node_id, cls in classes.items():
        assert node_id.startswith("TCD"), node_id
        assert node_id in names and names[node_id], f"{node_id} has no display name"
        assert getattr(cls, "DESCRIPTION", "").strip(), f"{node_id} has no description"
        for section, inputs in cls.INPUT_TYPES().items():
            if section == "hidden":
                continue
            for name, spec in inputs.items():
                opts = spec[1] if len(spec) > 1 else {}
                assert opts.get("tooltip"), f"{node_id}.{name} has no tooltip"
        tips = getattr(cls, "OUTPUT_TOOLTIPS", ())
        assert len(tips) == len(cls.RETURN_TYPES) and all(tips), f"{node_id} outputs lack tooltips"
        assert host.nodes.NODE_CLASS_MAPPINGS[node_id] is cls  # registered with the host as is


@pytest.mark.host
def test_gamma_tooltip_explains_the_knob(host):
    classes, _ = pack_nodes(host)
    tip = classes["TCDKSampler"].INPUT_TYPES()["required"]["gamma"][1]["tooltip"]
    assert "eta" in tip and "0 =" in tip and "1 =" in tip and "higher step counts" in tip.lower()


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
