"""First-step cache: the first model evaluation of a TCD run, kept across queue runs so that a gamma-only change
skips it.

The first TCD step evaluates the model at the first sigma on ``noise_scaling(sigma_0, noise, latent)`` before gamma
plays any part, so a re-queue that changes only gamma can reuse the earlier evaluation and make ``steps - 1`` model
calls. The key holds everything that determines that evaluation:

- the model: its weights object (held weakly: entries die with the model), ``patches_uuid`` (weight patches such as
  LoRAs and their strengths), object patches, weight-wrapper patches, wrappers and ``model_options`` (model-function
  wrappers, cfg functions, transformer patches), its load device and dtype;
- the conditioning (tensors by content, other values by value or identity), the latent (content, shape, batch
  indices, noise mask, an empty-latent node's size hints), the noise seed, cfg, and the first sigma (which is where
  scheduler, steps and denoise enter). When the model carries any patch function, the whole sigma schedule is keyed
  instead of its first value, because a patch may read it (``transformer_options["sample_sigmas"]``).

Objects that are keyed by identity (patch functions, control objects, ...) are remembered by weak reference and
must still be alive on a hit, so a recycled ``id()`` can never produce a false hit. Anything that cannot be keyed
safely (nested latents, hook patches, injections, values without a weak reference) makes the run uncacheable: it
simply runs in full. The cache holds at most ``MAX_ENTRIES`` latents and ``MAX_BYTES`` in all.

Switch it off with the environment variable ``TCD_FIRST_STEP_CACHE=0`` or by setting ``ENABLED = False``.
"""
from __future__ import annotations

import enum
import hashlib
import os
import threading
import weakref
from collections import OrderedDict
from typing import Any, Optional

import torch

from .host import EMPTY_LATENT_HINTS

ENABLED = True
ENV_VAR = "TCD_FIRST_STEP_CACHE"
MAX_ENTRIES = 4
MAX_BYTES = 512 * 1024 * 1024

_entries: "OrderedDict[tuple, _Entry]" = OrderedDict()
_lock = threading.Lock()
stats = {"hits": 0, "misses": 0, "stores": 0, "uncacheable": 0}


class Uncacheable(Exception):
    """Raised while building a key for a value that cannot be keyed safely."""


class _Entry:
    __slots__ = ("denoised", "model_ref", "witnesses", "nbytes")

    def __init__(self, denoised, model_ref, witnesses):
        self.denoised = denoised
        self.model_ref = model_ref
        self.witnesses = witnesses
        self.nbytes = denoised.numel() * denoised.element_size()


def enabled() -> bool:
    """True unless switched off by ``ENABLED = False`` or ``TCD_FIRST_STEP_CACHE`` set to 0/false/off/no."""
    return ENABLED and os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "off", "no")


def clear() -> None:
    with _lock:
        _entries.clear()


def size() -> int:
    return len(_entries)


# -- keys ---------------------------------------------------------------------------------------------------------
def _tensor_digest(t: torch.Tensor) -> tuple:
    if getattr(t, "is_nested", False) or t.layout != torch.strided:
        raise Uncacheable("nested or sparse tensor")
    data = t.detach().to("cpu").contiguous().reshape(-1)
    h = hashlib.blake2b(digest_size=20)
    h.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return ("tensor", str(t.dtype), tuple(t.shape), h.hexdigest())


class _Fingerprint:
    """Turns nested values into a hashable key; objects seen by identity are collected as weakly held witnesses."""

    def __init__(self):
        self.witnesses: list[weakref.ref] = []
        self.has_functions = False

    def __call__(self, v: Any, depth: int = 0):
        if depth > 12:
            raise Uncacheable("value nested too deeply")
        if v is None or isinstance(v, (bool, int, float, str, bytes)):
            return (type(v).__name__, v)
        if isinstance(v, torch.Tensor):
            return _tensor_digest(v)
        if isinstance(v, torch.device) or isinstance(v, torch.dtype):
            return ("torch", str(v))
        if isinstance(v, (list, tuple)):
            return (type(v).__name__, tuple(self(x, depth + 1) for x in v))
        if isinstance(v, dict):
            items = [(self(k, depth + 1), self(x, depth + 1)) for k, x in v.items()]
            return ("dict", tuple(sorted(items, key=repr)))
        if isinstance(v, (set, frozenset)):
            return ("set", tuple(sorted((self(x, depth + 1) for x in v), key=repr)))
        if isinstance(v, enum.Enum):
            return ("enum", type(v).__qualname__, repr(v))
        # Anything else (functions, patch objects, control nets, ...) by identity, proven alive on a hit.
        if callable(v):
            self.has_functions = True
        try:
            self.witnesses.append(weakref.ref(v))
        except TypeError:
            raise Uncacheable(f"cannot key a {type(v).__qualname__}") from None
        return ("id", type(v).__module__, type(v).__qualname__, id(v))


def _model_part(model, fp: _Fingerprint) -> tuple:
    for attr in ("hook_patches", "injections", "additional_models"):
        if getattr(model, attr, None):
            raise Uncacheable(f"model has {attr}")
    if getattr(model, "current_hooks", None) is not None or getattr(model, "forced_hooks", None) is not None:
        raise Uncacheable("model has hooks")
    return ("model",
            str(getattr(model, "patches_uuid", None)),
            fp(getattr(model, "object_patches", {})),
            fp(getattr(model, "weight_wrapper_patches", {})),
            fp(getattr(model, "wrappers", {})),
            fp(getattr(model, "model_options", {})),
            bool(getattr(model, "force_cast_weights", False)),
            str(getattr(model, "load_device", None)),
            str(model.model_dtype()) if hasattr(model, "model_dtype") else None)


def make_key(model, seed, cfg, sigmas, positive, negative, latent) -> Optional[tuple]:
    """The cache key of a TCD run's first model evaluation plus its witnesses, or None when it cannot be keyed."""
    fp = _Fingerprint()
    try:
        inner = model.model
        model_part = _model_part(model, fp)
        samples = latent["samples"]
        latent_part = ("latent", _tensor_digest(samples), fp(latent.get("batch_index")),
                       None if latent.get("noise_mask") is None else _tensor_digest(latent["noise_mask"]),
                       fp({k: latent.get(k) for k in EMPTY_LATENT_HINTS}))
        cond_part = ("cond", fp(positive), fp(negative))
        sig = sigmas.detach().float().cpu()
        sigma_part = ("sigmas", _tensor_digest(sig) if fp.has_functions else float(sig[0]))
        key = (id(inner), model_part, cond_part, latent_part, ("seed", int(seed)), ("cfg", float(cfg)), sigma_part)
        model_ref = weakref.ref(inner)
    except Uncacheable:
        stats["uncacheable"] += 1
        return None
    return key, model_ref, fp.witnesses


def _alive(entry: _Entry, model_ref) -> bool:
    return entry.model_ref() is not None and entry.model_ref() is model_ref() and all(w() is not None
                                                                                      for w in entry.witnesses)


def lookup(keyed) -> Optional[torch.Tensor]:
    """The cached first evaluation for this key, or None."""
    if keyed is None:
        return None
    key, model_ref, _ = keyed
    with _lock:
        entry = _entries.get(key)
        if entry is not None and not _alive(entry, model_ref):
            del _entries[key]
            entry = None
        if entry is None:
            stats["misses"] += 1
            return None
        _entries.move_to_end(key)
        stats["hits"] += 1
        return entry.denoised


def _drop_model(key):
    with _lock:
        _entries.pop(key, None)


def store(keyed, denoised: torch.Tensor) -> None:
    """Remember the first evaluation for this key (least recently used entries go first)."""
    if keyed is None:
        return
    key, model_ref, witnesses = keyed
    inner = model_ref()
    if inner is None:
        return
    entry = _Entry(denoised.detach().clone(), weakref.ref(inner, lambda _r, k=key: _drop_model(k)), witnesses)
    if entry.nbytes > MAX_BYTES:
        return
    with _lock:
        _entries[key] = entry
        _entries.move_to_end(key)
        while len(_entries) > MAX_ENTRIES or sum(e.nbytes for e in _entries.values()) > MAX_BYTES:
            _entries.popitem(last=False)
        stats["stores"] += 1


class FirstStep:
    """The first model evaluation of one TCD run, or of all the runs of a sweep: cached, or captured by the first."""

    def __init__(self, keyed, denoised: Optional[torch.Tensor] = None):
        self.keyed, self.denoised = keyed, denoised

    def sampler_options(self) -> dict:
        """Options for ``tcd_ksampler``: the known first evaluation, or a hook that captures (and caches) it."""
        if self.denoised is not None:
            return {"first_denoised": self.denoised}
        return {"on_first_denoised": self._capture}

    def _capture(self, denoised: torch.Tensor) -> None:
        self.denoised = denoised.detach().clone()
        store(self.keyed, self.denoised)


def first_step(model, seed, cfg, sigmas, positive, negative, latent) -> FirstStep:
    """The one entry point: an earlier run's first evaluation when one is cached for these inputs, else a
    ``FirstStep`` that captures it (into the cache, unless it is switched off or the run cannot be keyed)."""
    keyed = make_key(model, seed, cfg, sigmas, positive, negative, latent) if enabled() else None
    return FirstStep(keyed, lookup(keyed))
