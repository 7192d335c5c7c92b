"""The in-process host with another pack that takes the stock KSampler's 'tcd' (tests/tcd_name_taker) loaded before or
after this pack, in a process of its own (host state is global: one host per process).

``python tests/tcd_two_packs.py before|after <checkpoint file> <folder>`` sets the host up as tests/tcd_host.py does,
records what the host's names hold after loading, runs the stock KSampler prompts of ``PROMPTS`` (and 'tcd/tcd' once
more; then again after the other pack registers its sampler a second time, at run time), writes each latent to
<folder>/<name>.safetensors and prints a JSON report on its last line.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from tcd_prompts import base_graph, stock_ksampler

TAKER = Path(__file__).resolve().parent / "tcd_name_taker"
PROMPTS = {  # latent name -> the stock KSampler's (sampler_name, scheduler)
    "tcd_tcd": ("tcd", "tcd"),  # scheduler 'tcd' runs this pack's code before the sampler is looked up
    "tcd_simple": ("tcd", "simple"),  # nothing of this pack runs before the sampler is looked up
    "euler_a_simple": ("tcd_euler_a", "simple"),  # the other pack's own name: its one Euler step
}
STEPS = 3


def prompt(ckpt: str, sampler: str, scheduler: str) -> dict:
    """The stock KSampler with this sampler and scheduler ('ks'), 3 steps at cfg 1, on a tiny SDXL checkpoint."""
    ks = stock_ksampler(STEPS, 1.0)
    ks["inputs"].update(sampler_name=sampler, scheduler=scheduler)
    return {**base_graph(ckpt), "ks": ks}


def origin(fn) -> str:
    """The real path of the file that defines ``fn``."""
    return os.path.realpath(fn.__code__.co_filename)


def names_state() -> dict:
    """How often the host lists 'tcd' and 'tcd_euler_a', and which files define what their names run."""
    import comfy.k_diffusion.sampling as ks
    import comfy.samplers as cs
    return {"SAMPLERS": cs.KSampler.SAMPLERS.count("tcd"), "KSAMPLER_NAMES": cs.KSAMPLER_NAMES.count("tcd"),
            "SCHEDULERS": cs.KSampler.SCHEDULERS.count("tcd"), "tcd_euler_a": cs.KSampler.SAMPLERS.count("tcd_euler_a"),
            "sample_tcd": origin(ks.sample_tcd), "sample_tcd_euler_a": origin(ks.sample_tcd_euler_a),
            "scheduler_tcd": origin(cs.SCHEDULER_HANDLERS["tcd"].handler)}


def naming_the_taker(lines) -> list[str]:
    """The log lines that name the other pack together with the name 'tcd' (not, e.g., the host's import times)."""
    return [line for line in lines if TAKER.name in line and "'tcd'" in line]


def main(order: str, ckpt_file: str, out: str) -> dict:
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    from tcd_host import Host, host_root
    host = Host(host_root(), Path(tempfile.mkdtemp(prefix=f"tcd-two-packs-{order}-")), **{order: [TAKER]})
    ckpt = Path(ckpt_file).name
    (host.models / "checkpoints" / ckpt).symlink_to(ckpt_file)
    report = {"loaded": names_state(), "log_after_load": naming_the_taker(records)}

    def run(name, sampler, scheduler):
        import safetensors.torch
        host.executor = None  # a fresh executor: the sampler runs again, nothing comes from the cache
        latent = host.run_latent(prompt(ckpt, sampler, scheduler), ["ks", 0])
        safetensors.torch.save_file({"latent": latent}, os.path.join(out, f"{name}.safetensors"))

    for name, (sampler, scheduler) in PROMPTS.items():
        run(name, sampler, scheduler)
    run("tcd_tcd_again", "tcd", "tcd")
    taker = sys.modules[str(host.custom.parent / f"custom_nodes_{order}_0" / TAKER.name).replace(".", "_x_")]
    taker.take_sampler_names()  # the other pack registers its sampler again, after start-up
    report["late"] = names_state()
    run("tcd_tcd_late", "tcd", "tcd")
    report["after_late_run"] = names_state()
    report["log"] = naming_the_taker(records)
    return report


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
