"""One seed, one image, whatever the host: the same prompts give the same latents on every tested ComfyUI version.

Each run executes a fixed set of prompts in process on this host and writes their latents, with a digest of the test
checkpoints' weights, to ``$TCD_CROSS_HOST_DIR/<host version>.safetensors``; then it compares them with the file of
every other host version found there (relative max error at most 1e-5). ``.ci/run`` runs ComfyUI v0.3.75 first and then
v0.33.0 with ``TCD_CROSS_HOST_REQUIRE=0.3.75``, so there the comparison must happen.
"""
import hashlib
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tcd_host import host_version
from tcd_prompts import base_graph, custom_advanced_nodes, stock_ksampler, tcd_ksampler
from tcd_reference import rel_max_err

pytestmark = pytest.mark.host
TOLERANCE = 1e-5


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


def weights_digest(host, names) -> torch.Tensor:
    h = hashlib.sha256()
    for name in names:
        sd = load_file(str(host.models / "checkpoints" / name))
        for k in sorted(sd):
            h.update(k.encode())
            h.update(sd[k].float().contiguous().reshape(-1).numpy().tobytes())
    return torch.frombuffer(bytearray(h.digest()), dtype=torch.uint8)


def test_same_latents_on_every_host(host):
    folder = Path(os.environ.get("TCD_CROSS_HOST_DIR") or host.workdir / "cross-host")
    folder.mkdir(parents=True, exist_ok=True)
    here = host_version()
    cases, ckpts = prompts(host)
    ours = {name: host.run_latent(p, [node, 0]).contiguous() for name, (p, node) in cases.items()}
    for name, lat in ours.items():
        assert torch.isfinite(lat).all() and lat.abs().max() > 0.1, name
    ours["weights_digest"] = weights_digest(host, ckpts)
    save_file(ours, str(folder / f"{here}.safetensors"))

    others = {p.stem: load_file(str(p)) for p in sorted(folder.glob("*.safetensors")) if p.stem != here}
    required = [v for v in os.environ.get("TCD_CROSS_HOST_REQUIRE", "").split(",") if v]
    missing = [v for v in required if v not in others]
    assert not missing, f"no latents from ComfyUI {missing} in {folder}: run the suite on that host first"
    if not others:
        pytest.skip(f"only ComfyUI {here} has written latents to {folder} so far")
    lines = []
    for version, theirs in others.items():
        assert torch.equal(theirs["weights_digest"], ours["weights_digest"]), \
            f"ComfyUI {version} built other test weights: the comparison would mean nothing"
        for name in cases:
            err = rel_max_err(ours[name], theirs[name])
            lines.append(f"  {name:28s} {err:.2e}")
            assert err <= TOLERANCE, f"{name}: ComfyUI {here} vs {version} relative max error {err:.3g}"
    print(f"\nCROSS-HOST: ComfyUI {here} vs {', '.join(others)}: same prompts, relative max error\n" + "\n".join(lines))
