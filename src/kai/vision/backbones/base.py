"""What every backbone is: something that turns prepared views into one vector per photo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from kai.kit.errors import ServiceUnavailable


class BackboneUnavailable(ServiceUnavailable):
    type, title = "backbone-unavailable", "The image model is not available"


class Backbone(Protocol):
    """A way of describing a photo as a vector.

    `embed` takes each photo's views (RGB uint8 arrays of `input_side` x `input_side`) and
    returns one L2-normalised float32 row per photo. It blocks: callers run it in a thread.
    """

    @property
    def name(self) -> str: ...

    @property
    def input_side(self) -> int: ...

    @property
    def dimension(self) -> int: ...

    # A fingerprint of the weights and the preprocessing: an embedding is only comparable with
    # embeddings of the same fingerprint.
    @property
    def fingerprint(self) -> str: ...

    # Whether a classifier head should standardise each feature first (true for descriptors
    # whose parts have unlike scales; false for a network's normalised features).
    @property
    def standardize(self) -> bool: ...

    def embed(self, photos: Sequence[Sequence[np.ndarray]]) -> np.ndarray: ...


def l2_normalized(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    normalized: np.ndarray = (rows / np.maximum(norms, 1e-12)).astype(np.float32)
    return normalized
