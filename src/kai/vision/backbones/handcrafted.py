"""A texture and colour descriptor that needs no model file: multi-scale local binary patterns,
Gabor energies and colour statistics in Lab.

For deployments too small for a network, and as a second opinion in an ensemble: it sees
grain, pattern and colour directly, where an ImageNet network sees what objects look like.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

import cv2
import numpy as np
from scipy import fft

from kai.vision.backbones.base import l2_normalized
from kai.vision.preprocessing import VIEW_FRACTIONS

NAME = "handcrafted"
INPUT_SIDE = 256
# Texture is read at several scales of an image pyramid (the view, then halved again and
# again): local binary patterns (8 neighbours at radius 1) on the first three levels, Gabor
# filters of one wavelength on the next three. Coarse patterns are thus seen by small kernels
# on small images, about ten times cheaper than large kernels on the view; the Gabor bank
# starts at half size, where fine grain is already counted by the patterns.
LBP_LEVELS = (0, 1, 2)
GABOR_LEVELS = (1, 2, 3)
LBP_POINTS = 8
GABOR_WAVELENGTH = 4.0
GABOR_ORIENTATIONS = 6
# Colour: a histogram of lightness and a joint histogram of the two colour axes.
LIGHTNESS_BINS = 8
CHROMA_BINS = 6
VERSION = "1"


def _circle() -> list[tuple[float, float]]:
    angles = 2 * np.pi * np.arange(LBP_POINTS) / LBP_POINTS
    return [(-float(np.sin(angle)), float(np.cos(angle))) for angle in angles]


def _riu2_table() -> np.ndarray:
    """Each 8-bit pattern's rotation-invariant uniform code: the number of set bits when the
    circle has at most two transitions, else one shared code for every irregular pattern."""
    table = np.empty(256, dtype=np.uint8)
    for pattern in range(256):
        bits = [(pattern >> bit) & 1 for bit in range(LBP_POINTS)]
        transitions = sum(bits[i] != bits[(i + 1) % LBP_POINTS] for i in range(LBP_POINTS))
        table[pattern] = sum(bits) if transitions <= 2 else LBP_POINTS + 1
    return table


_RIU2 = _riu2_table()
_LBP_BINS = LBP_POINTS + 2


def _gabor_bank() -> list[tuple[np.ndarray, np.ndarray]]:
    bank = []
    sigma = 0.56 * GABOR_WAVELENGTH
    size = int(2 * round(2.5 * sigma) + 1)
    for index in range(GABOR_ORIENTATIONS):
        theta = np.pi * index / GABOR_ORIENTATIONS
        real = cv2.getGaborKernel((size, size), sigma, theta, GABOR_WAVELENGTH, 1.0, 0.0)
        imaginary = cv2.getGaborKernel((size, size), sigma, theta, GABOR_WAVELENGTH, 1.0, np.pi / 2)
        real -= real.mean()  # no response to flat areas
        bank.append((real.astype(np.float32), imaginary.astype(np.float32)))
    return bank


_GABOR = _gabor_bank()


def _pyramid(grey: np.ndarray) -> list[np.ndarray]:
    levels: list[np.ndarray] = [grey.astype(np.float32)]
    for _ in range(max(*LBP_LEVELS, *GABOR_LEVELS)):
        levels.append(np.asarray(cv2.pyrDown(levels[-1]), dtype=np.float32))
    return levels


def local_binary_patterns(level: np.ndarray) -> np.ndarray:
    """The normalised riu2 histogram of one pyramid level."""
    height, width = level.shape
    padded = cv2.copyMakeBorder(level, 1, 1, 1, 1, cv2.BORDER_REFLECT)
    codes = np.zeros(level.shape, dtype=np.uint8)
    for bit, (dy, dx) in enumerate(_circle()):
        # The neighbour at a fractional offset, bilinearly interpolated.
        shift = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
        moved = cv2.warpAffine(padded, shift, (width + 2, height + 2), flags=cv2.INTER_LINEAR)
        codes |= (moved[1 : height + 1, 1 : width + 1] >= level).astype(np.uint8) << bit
    counts = np.bincount(_RIU2[codes].ravel(), minlength=_LBP_BINS).astype(np.float32)
    histogram: np.ndarray = counts / counts.sum()
    return histogram


_GABOR_RADIUS = (_GABOR[0][0].shape[0] - 1) // 2
_gabor_spectra: dict[tuple[int, int], np.ndarray] = {}
_spectra_lock = threading.Lock()


def _gabor_bank_spectra(shape: tuple[int, int]) -> np.ndarray:
    """The bank's complex kernels (real + i imaginary) in the frequency domain, for images of
    `shape`: one inverse transform per orientation gives both responses at once."""
    found = _gabor_spectra.get(shape)
    if found is None:
        radius = _GABOR_RADIUS
        kernels = np.zeros((len(_GABOR), *shape), dtype=np.complex64)
        for index, (real, imaginary) in enumerate(_GABOR):
            kernels[index, : 2 * radius + 1, : 2 * radius + 1] = real + 1j * imaginary
        # Centred on the origin, and conjugated: correlation, as filter2D computes it.
        kernels = np.roll(kernels, (-radius, -radius), axis=(1, 2))
        found = np.conj(fft.fft2(kernels, axes=(1, 2), workers=1)).astype(np.complex64)
        with _spectra_lock:
            _gabor_spectra[shape] = found
    return found


def gabor_energies(level: np.ndarray) -> np.ndarray:
    """Mean and spread of each orientation's local energy on one pyramid level.

    Filtered in the frequency domain, the image padded by reflection as filter2D pads it: the
    same energies as spatial filtering (to float precision) at about half the time."""
    image = (level - level.mean()) / (level.std() + 1.0)
    radius = _GABOR_RADIUS
    padded = cv2.copyMakeBorder(image, radius, radius, radius, radius, cv2.BORDER_REFLECT_101)
    spectrum = fft.fft2(padded, workers=1)
    responses = fft.ifft2(
        spectrum[None] * _gabor_bank_spectra(padded.shape), axes=(1, 2), workers=1
    )
    magnitude = np.abs(responses[:, radius:-radius, radius:-radius])
    energies = np.stack([magnitude.mean(axis=(1, 2)), magnitude.std(axis=(1, 2))], axis=1)
    return energies.ravel().astype(np.float32)


def colour_statistics(rgb: np.ndarray) -> np.ndarray:
    """Lab means and spreads, a lightness histogram and a joint a*b* histogram."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    # OpenCV's 8-bit Lab: L scaled to 0..255, a and b offset by 128.
    means, spreads = cv2.meanStdDev(lab)
    moments = np.concatenate([means.ravel(), spreads.ravel()]) / 128.0
    lightness = cv2.calcHist([lab], [0], None, [LIGHTNESS_BINS], [0, 256]).ravel()
    # Colours of materials sit near grey: the a*b* histogram spans the middle half of the axes.
    chroma = cv2.calcHist(
        [lab], [1, 2], None, [CHROMA_BINS, CHROMA_BINS], [64, 192, 64, 192]
    ).ravel()
    pixels = float(rgb.shape[0] * rgb.shape[1])
    return np.concatenate([moments, lightness / pixels, chroma / pixels]).astype(np.float32)


def describe(rgb: np.ndarray) -> np.ndarray:
    """The descriptor of one view (RGB uint8); histograms square-rooted (Hellinger)."""
    levels = _pyramid(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    patterns = [np.sqrt(local_binary_patterns(levels[index])) for index in LBP_LEVELS]
    energies = np.concatenate([gabor_energies(levels[index]) for index in GABOR_LEVELS])
    # Relative energies: the same texture under brighter light or more contrast reads alike.
    energies /= np.linalg.norm(energies) + 1e-6
    return np.concatenate([*patterns, energies, colour_statistics(rgb)])


class HandcraftedBackbone:
    """The descriptor behind the backbone interface; each photo: the mean over its views."""

    name = NAME
    input_side = INPUT_SIDE
    standardize = True

    def __init__(self) -> None:
        described = f"{VERSION}:{LBP_LEVELS}:{GABOR_LEVELS}:{GABOR_WAVELENGTH}:{GABOR_ORIENTATIONS}"
        described += f":{LIGHTNESS_BINS}:{CHROMA_BINS}:{VIEW_FRACTIONS}"
        self.fingerprint = f"{NAME}:{hashlib.sha256(described.encode()).hexdigest()[:12]}"
        self.dimension = int(describe(np.zeros((32, 32, 3), dtype=np.uint8)).shape[0])

    def embed(self, photos: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        if not photos:
            return np.zeros((0, self.dimension), dtype=np.float32)
        rows = [np.mean([describe(view) for view in photo], axis=0) for photo in photos]
        return l2_normalized(np.stack(rows))
