"""TCDKSampler behaves like the host's KSampler: progress and live previews over the websocket, batches, noise masks."""
import asyncio
import json
import uuid

import pytest
import torch

from tcd_prompts import base_graph, latent_from_tensor, tcd_ksampler


def prompt(ckpt, latent_node, steps=4, gamma=0.3, extra=None):
    """Checkpoint -> TCD Sampler ('ks') on ``latent_node``, plus ``extra`` nodes."""
    return {**base_graph(ckpt), "latent": latent_node, "ks": tcd_ksampler(gamma, steps, 1.0, seed=5), **(extra or {})}


@pytest.mark.server
def test_progress_and_previews_over_websocket(server):
    import aiohttp
    ckpt = server.build_checkpoint(0)
    p = prompt(ckpt, {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}})
    p["dec"] = {"class_type": "VAEDecode", "inputs": {"samples": ["ks", 0], "vae": ["ckpt", 2]}}
    p["save"] = {"class_type": "SaveImage", "inputs": {"images": ["dec", 0], "filename_prefix": "progress"}}
    client = str(uuid.uuid4())

    async def go():
        progress, previews = [], 0
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"{server.url.replace('http', 'ws')}/ws?clientId={client}") as ws:
                status, body = server.queue(p, client_id=client)
                assert status == 200, body
                pid = body["prompt_id"]
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        previews += 1
                        continue
                    m = json.loads(msg.data)
                    d = m.get("data", {})
                    if m["type"] == "progress" and d.get("node") == "ks":
                        progress.append((d["value"], d["max"]))
                    if m["type"] == "execution_error":
                        raise AssertionError(d)
                    if m["type"] == "executing" and d.get("node") is None and d.get("prompt_id") == pid:
                        break
        return progress, previews

    progress, previews = asyncio.run(asyncio.wait_for(go(), 300))
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)], progress
    assert previews >= 4  # one live preview per step (latent2rgb), decoded by the host's previewer


@pytest.mark.host
def test_batch_of_two_gives_two_images(host):
    p = prompt(host.checkpoint(0), {"class_type": "EmptyLatentImage",
                                    "inputs": {"width": 64, "height": 64, "batch_size": 2}})
    out = host.run_latent(p, ["ks", 0])
    assert out.shape == (2, 4, 8, 8) and torch.isfinite(out).all()
    assert (out[0] - out[1]).abs().max() > 0.1  # different noise per image


@pytest.mark.host
def test_noise_mask_keeps_the_unmasked_half(host):
    image = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(11))
    extra = {
        "zero": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 64, "height": 64}},
        "one": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 32, "height": 64}},
        "mask": {"class_type": "MaskComposite", "inputs": {"destination": ["zero", 0], "source": ["one", 0],
                                                           "x": 0, "y": 0, "operation": "add"}},
        "masked": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["img", 0], "mask": ["mask", 0]}},
        "img": latent_from_tensor(host, image),
    }
    p = prompt(host.checkpoint(0), extra["img"], extra=extra)
    p["ks"]["inputs"]["latent_image"] = ["masked", 0]
    out = host.run_latent(p, ["ks", 0])
    left, right = out[..., :4], out[..., 4:]
    assert (left - image[..., :4]).abs().max() > 0.5, "the masked half was not re-sampled"
    # The kept half is the input, as the host's KSampler leaves it (float32 round trip through the latent scale).
    assert torch.allclose(right, image[..., 4:], atol=1e-5)
