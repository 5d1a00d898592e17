"""A photo made ready for a backbone: decoded near the size needed, optionally enhanced, and cut
into the views a material is recognised from, each step timed."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import cv2
import numpy as np

from kai.kit.images import DEFAULT_LIMITS, ImageLimits, InspectedImage, decode_upload

# The views of a photo that are embedded (and averaged), as fractions of its centred square.
# Measured (benchmarks/README.md): adding the central half seen closer, for grain at a second
# scale, did not help on either development set (UIUC 0.979 against 0.980 for the whole
# photo alone, KTH-TIPS 0.990 against 1.000) and doubled the cost; the central half alone was
# worse (0.946, 0.975). One view, the whole photo.
VIEW_FRACTIONS: tuple[float, ...] = (1.0,)


@dataclass(frozen=True)
class Enhancement:
    """Optional steps before embedding (off by default: measured, see benchmarks)."""

    white_balance: bool = False
    clahe: bool = False
    # Test-time augmentation: each view also mirrored, the backbone averaging both, so that a
    # photo and its mirror image embed alike; twice the embedding time. A model version is
    # trained and used with the same choice.
    mirrored: bool = False

    @property
    def tag(self) -> str:
        """The preparation in a few words (`plain`, or the steps taken, joined by `+`): part
        of what names an embedding in the feature store."""
        steps = [
            name
            for name, taken in (
                ("white-balance", self.white_balance),
                ("clahe", self.clahe),
                ("mirrored", self.mirrored),
            )
            if taken
        ]
        return "+".join(steps) or "plain"


@dataclass
class PreparedImage:
    """A photo's views as RGB arrays (side x side x 3, uint8) and what preparing it took."""

    views: list[np.ndarray]
    # The photo as decoded (after EXIF orientation), before any view was cut.
    width: int
    height: int
    # Milliseconds per step, in the order the steps ran.
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Add the block's wall time, in milliseconds, to `timings[step]`."""
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = (time.perf_counter() - started) * 1000
        timings[step] = round(timings.get(step, 0.0) + elapsed, 3)


def prepare_image(
    data: bytes,
    *,
    side: int,
    enhancement: Enhancement = Enhancement(),
    limits: ImageLimits = DEFAULT_LIMITS,
) -> PreparedImage:
    """Validate and decode `data` (JPEGs at the smallest DCT scale that still covers `side`),
    correct its colours if asked, and cut its views at `side` x `side` pixels."""
    prepared = prepare_views(data, sides=[side], enhancement=enhancement, limits=limits)
    return PreparedImage(
        views=prepared.views[side],
        width=prepared.width,
        height=prepared.height,
        timings=prepared.timings,
    )


@dataclass
class PreparedViews:
    """A photo's views at each side asked for (several backbones, one decode)."""

    views: dict[int, list[np.ndarray]]
    width: int
    height: int
    timings: dict[str, float] = field(default_factory=dict)


def prepare_views(
    data: bytes,
    *,
    sides: Sequence[int],
    enhancement: Enhancement = Enhancement(),
    limits: ImageLimits = DEFAULT_LIMITS,
) -> PreparedViews:
    """`prepare_image` for several view sizes at once: decoded once, at the largest."""
    return prepare_upload(data, sides=sides, enhancement=enhancement, limits=limits)[1]


def prepare_upload(
    data: bytes,
    *,
    sides: Sequence[int],
    enhancement: Enhancement = Enhancement(),
    limits: ImageLimits = DEFAULT_LIMITS,
) -> tuple[InspectedImage, PreparedViews]:
    """An upload validated (content, size, a whole decode) and made into views, decoded once."""
    if not sides:
        raise ValueError("at least one side is needed")
    timings: dict[str, float] = {}
    with timed(timings, "decode"):
        # Decoded no larger than the smallest view needs, so that no view is upscaled: a
        # 12-megapixel JPEG decodes at an eighth of its size.
        needed = max(sides) / min(VIEW_FRACTIONS)
        inspected, image = decode_upload(data, limits, max_side=round(needed))
    width, height = image.size
    pixels = np.asarray(image)
    if enhancement.white_balance:
        with timed(timings, "white_balance"):
            pixels = grey_world(pixels)
    if enhancement.clahe:
        with timed(timings, "clahe"):
            pixels = equalize_lightness(pixels)
    with timed(timings, "views"):
        views = {side: texture_views(pixels, side) for side in sorted(set(sides))}
        if enhancement.mirrored:
            views = {
                side: [*cut, *(view[:, ::-1].copy() for view in cut)] for side, cut in views.items()
            }
    prepared = PreparedViews(views=views, width=width, height=height, timings=timings)
    return inspected, prepared


def texture_views(
    pixels: np.ndarray, side: int, fractions: Sequence[float] = VIEW_FRACTIONS
) -> list[np.ndarray]:
    """Centred squares of the photo (each `fraction` of its short side), resized to `side`."""
    height, width = pixels.shape[:2]
    short = min(height, width)
    views = []
    for fraction in fractions:
        crop = max(1, round(short * fraction))
        top, left = (height - crop) // 2, (width - crop) // 2
        square = pixels[top : top + crop, left : left + crop]
        views.append(_resized(square, side))
    return views


def _resized(square: np.ndarray, side: int) -> np.ndarray:
    if square.shape[0] == side:
        return np.ascontiguousarray(square)
    # Area averaging when shrinking (no aliasing of fine texture), bilinear when enlarging.
    method = cv2.INTER_AREA if square.shape[0] > side else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(square), (side, side), interpolation=method)


def grey_world(pixels: np.ndarray) -> np.ndarray:
    """Grey-world white balance: scale each channel so that the photo's mean is neutral.

    Gains are bounded so that a photo of a strongly coloured material (green marble, red
    brick) is corrected for the light, not turned grey.
    """
    means = pixels.reshape(-1, 3).astype(np.float64).mean(axis=0)
    if np.any(means < 1.0):
        return pixels
    gains = np.clip(means.mean() / means, 0.67, 1.5)
    balanced = pixels.astype(np.float32) * gains.astype(np.float32)
    corrected: np.ndarray = np.clip(balanced + 0.5, 0, 255).astype(np.uint8)
    return corrected


def equalize_lightness(pixels: np.ndarray, *, clip_limit: float = 2.0) -> np.ndarray:
    """CLAHE on the L channel of Lab: local contrast evened out, colours kept."""
    lab = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2LAB)
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(8, 8))
    lab[:, :, 0] = clahe.apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
