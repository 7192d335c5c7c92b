"""Labelled Image Grid: an IMAGE batch laid out in a grid, each tile's label drawn in a strip under it."""
from __future__ import annotations

import math

import numpy as np
import torch
from comfy_api.latest import io
from PIL import Image, ImageDraw, ImageFont

from .sampling import CATEGORY

MAX_COLUMNS = 256
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)


def font_size_for(tile_w: int, tile_h: int) -> int:
    """Label font size in pixels: about 1/18 of the tile's width (10 px at least, 96 at most)."""
    return int(min(96, max(10, round(min(tile_w, 2 * tile_h) / 18))))


def load_font(size: int):
    """Pillow's built-in font at this size (scalable in Pillow >= 10.1); the fixed bitmap font on older Pillow."""
    try:
        return ImageFont.load_default(size=size), True
    except TypeError:  # Pillow < 10.1: no size argument, a ~11 px bitmap font (scaled up when drawn)
        return ImageFont.load_default(), False


def _text_width(draw, text, font) -> int:
    if not text:
        return 0
    box = draw.textbbox((0, 0), text, font=font)
    return box[2] - box[0]


def wrap_label(draw, text: str, font, width: int) -> list[str]:
    """Break a label into lines no wider than ``width`` (at spaces when possible, else inside a word)."""
    lines = []
    for para in text.splitlines() or [""]:
        line = ""
        for word in para.split(" "):
            trial = word if not line else f"{line} {word}"
            if _text_width(draw, trial, font) <= width or not line:
                line = trial
            else:
                lines.append(line)
                line = word
            while _text_width(draw, line, font) > width and len(line) > 1:  # a single word wider than the tile
                cut = len(line) - 1
                while cut > 1 and _text_width(draw, line[:cut], font) > width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return lines


def _render_label_strip(text: str, tile_w: int, size: int, n_lines: int) -> Image.Image:
    """One label strip of ``n_lines`` lines, centred, black on white, as wide as the tile."""
    font, scalable = load_font(size)
    scale = 1 if scalable else max(1, round(size / 11))
    w = max(1, tile_w // scale)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = wrap_label(probe, text, font, max(1, w - 4))
    ascent, descent = font.getmetrics()
    line_h = ascent + descent
    pad = max(2, line_h // 4)
    strip = Image.new("RGB", (w, pad * 2 + line_h * n_lines), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    for i, line in enumerate(lines[:n_lines]):
        draw.text(((w - _text_width(draw, line, font)) // 2, pad + i * line_h), line, font=font, fill=INK)
    if scale > 1:
        strip = strip.resize((tile_w, strip.height * scale), Image.NEAREST)
    elif strip.width != tile_w:
        strip = strip.resize((tile_w, strip.height), Image.NEAREST)
    return strip


def label_lines_needed(labels: list[str], tile_w: int, size: int) -> int:
    font, scalable = load_font(size)
    scale = 1 if scalable else max(1, round(size / 11))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    return max([len(wrap_label(probe, t, font, max(1, tile_w // scale - 4))) for t in labels if t] or [0])


def split_labels(labels: str) -> list[str]:
    """One label per line (blank lines give unlabelled tiles); surrounding whitespace is dropped."""
    return [s.strip() for s in (labels or "").splitlines()]


def make_grid(images: torch.Tensor, labels: list[str], columns: int = 0) -> torch.Tensor:
    """Tiles in row-major order, ``columns`` per row (0: ceil(sqrt(n))), each with its label strip under it."""
    if images.ndim != 4:
        raise ValueError(f"images must be an IMAGE batch [batch, height, width, channels], got shape "
                         f"{tuple(images.shape)}")
    n, h, w, c = images.shape
    if n == 0:
        raise ValueError("images is an empty batch: nothing to lay out")
    if not isinstance(columns, int) or not 0 <= columns <= MAX_COLUMNS:
        raise ValueError(f"columns={columns!r} is outside the allowed range 0..{MAX_COLUMNS} (0 = automatic)")
    cols = min(n, columns) if columns else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    labels = list(labels) + [""] * max(0, n - len(labels))
    size = font_size_for(w, h)
    n_lines = label_lines_needed(labels[:n], w, size)
    rgb = images[..., :3] if c >= 3 else images[..., :1].expand(-1, -1, -1, 3)
    tiles = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    strip_h = _render_label_strip("", w, size, n_lines).height if n_lines else 0
    cell_h = h + strip_h
    canvas = np.full((rows * cell_h, cols * w, 3), BACKGROUND, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        y, x = r * cell_h, col * w
        canvas[y:y + h, x:x + w] = tiles[i]
        if n_lines:
            canvas[y + h:y + cell_h, x:x + w] = np.asarray(_render_label_strip(labels[i], w, size, n_lines))
    return torch.from_numpy(canvas.astype(np.float32) / 255.0).unsqueeze(0)


class TCDImageGrid(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TCDImageGrid", display_name="Labelled Image Grid", category=CATEGORY,
            description="Labelled Image Grid: lays an image batch out in a grid and writes each image's label under "
                        "it (one label per line, e.g. the labels of TCD Gamma Sweep). The text is scaled to the tile, "
                        "so it stays legible from 64-pixel to 1024-pixel images. Works for any batch, e.g. seed x "
                        "gamma.",
            inputs=[
                io.Image.Input("images", tooltip="The images to lay out, in order (e.g. VAE Decode of a gamma "
                                                 "sweep)."),
                io.String.Input("labels", default="", multiline=True,
                                tooltip="One label per image, one per line, in the batch's order. Missing lines leave "
                                        "tiles unlabelled; extra lines are ignored."),
                io.Int.Input("columns", default=0, min=0, max=MAX_COLUMNS,
                             tooltip=f"Tiles per row; 0 = automatic (about square). Allowed range 0..{MAX_COLUMNS}."),
            ],
            outputs=[io.Image.Output(tooltip="One image: the tiles in rows, left to right, each with its label "
                                             "underneath.")])

    @classmethod
    def execute(cls, images, labels, columns) -> io.NodeOutput:
        return io.NodeOutput(make_grid(images, split_labels(labels), columns))
