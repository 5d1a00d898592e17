"""Synthetic material-like textures for tests: stripes, checks and grain, in colour, as files."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def stripes(
    size: int, *, period: float, angle: float, colour: tuple[int, int, int], seed: int
) -> np.ndarray:
    """Soft parallel stripes (like brushed metal or planks), with a little noise."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    along = columns * np.cos(angle) + rows * np.sin(angle)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * along / period + phase)
    return _coloured(wave + rng.normal(0, 0.08, wave.shape), colour)


def checks(size: int, *, cell: int, colour: tuple[int, int, int], seed: int) -> np.ndarray:
    """A tiled grid (like mosaic), offset at random."""
    rng = np.random.default_rng(seed)
    dy, dx = rng.integers(0, cell, size=2)
    rows, columns = np.mgrid[0:size, 0:size]
    grid = (((rows + dy) // cell + (columns + dx) // cell) % 2).astype(np.float32)
    return _coloured(grid * 0.8 + 0.1 + rng.normal(0, 0.05, grid.shape), colour)


def grain(size: int, *, blur: int, colour: tuple[int, int, int], seed: int) -> np.ndarray:
    """Blotchy speckle (like terrazzo or granite)."""
    rng = np.random.default_rng(seed)
    noise = rng.random((size // blur + 1, size // blur + 1)).astype(np.float32)
    image = Image.fromarray((noise * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    return _coloured(np.asarray(image, dtype=np.float32) / 255, colour)


def _coloured(intensity: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    shade = np.clip(intensity, 0, 1)[..., None]
    base = np.asarray(colour, dtype=np.float32)
    return np.clip(base * (0.45 + 0.75 * shade), 0, 255).astype(np.uint8)


def jpeg(pixels: np.ndarray, *, quality: int = 90, exif: Image.Exif | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    if exif is not None:
        image.save(buffer, format="JPEG", quality=quality, exif=exif)
    else:
        image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def material_set(count: int, size: int = 192) -> dict[str, list[bytes]]:
    """Three 'materials' that a recogniser should tell apart, `count` photos of each."""
    return {
        "brushed_brass": [
            jpeg(stripes(size, period=7 + i % 3, angle=0.1 * i, colour=(200, 160, 70), seed=i))
            for i in range(count)
        ],
        "blue_mosaic": [
            jpeg(checks(size, cell=14 + i % 4, colour=(60, 90, 190), seed=i)) for i in range(count)
        ],
        "grey_terrazzo": [
            jpeg(grain(size, blur=5 + i % 3, colour=(150, 150, 145), seed=i)) for i in range(count)
        ],
    }
