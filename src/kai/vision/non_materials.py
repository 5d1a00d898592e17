"""Images that are plainly not photos of a material: noise, checkerboards, hard-edged stripes,
flat colours, gradients and rendered text.

What a recognizer must call unknown whatever it was trained on. A training measures its new
version on a fixed set of them (`kai.ml.training`); the tests and `benchmarks/ood.py` make
theirs here too, so all three speak of the same images.
"""

from __future__ import annotations

import colorsys
import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Pixels = np.ndarray
Maker = Callable[[np.random.Generator, int], Pixels]

# Lines of a document, a receipt, a slide, a sign.
WORDS = (
    "INVOICE",
    "Quarterly report 2026",
    "lorem ipsum dolor sit amet",
    "TOTAL 39.90",
    "Meeting at 10:30",
    "SALE -50%",
    "Chapter 3",
    "Wi-Fi password",
    "Do not disturb",
    "1 2 3 4 5 6 7 8 9 0",
)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    red, green, blue = (int(value) for value in rng.integers(0, 256, 3))
    return red, green, blue


def noise(rng: np.random.Generator, side: int) -> Pixels:
    """Colour noise, grey Gaussian noise, salt and pepper, or blocky colour noise."""
    kind = int(rng.integers(0, 4))
    if kind == 0:
        return rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    if kind == 1:
        grey = np.clip(rng.normal(128, 60, (side, side)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if kind == 2:
        pixels = np.full((side, side, 3), 128, np.uint8)
        draw = rng.random((side, side))
        pixels[draw < 0.1] = 0
        pixels[draw > 0.9] = 255
        return pixels
    block = int(rng.integers(4, 24))
    small = rng.integers(0, 256, (side // block + 1, side // block + 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((side, side), Image.Resampling.NEAREST))


def checkerboard(rng: np.random.Generator, side: int) -> Pixels:
    """Squares of two colours (black and white half the time), pixel-sharp."""
    cell = int(rng.integers(8, 80))
    first, second = (
        ((0, 0, 0), (255, 255, 255)) if rng.random() < 0.5 else (_colour(rng), _colour(rng))
    )
    rows, columns = np.mgrid[0:side, 0:side]
    odd = ((rows // cell + columns // cell) % 2).astype(bool)
    pixels = np.empty((side, side, 3), np.uint8)
    pixels[:] = first
    pixels[odd] = second
    return pixels


def stripes(rng: np.random.Generator, side: int) -> Pixels:
    """Hard-edged bars of two to five colours, upright, across or diagonal."""
    width = int(rng.integers(6, 60))
    colours = np.asarray([_colour(rng) for _ in range(int(rng.integers(2, 6)))], np.uint8)
    rows, columns = np.mgrid[0:side, 0:side]
    along = (columns, rows, rows + columns, rows - columns + side)[int(rng.integers(0, 4))]
    found: Pixels = colours[(along // width) % len(colours)]
    return found


def flat(rng: np.random.Generator, side: int) -> Pixels:
    """One colour: any, or black, white or grey."""
    plain = ((0, 0, 0), (255, 255, 255), (128, 128, 128))
    colour = _colour(rng) if rng.random() < 0.7 else plain[int(rng.integers(0, 3))]
    return np.full((side, side, 3), colour, np.uint8)


def gradient(rng: np.random.Generator, side: int) -> Pixels:
    """A linear or radial blend of two colours, or a rainbow of hues."""
    kind = int(rng.integers(0, 3))
    if kind == 2:
        hues = np.asarray([colorsys.hsv_to_rgb(hue, 1.0, 1.0) for hue in np.linspace(0, 1, side)])
        row = (hues * 255).astype(np.uint8)
        return np.ascontiguousarray(np.broadcast_to(row[None], (side, side, 3)))
    start = np.asarray(_colour(rng), np.float32)
    end = np.asarray(_colour(rng), np.float32)
    rows, columns = np.mgrid[0:side, 0:side].astype(np.float32) / side
    if kind == 0:
        angle = rng.uniform(0, 2 * np.pi)
        along = columns * np.cos(angle) + rows * np.sin(angle)
        share = (along - along.min()) / (np.ptp(along) + 1e-6)
    else:
        share = np.clip(np.hypot(rows - 0.5, columns - 0.5) / 0.71, 0, 1)
    blend: Pixels = (start * (1 - share[..., None]) + end * share[..., None]).astype(np.uint8)
    return blend


def text(rng: np.random.Generator, side: int) -> Pixels:
    """Lines of words on a plain background: a document, a slide, a screenshot."""
    background = (255, 255, 255) if rng.random() < 0.6 else _colour(rng)
    ink = (0, 0, 0) if background == (255, 255, 255) else _colour(rng)
    image = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(image)
    size = int(rng.integers(max(8, side // 18), max(9, side // 5)))
    font = ImageFont.load_default(size=size)
    top = int(rng.integers(0, size))
    while top < side:
        line = WORDS[int(rng.integers(0, len(WORDS)))]
        draw.text((int(rng.integers(0, max(1, side // 12))), top), line, fill=ink, font=font)
        top += int(size * 1.5)
    return np.asarray(image)


KINDS: dict[str, Maker] = {
    "noise": noise,
    "checkerboard": checkerboard,
    "stripes": stripes,
    "flat": flat,
    "gradient": gradient,
    "text": text,
}


def non_materials(per_kind: int, *, seed: int = 0, side: int = 256) -> list[tuple[str, Pixels]]:
    """`per_kind` images of every kind (RGB uint8, `side` pixels square), each with its kind;
    the same ones for the same arguments."""
    rng = np.random.default_rng(seed)
    return [(kind, make(rng, side)) for kind, make in KINDS.items() for _ in range(per_kind)]


def png(pixels: Pixels) -> bytes:
    """The image as a PNG file (lossless: the noise stays noise)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
