"""TCD Gamma Sweep: one TCD run per gamma from the same seed and noise, sharing the (gamma-free) first model call."""
from __future__ import annotations

import re

import comfy.model_management
import torch
from comfy_api.latest import io

from ..samplers import GAMMA_RANGE, TCDInputError, check_gamma, range_text
from . import cache as first_step_cache
from .host import output_latent, schedule_sigmas
from .replacements import schema_aliases
from .sampling import CATEGORY, TCDKSampler, run_sampler

MAX_GAMMAS = 64
GAMMAS_HELP = ("a comma-separated list such as '0, 0.2, 0.4, 0.6, 0.8, 1', or 'start:stop:count' such as '0:1:6' "
               f"(count evenly spaced values, both ends included); each gamma in {range_text(*GAMMA_RANGE)}, 1 to "
               f"{MAX_GAMMAS} values")


def _gamma(text: str, what: str) -> float:
    try:
        g = float(text)
    except ValueError:
        raise TCDInputError(f"gammas: {what} {text!r} is not a number; write {GAMMAS_HELP}") from None
    msg = check_gamma(g, label=f"gammas: {what} {text!r}")  # the one gamma rule, naming the text the user typed
    if msg:
        raise TCDInputError(msg)
    return g


def parse_gammas(text) -> list[float]:
    """The gammas of a sweep from 'a, b, c' or 'start:stop:count'; TCDInputError naming the bad value otherwise."""
    if not isinstance(text, str):
        raise TCDInputError(f"gammas={text!r} must be text: {GAMMAS_HELP}")
    s = text.strip()
    if not s:
        raise TCDInputError(f"gammas is empty: write {GAMMAS_HELP}")
    if ":" in s:
        parts = [p.strip() for p in s.split(":")]
        if len(parts) != 3:
            raise TCDInputError(f"gammas={text!r}: a range needs exactly three parts, start:stop:count; "
                                f"write {GAMMAS_HELP}")
        start, stop = _gamma(parts[0], "start"), _gamma(parts[1], "stop")
        try:
            count = int(parts[2])
        except ValueError:
            raise TCDInputError(f"gammas: count {parts[2]!r} is not a whole number; allowed range "
                                f"1..{MAX_GAMMAS}") from None
        if not 1 <= count <= MAX_GAMMAS:
            raise TCDInputError(f"gammas: count {count} is outside the allowed range 1..{MAX_GAMMAS}")
        if count == 1:
            return [start]
        # Rounded to 6 decimals so that '0:1:6' gives 0.6, not 0.6000000000000001 (the widget's own precision).
        return [round(start + (stop - start) * i / (count - 1), 6) for i in range(count)]
    items = [p for p in re.split(r"[,;\s]+", s) if p]
    if len(items) > MAX_GAMMAS:
        raise TCDInputError(f"gammas: {len(items)} values is more than the allowed 1..{MAX_GAMMAS}")
    return [_gamma(p, "value") for p in items]


def gamma_label(gamma: float, index: int | None = None) -> str:
    return f"gamma {gamma:g}" + ("" if index is None else f" #{index + 1}")


def repeat_latent(latent: dict, samples: torch.Tensor, n: int) -> dict:
    """The output LATENT of a sweep: new samples (n copies of the batch, gamma-major), mask and indices repeated."""
    out = output_latent(latent, samples)
    batch = latent["samples"].shape[0]
    mask = latent.get("noise_mask")
    if mask is not None and mask.ndim >= 3 and mask.shape[0] == batch > 1:  # a batch-1 mask applies to any batch
        out["noise_mask"] = torch.cat([mask] * n)
    if latent.get("batch_index") is not None:
        out["batch_index"] = list(latent["batch_index"]) * n
    return out


class TCDGammaSweep(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        gammas = io.String.Input("gammas", default="0, 0.2, 0.4, 0.6, 0.8, 1", multiline=False,
                                 tooltip="The gammas to compare: " + GAMMAS_HELP + ". gamma is how much fresh noise "
                                         "each step re-injects: 0 sharpest, 1 softest.")
        return io.Schema(
            node_id="TCDGammaSweep", display_name="TCD Gamma Sweep", category=CATEGORY,
            description="TCD Gamma Sweep: samples the same latent, seed and noise once per gamma, so the results "
                        "differ by gamma alone. The first model call does not depend on gamma and is made once for "
                        "the whole sweep: N gammas at S steps cost 1 + N x (S - 1) model calls instead of N x S. Each "
                        "result is identical to TCD Sampler with that gamma. Feed the decoded images and the labels "
                        "to Labelled Image Grid to compare them.",
            # TCD Sampler's inputs, in its order, with gammas in gamma's place.
            inputs=[gammas if i.id == "gamma" else i for i in TCDKSampler.define_schema().inputs],
            outputs=[io.Latent.Output(tooltip="One denoised latent per gamma per input latent, ordered gamma-major "
                                              "(all images of the first gamma, then the second, ...)."),
                     io.String.Output(display_name="labels",
                                      tooltip="One label per result ('gamma 0.2', with '#n' per input image when the "
                                              "batch has more than one), one per line, in the same order: connect to "
                                              "Labelled Image Grid.")],
            **schema_aliases("TCDGammaSweep"))

    @classmethod
    def validate_inputs(cls, gammas=None, steps=None, cfg=None, scheduler=None, denoise=None):
        # Naming an input here turns off the host's own checks for it; TCD Sampler's validation does them.
        if gammas is not None:
            try:
                parse_gammas(gammas)
            except TCDInputError as e:
                return str(e)
        return TCDKSampler.validate_inputs(steps=steps, cfg=cfg, scheduler=scheduler, denoise=denoise)

    @classmethod
    def execute(cls, model, seed, steps, cfg, gammas, scheduler, positive, negative, latent_image,
                denoise=1.0) -> io.NodeOutput:
        values = parse_gammas(gammas)
        sigmas = schedule_sigmas(model, scheduler, steps, denoise)
        # The first evaluation: from the cross-run cache when an earlier run had the same inputs, else from the
        # first gamma's run, then shared by every other gamma (even with the cache switched off).
        first = first_step_cache.first_step(model, seed, cfg, sigmas, positive, negative, latent_image)
        results = []
        for gamma in values:
            comfy.model_management.throw_exception_if_processing_interrupted()
            out = run_sampler(model, seed, cfg, gamma, first.sampler_options(), sigmas, positive, negative,
                              latent_image)
            results.append(out["samples"])
        batch = latent_image["samples"].shape[0]
        labels = [gamma_label(g, b if batch > 1 else None) for g in values for b in range(batch)]
        return io.NodeOutput(repeat_latent(latent_image, torch.cat(results), len(values)), "\n".join(labels))
