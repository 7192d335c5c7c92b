"""Reliability of the TCD nodes in the real ComfyUI server (main.py on loopback): soak and memory, interrupt,
concurrent clients, bad API input, model faults (NaN/inf), determinism and the host's batch-noise convention.

Everything goes through HTTP (POST /prompt, /interrupt, GET /history) against the session's shared server; results
are compared as latents written by the host's own SaveLatent node. Tiny SDXL-shaped model, 8x8 latents, 1-4 steps,
except the interrupt test, which needs a run long enough to interrupt (1000 steps on the host's 'simple' schedule).
No wall time is asserted anywhere.
"""
from __future__ import annotations

import json
import threading
import time
import uuid

import psutil
import pytest
import torch
from safetensors.torch import load_file

import tcd_figures
from tcd_prompts import base_graph, custom_nodes, save_latent, tcd_ksampler

pytestmark = pytest.mark.server

CKPT_SEED = 0
RSS_MARGIN_MIB = 32  # allowed RSS growth of the server from prompt 5 to prompt 50 (about 3% of its ~1.05 GiB)
FIGURES = []


@tcd_figures.reporter("RELIABILITY: soak, interrupt, batch noise (tests/test_reliability.py)")
def report():
    return FIGURES


# -- prompt building ---------------------------------------------------------------------------------------------
def tcd_prompt(ckpt: str, seed: int, steps: int = 2, gamma: float = 0.3, batch: int = 1, size: int = 64,
               scheduler: str = "tcd", prefix: str | None = None, cfg: float = 1.0, model=("ckpt", 0),
               latent=("latent", 0)) -> dict:
    """Checkpoint -> TCD Sampler ('ks') -> SaveLatent ('save')."""
    g = base_graph(ckpt, size, size, batch, positive="a lighthouse at dusk", negative="")
    g["ks"] = tcd_ksampler(gamma, steps, cfg, seed=seed, model=model, latent=latent, scheduler=scheduler)
    g["save"] = save_latent(("ks", 0), prefix or f"rel/{uuid.uuid4().hex[:10]}")
    return g


def latents_of(server, entry: dict, node: str = "save") -> torch.Tensor:
    """The latent tensor a SaveLatent node wrote for this history entry."""
    (item,) = entry["outputs"][node]["latents"]
    path = server.output / item["subfolder"] / item["filename"]
    return load_file(str(path))["latent_tensor"]


def ok(entry: dict) -> dict:
    st = entry["status"]
    assert st["status_str"] == "success" and st["completed"], json.dumps(st["messages"])[-2000:]
    return entry


def messages(entry: dict, kind: str) -> list[dict]:
    return [d for k, d in entry["status"]["messages"] if k == kind]


def run_latent(server, prompt: dict) -> torch.Tensor:
    return latents_of(server, ok(server.run(prompt)))


@pytest.fixture(scope="module")
def ckpt(server):
    return server.build_checkpoint(CKPT_SEED)


# -- soak and memory -----------------------------------------------------------------------------------------------
def test_soak_50_prompts_all_succeed_and_memory_stays_flat(server, ckpt):
    proc = psutil.Process(server.proc.pid)
    rss = {}
    gammas = [0.0, 0.3, 0.7, 1.0, 0.5]
    for i in range(1, 51):
        steps, batch, gamma = 1 + i % 4, 1 + (i % 3 == 0), gammas[i % 5]
        entry = ok(server.run(tcd_prompt(ckpt, seed=10_000 + i, steps=steps, gamma=gamma, batch=batch,
                                         prefix="soak/p"), timeout=120))
        lat = latents_of(server, entry)
        assert lat.shape == (batch, 4, 8, 8) and torch.isfinite(lat).all() and lat.abs().max() > 0
        assert messages(entry, "execution_cached")[0]["nodes"].count("ks") == 0  # the sampler really ran
        if i in (5, 50):
            rss[i] = proc.memory_info().rss
    growth = rss[50] - rss[5]
    margin = RSS_MARGIN_MIB * 2**20
    FIGURES.append(f"soak: RSS after prompt 5 {rss[5] / 2**20:.1f} MiB, after prompt 50 {rss[50] / 2**20:.1f} MiB, "
                   f"growth {growth / 2**20:+.1f} MiB (allowed {margin / 2**20:.0f} MiB)")
    assert growth <= margin


# -- interrupt -----------------------------------------------------------------------------------------------------
def test_interrupt_ends_the_run_within_one_model_call_and_next_prompt_succeeds(server, ckpt, tmp_path):
    log = tmp_path / "calls.log"
    g = tcd_prompt(ckpt, seed=77, steps=1000, gamma=0.3, scheduler="simple", model=("calllog", 0))
    g["calllog"] = {"class_type": "TCDTestCallLog", "inputs": {"model": ["ckpt", 0], "path": str(log)}}
    status, body = server.queue(g)
    assert status == 200, body
    pid = body["prompt_id"]

    def ends() -> int:
        return log.read_text().count("end ") if log.exists() else 0

    deadline = time.time() + 180
    while ends() < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert ends() >= 3, "the long TCD run never started"
    st, _ = server.post("/interrupt", {"prompt_id": pid})
    assert st == 200
    done_at_interrupt = ends()  # read after the server set its interrupt flag
    entry = server.wait(pid, timeout=120)
    assert entry["status"]["status_str"] == "error"
    (interrupted,) = messages(entry, "execution_interrupted")
    assert interrupted["node_id"] == "ks" and interrupted["node_type"] == "TCDKSampler"
    assert not entry["outputs"], "an interrupted run must not save a latent"
    final = ends()
    FIGURES.append(f"interrupt: {done_at_interrupt} model calls done when /interrupt returned, {final} in all "
                   "(of 1000)")
    assert final <= done_at_interrupt + 1, "more than the in-flight model call ran after /interrupt"
    # The next prompt runs normally.
    lat = run_latent(server, tcd_prompt(ckpt, seed=78, steps=2))
    assert torch.isfinite(lat).all()


# -- concurrency ---------------------------------------------------------------------------------------------------
def test_eight_concurrent_clients_each_get_their_own_result(server, ckpt):
    seeds = [500 + 37 * k for k in range(8)]
    expected = {s: run_latent(server, tcd_prompt(ckpt, seed=s, steps=2, prefix=f"conc/seq_{s}")) for s in seeds}
    for a in seeds:  # distinct seeds give distinct latents, so a mix-up would show
        for b in seeds:
            assert a == b or not torch.equal(expected[a], expected[b])
    barrier = threading.Barrier(len(seeds))
    results, errors = {}, []

    def client(seed):
        try:
            cid = f"client-{seed}"
            barrier.wait(timeout=60)
            status, body = server.queue(tcd_prompt(ckpt, seed=seed, steps=2, prefix=f"conc/par_{seed}"), cid)
            assert status == 200, body
            results[seed] = latents_of(server, ok(server.wait(body["prompt_id"], timeout=240)))
        except BaseException as e:  # reported below
            errors.append((seed, repr(e)))

    threads = [threading.Thread(target=client, args=(s,)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert sorted(results) == sorted(seeds)
    for s in seeds:
        assert torch.equal(results[s], expected[s]), f"client with seed {s} got another result"


# -- bad API input -------------------------------------------------------------------------------------------------
NAN = object()  # placeholder, sent as the raw JSON literal NaN


def _bad_cases():
    def on_sampler(**changes):
        def make(ckpt, server):
            g = tcd_prompt(ckpt, seed=1)
            for k, v in changes.items():
                if v is KeyError:
                    del g["ks"]["inputs"][k]
                else:
                    g["ks"]["inputs"][k] = v
            return g, "ks"
        return make

    return {
        "steps_wrong_type": (on_sampler(steps="four"), "steps"),
        "gamma_wrong_type": (on_sampler(gamma="high"), "gamma"),
        "cfg_malformed_link": (on_sampler(cfg=[1, 2, 3]), "cfg"),
        "latent_linked_to_model": (on_sampler(latent_image=["ckpt", 0]), "latent_image"),
        "positive_missing": (on_sampler(positive=KeyError), "positive"),
        "gamma_missing": (on_sampler(gamma=KeyError), "gamma"),
        "steps_0": (on_sampler(steps=0), "steps"),
        "steps_10000": (on_sampler(steps=10000), "steps"),
        "steps_over_tcd_grid": (on_sampler(steps=51), "steps"),
        "gamma_-1": (on_sampler(gamma=-1.0), "gamma"),
        "gamma_NaN": (on_sampler(gamma=NAN), "gamma"),
        "cfg_NaN": (on_sampler(cfg=NAN), "cfg"),
        "seed_-1": (on_sampler(seed=-1), "seed"),
        "unknown_scheduler": (on_sampler(scheduler="no_such_scheduler"), "scheduler"),
        "nonexistent_lora": (_lora_case, "lora_name"),
    }


def _lora_case(ckpt, server):
    g = tcd_prompt(ckpt, seed=1, model=("lora", 0))
    # the pack's own loader, never a stand-in: a pack without it must fail this case
    g["lora"] = {"class_type": "TCDLoraLoader", "inputs": {"model": ["ckpt", 0], "clip": ["ckpt", 1],
                                                        "lora_name": "no_such_lora_file.safetensors",
                                                        "strength_model": 1.0, "strength_clip": 1.0}}
    return g, "lora"


BAD = _bad_cases()


@pytest.fixture(scope="module")
def good_runs(server, ckpt):
    """Two good prompts (seeds 3 and 4) and the latents the server gave for them before any bad input of this module;
    ``last`` is the one the server ran last (its sampler output is then in the server's cache)."""
    prompts = {seed: tcd_prompt(ckpt, seed=seed) for seed in (3, 4)}
    state = {"prompts": prompts, "latents": {}, "last": None}
    for seed, prompt in prompts.items():
        state["latents"][seed] = run_latent(server, prompt)
        state["last"] = seed
    assert not torch.equal(state["latents"][3], state["latents"][4])
    return state


def still_samples_as_before(server, good_runs):
    """The server runs a good prompt again, really (its sampler is not served from the cache: the other good prompt
    ran last), and gives the very latent it gave before the bad input, bit for bit."""
    seed = 3 if good_runs["last"] == 4 else 4
    prompt = dict(good_runs["prompts"][seed], save=save_latent(("ks", 0), f"rel/again_{uuid.uuid4().hex[:10]}"))
    entry = ok(server.run(prompt))
    good_runs["last"] = seed
    assert "ks" not in messages(entry, "execution_cached")[0]["nodes"], "the sampler did not run again"
    assert torch.equal(latents_of(server, entry), good_runs["latents"][seed]), \
        f"after the bad input, seed {seed} gives another latent than before"


@pytest.mark.parametrize("case", list(BAD))
def test_bad_api_input_gets_400_naming_the_input(server, ckpt, good_runs, case):
    make, name = BAD[case]
    prompt, node = make(ckpt, server)
    # NaN goes out as the raw JSON literal NaN (what a client's float('nan') becomes; the host's parser accepts it)
    body = json.dumps({"prompt": prompt, "client_id": "bad-input"}, default=lambda o: "__NAN__")
    body = body.replace('"__NAN__"', "NaN")
    assert ("NaN" in body) == case.endswith("NaN")
    status, answer = server.post("/prompt", body)
    assert status == 400, (status, answer)
    errors = answer["node_errors"][node]["errors"]
    named = [e for e in errors if e.get("extra_info", {}).get("input_name") == name]
    assert named, errors
    for e in named:
        if e["type"] == "custom_validation_failed":  # the pack's own check: its message names the input and value
            assert f"{name}=" in e["details"], e
    assert server.proc.poll() is None
    assert "TCDKSampler" in server.get("/object_info/TCDKSampler")  # still serving
    still_samples_as_before(server, good_runs)


# -- model faults --------------------------------------------------------------------------------------------------
def fault_prompt(ckpt, value: str, at_step: int, node: str, prefix: str) -> dict:
    g = base_graph(ckpt, positive="a lighthouse at dusk", negative="")
    g["faulty"] = {"class_type": "TCDTestFaultyModel",
                   "inputs": {"model": ["ckpt", 0], "value": value, "at_step": at_step}}
    if node == "TCDKSampler":
        g["ks"] = tcd_ksampler(0.3, 4, 1.0, seed=5, model=("faulty", 0))
    else:  # SamplerCustom with SamplerTCD + TCD Scheduler
        nodes = custom_nodes(0.3, 4, 1.0, seed=5, model=("faulty", 0))
        g.update(sampler=nodes["sampler"], sigmas=nodes["sigmas"], ks=nodes["sample"])
        g["ks"]["inputs"]["sigmas"] = ["sigmas", 0]
    g["decode"] = {"class_type": "VAEDecode", "inputs": {"samples": ["ks", 0], "vae": ["ckpt", 2]}}
    g["image"] = {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": prefix}}
    return g


@pytest.mark.parametrize("value,node", [("nan", "TCDKSampler"), ("inf", "TCDKSampler"),
                                        ("nan", "SamplerCustom"), ("-inf", "SamplerCustom")])
def test_model_fault_fails_naming_the_step_and_saves_nothing(server, ckpt, value, node):
    prefix = f"fault_{value}_{node}_{uuid.uuid4().hex[:6]}"
    entry = server.run(fault_prompt(ckpt, value, 3, node, prefix), timeout=120)
    assert entry["status"]["status_str"] == "error"
    (err,) = messages(entry, "execution_error")
    assert err["node_id"] == "ks" and err["exception_type"] == "FloatingPointError"
    assert "TCD step 3 of 4" in err["exception_message"] and "NaN or inf" in err["exception_message"]
    assert not entry["outputs"]
    assert not list(server.output.glob(f"{prefix}*")), "an image was saved from a broken latent"


def test_fault_harness_control_run_saves_an_image(server, ckpt):
    # Same graph, fault scheduled after the last step: the run succeeds and SaveImage writes a file, so the
    # 'nothing saved' check above can see a save when there is one.
    prefix = f"fault_control_{uuid.uuid4().hex[:6]}"
    entry = ok(server.run(fault_prompt(ckpt, "nan", 5, "TCDKSampler", prefix), timeout=120))
    assert entry["outputs"]["image"]["images"] and list(server.output.glob(f"{prefix}*"))


# -- determinism and the batch noise convention --------------------------------------------------------------------
def test_same_prompt_twice_gives_identical_latents(server, ckpt):
    a1 = tcd_prompt(ckpt, seed=4242, steps=4, gamma=0.5, batch=2, prefix="det/a1")
    first = run_latent(server, a1)
    run_latent(server, tcd_prompt(ckpt, seed=4243, steps=4, gamma=0.5, batch=2, prefix="det/b"))  # evicts cache
    a2 = tcd_prompt(ckpt, seed=4242, steps=4, gamma=0.5, batch=2, prefix="det/a2")
    entry = ok(server.run(a2))
    assert "ks" not in messages(entry, "execution_cached")[0]["nodes"], "the second run came from the cache"
    second = latents_of(server, entry)
    assert torch.equal(first, second)


def _maxdiff(a, b) -> float:
    """Largest difference relative to the largest value (the random test model's latents are of order 100)."""
    return float((a - b).abs().max() / b.abs().max())


def test_batch_noise_convention(server, ckpt):
    """The pack's noise stream (samplers/noise.py), and what it implies for a batch (documented in the README):

    * initial noise: the stream's first draw, ONE randn tensor shaped like the whole batch (what the host's
      prepare_noise gives); per-image draws only when the latent carries batch_index;
    * per-step noise: the stream's next draws, one tensor shaped like the whole batch per step.
    So image 0 of a batch equals the single-image run of that seed when no per-step noise is drawn after the
    first step (gamma 0, or 1 step), and differs otherwise; image i alone is reproduced with LatentFromBatch
    (batch_index i) at gamma 0. On the CPU generator this needs 4*h*w to be a multiple of 16 (see the 5x5 case).
    """
    def single(seed, **kw):
        return run_latent(server, tcd_prompt(ckpt, seed=seed, batch=1, **kw))[0]

    def batch2(seed, **kw):
        return run_latent(server, tcd_prompt(ckpt, seed=seed, batch=2, **kw))

    tol = 1e-5  # relative: batched vs unbatched UNet arithmetic differs in the last bits (seen: 4e-7)
    seed, d = 900, {}
    # gamma 0: no per-step noise, so image 0 of the batch is the single run.
    b = batch2(seed, steps=4, gamma=0.0)
    s = single(seed, steps=4, gamma=0.0)
    d["g0 4 steps: batch[0] vs single"] = _maxdiff(b[0], s)
    d["g0 4 steps: batch[1] vs single"] = _maxdiff(b[1], s)
    # ... and image 1 alone: LatentFromBatch(batch_index=1) of a batch-2 empty latent carries batch_index [1].
    g = tcd_prompt(ckpt, seed=seed, steps=4, gamma=0.0, batch=2, latent=("pick", 0))
    g["pick"] = {"class_type": "LatentFromBatch", "inputs": {"samples": ["latent", 0], "batch_index": 1, "length": 1}}
    one = run_latent(server, g)
    assert one.shape[0] == 1
    d["g0 4 steps: batch[1] vs LatentFromBatch(1) run"] = _maxdiff(one[0], b[1])
    # gamma > 0 with one step: no noise is drawn after the last step, so still equal.
    d["g0.3 1 step: batch[0] vs single"] = _maxdiff(batch2(seed, steps=1, gamma=0.3)[0],
                                                    single(seed, steps=1, gamma=0.3))
    # gamma > 0 with 4 steps: the per-step draws are shaped like the batch, so image 0 differs from the single run.
    d["g0.3 4 steps: batch[0] vs single"] = _maxdiff(batch2(seed, steps=4, gamma=0.3)[0],
                                                     single(seed, steps=4, gamma=0.3))
    # CPU generator detail: randn fills in blocks of 16, so a batch draw splits into the single draws only when
    # 4*h*w is a multiple of 16. A 5x5 latent (40 px) breaks it even at gamma 0.
    d["g0 1 step 5x5 latent: batch[0] vs single"] = _maxdiff(batch2(seed, steps=1, gamma=0.0, size=40)[0],
                                                             single(seed, steps=1, gamma=0.0, size=40))
    FIGURES.append("batch noise (relative max difference): " + "; ".join(f"{k}: {v:.2e}" for k, v in d.items()))
    assert d["g0 4 steps: batch[0] vs single"] <= tol
    assert d["g0 4 steps: batch[1] vs single"] > 1e-2  # image 1 got the next noise, not the same
    assert d["g0 4 steps: batch[1] vs LatentFromBatch(1) run"] <= tol
    assert d["g0.3 1 step: batch[0] vs single"] <= tol
    assert d["g0.3 4 steps: batch[0] vs single"] > 1e-2
    assert d["g0 1 step 5x5 latent: batch[0] vs single"] > 1e-2
