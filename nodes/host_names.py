"""The stock KSampler's sampler 'tcd' and scheduler 'tcd': this pack's, listed once, whatever other pack registers the
same names and in whichever order the packs load.

Another pack may set ``comfy.k_diffusion.sampling.sample_tcd`` (what the host's ``ksampler('tcd')`` looks up when
the sampler runs) and append 'tcd' to the host's lists at import, unconditionally. The names are claimed back at
three moments, which are the same for the server (main.py) and the tests' in-process executor, because both load
every custom node inside one asyncio task, ``loop.run_until_complete(nodes.init_extra_nodes(...))``:

1. at this pack's import: a pack loaded before this one has already registered, and is taken back at once;
2. when that task is done, i.e. after the last custom node has loaded: a pack loaded after this one is taken back
   then. The task's done callbacks are called in one batch with ``run_until_complete``'s own, and asyncio runs the
   whole batch before the loop stops, so this runs before ``run_until_complete`` returns and before any prompt (the
   host restores what it protects from custom nodes, hook_breaker_ac10a0, at the same point);
3. each time scheduler 'tcd' runs: the host computes a KSampler's sigmas before it looks the sampler up, so a pack
   that registers later still loses the name before the sampler is looked up.

Each other pack is named in the log once. The other names such a pack registers (e.g. 'tcd_euler_a') are left alone.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import os

import comfy.k_diffusion.sampling as k_sampling
import comfy.samplers
import folder_paths

from .host import PACK, SAMPLER_NAME, SCHEDULER_NAME, sample_tcd_host, tcd_schedule

log = logging.getLogger(f"{PACK}.host_names")
SAMPLER_ATTR = f"sample_{SAMPLER_NAME}"  # the attribute comfy.samplers.ksampler(name) reads when the sampler runs
_named: set[str] = set()  # the other packs already named in the log


def tcd_scheduler(model_sampling, steps):
    """Scheduler 'tcd' (the host's handler signature): the TCD grid, after making sure sampler 'tcd' is still ours."""
    claim_host_names()
    return tcd_schedule(model_sampling, steps)


def keep_once(names: list, name: str) -> bool:
    """Leave ``name`` in the host's list exactly once, in place (the host's nodes hold this very list); True if the
    list changed."""
    if name not in names:
        names.append(name)
        return True
    changed = False
    while names.count(name) > 1:
        del names[len(names) - 1 - names[::-1].index(name)]
        changed = True
    return changed


def pack_of(fn) -> str:
    """Where ``fn`` comes from: its pack's folder under a custom_nodes path (name and path), else its module."""
    fn = inspect.unwrap(getattr(fn, "func", fn))
    path = getattr(getattr(fn, "__code__", None), "co_filename", None)
    for root in folder_paths.get_folder_paths("custom_nodes") if path else ():
        try:
            rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
        except ValueError:  # another drive (Windows)
            continue
        if rel != os.curdir and not rel.startswith(os.pardir):
            name = rel.split(os.sep)[0]
            return f"'{name}' ({os.path.join(root, name)})"
    return f"module {getattr(fn, '__module__', None) or fn!r}"


def claim_host_names() -> dict:
    """Make sampler and scheduler 'tcd' this pack's, each listed once; name any other pack that held one in the log
    (once per pack). Returns which of the two this call changed."""
    handlers = comfy.samplers.SCHEDULER_HANDLERS
    ours = {"sampler": sample_tcd_host, "scheduler": tcd_scheduler}
    held = {"sampler": getattr(k_sampling, SAMPLER_ATTR, None),
            "scheduler": getattr(handlers.get(SCHEDULER_NAME), "handler", None)}
    if held["sampler"] is not sample_tcd_host:
        setattr(k_sampling, SAMPLER_ATTR, sample_tcd_host)
    if held["scheduler"] is not tcd_scheduler:
        handlers[SCHEDULER_NAME] = comfy.samplers.SchedulerHandler(tcd_scheduler, use_ms=True)
    relisted = {"sampler": [keep_once(names, SAMPLER_NAME)
                            for names in (comfy.samplers.KSAMPLER_NAMES, comfy.samplers.SAMPLER_NAMES)],
                "scheduler": [keep_once(comfy.samplers.SCHEDULER_NAMES, SCHEDULER_NAME)]}
    taken_from: dict[str, list[str]] = {}
    for kind, name in (("sampler", SAMPLER_NAME), ("scheduler", SCHEDULER_NAME)):
        if held[kind] is not None and held[kind] is not ours[kind]:
            taken_from.setdefault(pack_of(held[kind]), []).append(f"{kind} '{name}'")
    for pack, what in taken_from.items():
        if pack not in _named:
            _named.add(pack)
            log.warning("%s: the custom node pack %s also registers the stock KSampler's %s; %s took %s back: "
                        "KSampler's 'tcd' runs %s's TCD and is listed once. That pack's other names are left alone.",
                        PACK, pack, " and ".join(what), PACK, "them" if len(what) > 1 else "it", PACK)
    return {kind: held[kind] is not ours[kind] or any(relisted[kind]) for kind in ours}


def claim_after_custom_nodes_load() -> bool:
    """Claim the names again when the asyncio task loading custom nodes is done (after every pack's import); False
    when this runs outside a task (nothing to wait for: moments 1 and 3 of the module docstring still hold)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop
        task = None
    if task is None:
        return False
    task.add_done_callback(lambda _task: claim_host_names())
    return True


def register_host_names() -> dict:
    """Add sampler 'tcd' and scheduler 'tcd' to the host's dropdowns (once, idempotent), take them back from a pack
    loaded earlier, and again after the packs loaded later. Returns which of the two this call changed."""
    done = claim_host_names()
    claim_after_custom_nodes_load()
    return done
