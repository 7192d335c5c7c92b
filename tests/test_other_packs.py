"""Living beside the other TCD packs (JettHu/ComfyUI-TCD, dfl/comfyui-tcd-scheduler, licyk/ComfyUI-TCD-Sampler).

- A registry identity of our own: pyproject's [project] name and the folder the README installs into are no other
  TCD pack's registry name or folder, case-insensitively (Windows and macOS file systems), and every install line and
  doc names that folder.
- The stock KSampler's 'tcd' stays this pack's beside a pack that takes it at import (tests/tcd_name_taker does what
  licyk's does, and takes scheduler 'tcd' too), loaded before or after this pack: through the in-process executor (one
  host per process: tests/tcd_two_packs.py in a subprocess per order, both at once) and through the real server (one
  per order): 'tcd' listed once, the latents of this pack alone run after run, one log line naming that pack, and
  that pack's own 'tcd_euler_a' left alone (it runs that pack's sampler).
"""
import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import tcd_figures
from tcd_host import PACK_NAME, REPO, host_version, pyproject_value
from tcd_prompts import save_latent
from tcd_two_packs import PROMPTS, TAKER, naming_the_taker, prompt

ORDERS = ("before", "after")
# The other TCD packs as their pyproject.toml files and READMEs name them (data, none of their code):
# repository -> ([project] name = registry node id, the folder `git clone` makes, [tool.comfy] PublisherId, DisplayName)
OTHER_TCD_PACKS = {
    "JettHu/ComfyUI-TCD": ("comfyui-tcd", "ComfyUI-TCD", "jetthu", "ComfyUI-TCD"),
    "dfl/comfyui-tcd-scheduler": ("comfyui-tcd-scheduler", "comfyui-tcd-scheduler", "", "comfyui-tcd-scheduler"),
    "licyk/ComfyUI-TCD-Sampler": ("comfyui-tcd-sampler", "ComfyUI-TCD-Sampler", "licyk", "ComfyUI-TCD-Sampler"),
}
# the registry's rule for a node id: letters, digits and single - _ . between them, starting with a letter, < 100
REGISTRY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*")
FIGURES = {}


@tcd_figures.reporter("THE STOCK KSAMPLER'S 'tcd' BESIDE A PACK THAT TAKES IT")
def _figures():
    for (where, order), f in sorted(FIGURES.items()):
        yield (f"ComfyUI {f['host']}, {where}, that pack loaded {order} this one: 'tcd' listed {f['listed']}x; "
               f"max |latent - this pack alone| {f['diff']:.1e} over {f['runs']} runs; that pack's 'tcd_euler_a' "
               f"{f['theirs']:.3g} away (relative); {len(f['log'])} log line: {f['log'][0] if f['log'] else '-'}")


# -- a registry identity of our own (unit tier) ----------------------------------------------------------------------
def test_registry_name_and_folder_are_no_other_tcd_packs():
    name = pyproject_value("project", "name")
    assert PACK_NAME == name, "the test harness's folder is not the registry name"
    taken = {n.lower() for reg, folder, _, _ in OTHER_TCD_PACKS.values() for n in (reg, folder)}
    assert name.lower() not in taken and PACK_NAME.lower() not in taken, f"{name!r} is another TCD pack's"
    assert REGISTRY_NAME.fullmatch(name) and len(name) < 100, f"{name!r} breaks the registry's node id rule"
    assert "comfyui" not in name.lower(), "the registry asks node ids not to include 'ComfyUI'"
    publisher, display = pyproject_value("tool.comfy", "PublisherId"), pyproject_value("tool.comfy", "DisplayName")
    assert publisher and publisher.lower() not in {p.lower() for _, _, p, _ in OTHER_TCD_PACKS.values()}
    assert display.lower() not in {d.lower() for _, _, _, d in OTHER_TCD_PACKS.values()}
    publish = (REPO / ".github" / "workflows" / "publish.yml").read_text()
    assert f'create the publisher "{publisher}"' in publish, "the publish workflow names another publisher"


def test_install_lines_and_docs_name_the_folder():
    readme = (REPO / "README.md").read_text()
    assert f"comfy node install {PACK_NAME}`" in readme
    clones = re.findall(r"git clone <this repository> (\S+?)`", readme)
    assert clones == [PACK_NAME], clones
    docs = {p.name: p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]}
    folders = {(doc, f) for doc, text in docs.items() for f in re.findall(r"custom_nodes/([A-Za-z][\w.-]*)", text)}
    assert all(f == PACK_NAME for _, f in folders), folders
    for doc in ("README.md", "workflows.md"):  # the template browser lists the workflows under the folder's name
        assert re.search(rf"\*\*Templates\*\*.*`{re.escape(PACK_NAME)}`", docs[doc], re.S), doc


# -- the stock KSampler's 'tcd' beside a pack that takes it -----------------------------------------------------------
def latent_diffs(ours: dict, alone: dict) -> dict:
    """max |latent - the same prompt with this pack alone| per run; and 'theirs': how far the other pack's own
    'tcd_euler_a' lands from our 'tcd' (max |difference| / max |ours|)."""
    out = {name: float((ours[name] - alone[name.replace("_again", "").replace("_late", "")]).abs().max())
           for name in ours if not name.startswith("euler_a")}
    b = alone["tcd_simple"]
    out["theirs"] = float((ours["euler_a_simple"] - b).abs().max() / b.abs().max())
    return out


def check(where: str, order: str, listed: dict, diffs: dict, log: list[str]):
    """The figures of one order, recorded, then the rule: 'tcd' once, this pack's latents, one line naming the pack."""
    FIGURES[(where, order)] = {"host": host_version(), "listed": listed["SAMPLERS"], "runs": len(diffs) - 1,
                               "diff": max(v for k, v in diffs.items() if k != "theirs"), "theirs": diffs["theirs"],
                               "log": log}
    assert listed["SAMPLERS"] == 1 and listed["SCHEDULERS"] == 1, listed
    assert listed["tcd_euler_a"] >= 1, "the other pack's own name is gone"
    assert all(v == 0.0 for k, v in diffs.items() if k != "theirs"), diffs
    assert diffs["theirs"] > 0.05, "the other pack's sampler gives this pack's latents: the comparison shows nothing"
    assert len(log) == 1, log
    assert f"'{TAKER.name}'" in log[0] and "sampler 'tcd'" in log[0], log[0]


@pytest.fixture(scope="module")
def in_process(host):
    """This pack alone in this process, and each order in a process of its own (both started first, at once): the
    latent of each prompt of tcd_two_packs.PROMPTS alone, and (report, latents) per order."""
    ckpt = host.checkpoint(0)
    outs = {order: Path(tempfile.mkdtemp(prefix=f"tcd-two-packs-{order}-out-")) for order in ORDERS}
    procs = {order: subprocess.Popen([sys.executable, str(REPO / "tests" / "tcd_two_packs.py"), order,
                                      str(host.models / "checkpoints" / ckpt), str(outs[order])],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for order in ORDERS}
    alone = {name: host.run_latent(prompt(ckpt, *sn), ["ks", 0]) for name, sn in PROMPTS.items()
             if not name.startswith("euler_a")}
    results = {}
    for order, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-4000:]
        results[order] = (json.loads(stdout.strip().splitlines()[-1]),
                          {p.stem: load_file(str(p))["latent"] for p in outs[order].glob("*.safetensors")})
    return alone, results


@pytest.mark.host
@pytest.mark.parametrize("order", ORDERS)
def test_tcd_stays_ours_in_process(in_process, order):
    alone, (report, latents) = in_process[0], in_process[1][order]
    ours, theirs = str(REPO / "nodes"), str(TAKER)
    loaded = report["loaded"]
    # after loading, before any prompt: this pack's functions under both names, the other pack's own name its own
    assert loaded["sample_tcd"].startswith(ours) and loaded["scheduler_tcd"].startswith(ours), loaded
    assert loaded["sample_tcd_euler_a"].startswith(theirs) and loaded["KSAMPLER_NAMES"] == 1, loaded
    assert report["log_after_load"] == report["log"], "a log line came after loading"
    # the other pack registering its sampler again at run time: taken back when scheduler 'tcd' runs
    assert report["late"]["sample_tcd"].startswith(theirs) and report["late"]["SAMPLERS"] == 2, report["late"]
    assert report["after_late_run"]["sample_tcd"].startswith(ours), report["after_late_run"]
    assert report["after_late_run"]["SAMPLERS"] == 1, report["after_late_run"]
    check("in process", order, loaded, latent_diffs(latents, alone), report["log"])


@pytest.fixture(scope="module")
def two_pack_servers(server):
    """A server per order, started at once, with the session server's checkpoint."""
    from tcd_server import ComfyServer
    ckpt = server.build_checkpoint(0)
    servers = {order: ComfyServer(**{order: [TAKER]}) for order in ORDERS}
    for srv in servers.values():
        (srv.models / "checkpoints" / ckpt).symlink_to(server.models / "checkpoints" / ckpt)
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(lambda s: s.start(), servers.values()))
        yield ckpt, servers
    finally:
        for srv in servers.values():
            srv.stop()


def server_latent(srv, ckpt, sampler, scheduler) -> torch.Tensor:
    """Run a stock KSampler prompt on ``srv``; the latent its SaveLatent wrote (the sampler ran: nothing cached)."""
    entry = srv.run({**prompt(ckpt, sampler, scheduler), "save": save_latent(("ks", 0))})
    assert entry["status"]["status_str"] == "success", entry["status"]
    cached = [d for k, d in entry["status"]["messages"] if k == "execution_cached"]
    assert not cached or "ks" not in cached[0]["nodes"], "the sampler's result came from the cache"
    (item,) = entry["outputs"]["save"]["latents"]
    return load_file(str(srv.output / item["subfolder"] / item["filename"]))["latent_tensor"]


def combo_options(spec) -> list:
    """A combo input's options as /object_info serves them (a list, or COMBO with options)."""
    return spec[1]["options"] if spec[0] == "COMBO" else spec[0]


@pytest.mark.server
@pytest.mark.parametrize("order", ORDERS)
def test_tcd_stays_ours_on_the_server(server, two_pack_servers, order):
    ckpt, servers = two_pack_servers
    srv = servers[order]
    required = srv.get("/object_info/KSampler")["KSampler"]["input"]["required"]
    samplers, schedulers = combo_options(required["sampler_name"]), combo_options(required["scheduler"])
    listed = {"SAMPLERS": samplers.count("tcd"), "SCHEDULERS": schedulers.count("tcd"),
              "tcd_euler_a": samplers.count("tcd_euler_a")}
    alone = {name: server_latent(server, ckpt, *sn) for name, sn in PROMPTS.items() if not name.startswith("euler_a")}
    runs = {name: server_latent(srv, ckpt, *sn) for name, sn in PROMPTS.items()}
    runs["tcd_tcd_again"] = server_latent(srv, ckpt, *PROMPTS["tcd_tcd"])  # after other prompts: it runs again
    log = naming_the_taker(re.sub(r"\x1b\[[0-9;]*m", "", srv.log.read_text()).splitlines())  # v0.33.0 colours levels
    check("server", order, listed, latent_diffs(runs, alone), log)
