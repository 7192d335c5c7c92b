"""Bad input through the real host: refused at validation with a message naming the value and the allowed range,
or stopped with a clear error -- never a crash inside sampling, a NaN or a black image."""
import math

import pytest

from tcd_host import PromptFailed
from tcd_prompts import base_graph, custom_nodes, save_latent, tcd_ksampler


def graph(ckpt, **ks):
    """Checkpoint -> TCD Sampler (its inputs overridden by ``ks``) -> SaveLatent."""
    g = {**base_graph(ckpt), "ks": tcd_ksampler(0.3, 4, 1.0, seed=1), "out": save_latent(("ks", 0), "latents/val")}
    g["ks"]["inputs"].update(ks)
    return g


def errors_of(host, prompt):
    ok, err, outputs, node_errors = host.validate(prompt)
    assert not ok or node_errors, "the host accepted a bad prompt"
    return " | ".join(f"{e['details']} {e['message']}" for n in node_errors.values() for e in n["errors"])


@pytest.mark.host
@pytest.mark.parametrize("bad,needle", [
    (dict(gamma=1.5), "gamma=1.5 is outside the allowed range 0..1"),
    (dict(gamma=-1.0), "gamma=-1.0 is outside the allowed range 0..1"),
    (dict(gamma=math.nan), "gamma=nan is outside the allowed range 0..1"),
    (dict(steps=60), "steps=60 is more than the TCD grid holds"),
    (dict(steps=30, denoise=0.5), "leaves 25 timesteps, so steps must be 1..25"),
    (dict(denoise=0.0), "denoise=0.0 is outside the allowed range"),
    (dict(steps=0), "steps=0 is outside the allowed range 1..1000"),
    (dict(steps=10000), "steps=10000 is outside the allowed range 1..1000"),
])
def test_tcd_ksampler_refuses_at_validation(host, bad, needle):
    assert needle in errors_of(host, graph(host.checkpoint(0), **bad))


@pytest.mark.host
def test_host_schedulers_not_bound_by_tcd_grid(host):
    ok, err, outputs, node_errors = host.validate(graph(host.checkpoint(0), steps=60, scheduler="simple"))
    assert ok and not node_errors


@pytest.mark.host
@pytest.mark.parametrize("node,inputs,needle", [
    ("TCDSampler", {"gamma": 1.5}, "gamma=1.5 is outside"),
    ("TCDSigmas", {"model": ["ckpt", 0], "steps": 51, "denoise": 1.0}, "steps=51 is more than the TCD grid holds"),
    ("TCDSigmas", {"model": ["ckpt", 0], "steps": 4, "denoise": 1.0, "original_inference_steps": 2},
     "leaves 2 timesteps, so steps must be 1..2"),
])
def test_other_nodes_refuse_at_validation(host, node, inputs, needle):
    p = {**base_graph(host.checkpoint(0)), **custom_nodes(0.3, 4, 1.0, seed=1)}
    p["sampler" if node == "TCDSampler" else "sigmas"] = {"class_type": node, "inputs": inputs}
    p["out"] = save_latent(("sample", 0), "latents/v2")
    assert needle in errors_of(host, p)


@pytest.mark.host
def test_non_discrete_model_gets_clear_error(host):
    p = graph(host.checkpoint(0))
    p["edm"] = {"class_type": "ModelSamplingContinuousEDM",
                "inputs": {"model": ["ckpt", 0], "sampling": "v_prediction", "sigma_max": 120.0, "sigma_min": 0.002}}
    p["ks"]["inputs"]["model"] = ["edm", 0]
    with pytest.raises(PromptFailed) as e:
        host.run(p)
    msg = str(e.value)
    assert "TCD needs a model with a discrete 1000-step DDPM noise schedule" in msg
    assert "ModelSamplingAdvanced" in msg or "ContinuousEDM" in msg


@pytest.mark.server
def test_gamma_out_of_range_is_http_400(server):
    ckpt = server.build_checkpoint(0)
    status, body = server.queue(graph(ckpt, gamma=1.5))
    assert status == 400, body
    errs = body["node_errors"]["ks"]["errors"]
    assert any("gamma=1.5 is outside the allowed range 0..1" in e["details"] for e in errs)
    assert server.get("/object_info/TCDKSampler")  # still serving
