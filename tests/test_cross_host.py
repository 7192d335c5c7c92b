"""One seed, one image, whatever the host: the same prompts give the same latents on every tested ComfyUI version.

Each run executes a fixed set of prompts in process on this host and writes their latents to
``$TCD_CROSS_HOST_DIR/<host version>.safetensors``, with three digests: of the pack's source (every file that can
change a latent: the root ``__init__.py`` and each ``.py`` of the top-level packages, ``samplers/`` and ``nodes/``), of
the test models (their weights and the test-model node's code) and of the prompts. Then it compares them with the file
of every other host version found there that has the same three digests: a file written by other code, other weights
or other prompts is not compared, and the skip says which. ``.ci/run`` runs ComfyUI v0.3.75 first and then v0.33.0
with ``TCD_CROSS_HOST_REQUIRE=0.3.75``: there a missing or stale file fails the test instead of skipping it.
"""
import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import tcd_figures
from tcd_host import REPO, host_version
from tcd_prompts import base_graph, custom_advanced_nodes, stock_ksampler, tcd_ksampler
from tcd_reference import rel_max_err

pytestmark = pytest.mark.host
# The two hosts give bit-identical latents (measured 0 on ComfyUI v0.3.75 and v0.33.0, 2026-12); the bound leaves
# room for another torch build's last-bit rounding only.
TOLERANCE = 1e-6
DIGESTS = ("source_digest", "models_digest", "prompts_digest")
WHAT_DIFFERS = {"source_digest": "other pack source code", "models_digest": "other test models (weights or code)",
                "prompts_digest": "other prompts"}
FIGURES = []


def prompts(host):
    eps, v = host.checkpoint(0), host.checkpoint(1, v_prediction=True)
    batch = {**base_graph(eps, batch=3),
             "pick": {"class_type": "LatentFromBatch", "inputs": {"samples": ["latent", 0], "batch_index": 1,
                                                                   "length": 2}}}
    return {  # name: (prompt, the node whose latent is compared)
        "tcd_sampler_gamma0.3": ({**base_graph(eps), "ks": tcd_ksampler(0.3, 4, 1.0, 1.0)}, "ks"),
        "tcd_sampler_gamma1_cfg2.5": ({**base_graph(eps), "ks": tcd_ksampler(1.0, 4, 2.5, 1.0)}, "ks"),
        "advanced_gamma0.5_8steps": ({**base_graph(eps), **custom_advanced_nodes(0.5, 8, 1.0, 1.0)}, "sample"),
        "ksampler_tcd": ({**base_graph(eps), "ks": stock_ksampler(4, 1.0)}, "ks"),
        "batch_index_1_2": ({**batch, "ks": tcd_ksampler(0.3, 4, 1.0, 1.0, latent=("pick", 0))}, "ks"),
        "v_prediction": ({**base_graph(v), "ks": tcd_ksampler(0.3, 4, 1.0, 1.0)}, "ks"),
    }, (eps, v)


def source_files(root: Path = REPO) -> list[Path]:
    """The files that can change a latent: the root __init__.py and every .py of each top-level package (a folder
    with an __init__.py: samplers/, nodes/, and any pure package added later); tests and scripts are not the pack."""
    packages = sorted(d for d in root.iterdir() if d.is_dir() and (d / "__init__.py").is_file() and d.name != "tests")
    return [root / "__init__.py"] + [f for d in packages for f in sorted(d.rglob("*.py"))]


def files_digest(h, files, root: Path = REPO):
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h


def as_tensor(h) -> torch.Tensor:
    return torch.frombuffer(bytearray(h.digest()), dtype=torch.uint8)


def models_digest(host, names) -> torch.Tensor:
    """The test checkpoints' weights (names and values) and the test-model node's code."""
    h = files_digest(hashlib.sha256(), sorted((REPO / "tests" / "tcd_test_models").rglob("*.py")))
    for name in names:
        sd = load_file(str(host.models / "checkpoints" / name))
        for k in sorted(sd):
            h.update(k.encode())
            h.update(sd[k].float().contiguous().reshape(-1).numpy().tobytes())
    return as_tensor(h)


def digests(host, cases, ckpts) -> dict:
    prompts = json.dumps({name: prompt for name, (prompt, _) in cases.items()}, sort_keys=True).encode()
    return {"source_digest": as_tensor(files_digest(hashlib.sha256(), source_files())),
            "models_digest": models_digest(host, ckpts), "prompts_digest": as_tensor(hashlib.sha256(prompts))}


def stale(theirs: dict, ours: dict) -> list[str]:
    """What differs between the runs that wrote two files (empty: the same code, models and prompts)."""
    return [WHAT_DIFFERS[k] for k in DIGESTS if k not in theirs or not torch.equal(theirs[k], ours[k])]


def test_a_change_to_the_pack_source_changes_the_digest(tmp_path):
    """The source digest covers every file that can change a latent, and nothing else decides it."""
    for rel in ("__init__.py", "samplers/tcd.py", "nodes/sampling.py", "newpure/maths.py", "tests/test_x.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    for pkg in ("samplers", "nodes", "newpure"):
        (tmp_path / pkg / "__init__.py").write_text("")
    files = source_files(tmp_path)
    assert {str(f.relative_to(tmp_path)) for f in files} == {
        "__init__.py", "samplers/__init__.py", "samplers/tcd.py", "nodes/__init__.py", "nodes/sampling.py",
        "newpure/__init__.py", "newpure/maths.py"}
    before = files_digest(hashlib.sha256(), files, tmp_path).digest()
    (tmp_path / "samplers" / "tcd.py").write_text("x = 2\n")
    assert files_digest(hashlib.sha256(), files, tmp_path).digest() != before


def test_same_latents_on_every_host(host):
    folder = Path(os.environ.get("TCD_CROSS_HOST_DIR") or host.workdir / "cross-host")
    folder.mkdir(parents=True, exist_ok=True)
    here = host_version()
    cases, ckpts = prompts(host)
    ours = {name: host.run_latent(p, [node, 0]).contiguous() for name, (p, node) in cases.items()}
    for name, lat in ours.items():
        assert torch.isfinite(lat).all() and lat.abs().max() > 0.1, name
    ours.update(digests(host, cases, ckpts))
    save_file(ours, str(folder / f"{here}.safetensors"))

    others = {p.stem: load_file(str(p)) for p in sorted(folder.glob("*.safetensors")) if p.stem != here}
    skipped = {v: stale(theirs, ours) for v, theirs in others.items()}
    same = {v: theirs for v, theirs in others.items() if not skipped[v]}
    why = [f"no latents from another ComfyUI version in {folder} yet"] if not others else [
        f"ComfyUI {v}'s file in {folder} came from {' and '.join(diff)}: not compared"
        for v, diff in skipped.items() if diff]
    required = [v for v in os.environ.get("TCD_CROSS_HOST_REQUIRE", "").split(",") if v]
    missing = [v for v in required if v not in same]
    assert not missing, (f"TCD_CROSS_HOST_REQUIRE={','.join(required)}: no comparable latents from ComfyUI "
                         f"{missing} ({'; '.join(why)}): run the suite on that host first, with this checkout")
    if not same:
        pytest.skip("; ".join(why))
    lines = []
    for version, theirs in same.items():
        for name in cases:
            err = rel_max_err(ours[name], theirs[name])
            lines.append(f"  {name:28s} {err:.2e}")
            assert err <= TOLERANCE, f"{name}: ComfyUI {here} vs {version} relative max error {err:.3g}"
    FIGURES.append(f"ComfyUI {here} vs {', '.join(same)} (same source, models and prompts): relative max error "
                   f"(bound {TOLERANCE:g})")
    FIGURES.extend(lines + [f"  not compared: {w}" for w in why])


@tcd_figures.reporter("CROSS-HOST: the same prompts on each ComfyUI version (tests/test_cross_host.py)")
def report():
    return FIGURES
