"""How alike a photo is to a version's training photos, so that what is unlike anything it was
trained on (noise, a checkerboard, a screenshot, a photo of something else) is called unknown
rather than the nearest label.

Each backbone of a version measures it: the cosine similarity to the nearest label's centre,
and for a descriptor (parts of unlike scales, standardised for its head) also the Mahalanobis
distance to the nearest label's mean. Each check's threshold comes from where the training
photos, held out, fall: a new photo like them is unlike once or twice in a hundred. Stored as
arrays with the version's heads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from sklearn.covariance import LedoitWolf

# A photo is unlike the training set when, by any backbone, its similarity to the nearest
# label's centre is under the lowest 1% of the training photos' similarity to their own
# label's (each left out of that centre). Measured in benchmarks/ood.py: see
# benchmarks/README.md (before, by the first backbone only, and 0.05 less than that).
COSINE_PERCENTILE = 1.0
# ...and never above these: a label whose photos are nearly alike (one product shot one way)
# would otherwise call every new photo of it a stranger. For a network's unit-length features
# (EfficientNet-Lite0): trained on one development set, photos of another set's textures come
# to 0.47-0.50 at the median and 0.77-0.78 at the 99th percentile, and the thresholds found
# were 0.35-0.58. For a descriptor of histograms (the handcrafted one, read as it is, all its
# parts positive): photos of the other sets come to 0.94-0.96 at the median, thresholds were
# 0.88-0.96, and the generated non-materials other than noise 0.55-0.83 at the median.
NETWORK_CEILING = 0.7
DESCRIPTOR_CEILING = 0.88
# A descriptor's Mahalanobis distance: half again as far as the farthest 0.5% of the training
# photos (each measured by a check fitted without its fold). It sees what cosine similarity
# averages away: pixel noise is grain to the network and to the descriptor as a whole, but its
# finest local patterns are irregular as no photo's are. The distances' tail is long, and a
# few unusual photos in a fold decide its percentile: at the percentile itself, 3.3% of new
# photos of the indoor floors were flagged (1.1% without this check); half again as far, 1.7%,
# while pixel noise on the close-up sets is still caught (88% and 87%, against 52% and 69%
# without). Only with this many photos of every label: the labels' spread is estimated from
# them, and from a few nearly alike ones it would call every new photo a stranger.
MAHALANOBIS_PERCENTILE = 99.5
MAHALANOBIS_MARGIN = 1.5
MAHALANOBIS_MIN_PHOTOS = 10


@dataclass
class NearestCentre:
    """Cosine similarity to the nearest label's centre; under `threshold`, unlike."""

    kind: ClassVar[str] = "cosine"
    backbone: str
    # Unit-length centre of each label's photos (rows in label order).
    centres: np.ndarray
    threshold: float

    def similarity(self, rows: np.ndarray) -> np.ndarray:
        found: np.ndarray = (_unit(rows) @ self.centres.T).max(axis=1)
        return found

    def unlike(self, rows: np.ndarray) -> np.ndarray:
        found: np.ndarray = self.similarity(rows) < self.threshold
        return found

    def arrays(self) -> dict[str, np.ndarray]:
        return {"centres": self.centres}


@dataclass
class NearestMean:
    """Mahalanobis distance to the nearest label's mean, under the labels' shared covariance
    (shrunk towards a multiple of the identity: Ledoit-Wolf); beyond `threshold`, unlike."""

    kind: ClassVar[str] = "mahalanobis"
    backbone: str
    means: np.ndarray
    precision: np.ndarray
    threshold: float

    @classmethod
    def fit(cls, backbone: str, rows: np.ndarray, targets: np.ndarray) -> NearestMean:
        names, at = np.unique(targets, return_inverse=True)
        values = rows.astype(np.float64)
        means = np.stack([values[at == index].mean(axis=0) for index in range(len(names))])
        precision = LedoitWolf().fit(values - means[at]).precision_
        return cls(backbone, means, np.asarray(precision, dtype=np.float64), threshold=np.inf)

    def distance(self, rows: np.ndarray) -> np.ndarray:
        values = rows.astype(np.float64)
        # |x - m|^2 under P, for every label's m at once: xPx - 2 xPm + mPm.
        projected = values @ self.precision
        own = np.einsum("ij,ij->i", projected, values)
        means = np.einsum("ij,jk,ik->i", self.means, self.precision, self.means)
        squared = own[:, None] - 2 * projected @ self.means.T + means[None, :]
        found: np.ndarray = np.sqrt(np.maximum(squared.min(axis=1), 0.0))
        return found

    def unlike(self, rows: np.ndarray) -> np.ndarray:
        found: np.ndarray = self.distance(rows) > self.threshold
        return found

    def arrays(self) -> dict[str, np.ndarray]:
        return {"means": self.means, "precision": self.precision}


Likeness = NearestCentre | NearestMean


def fit_likeness(
    embeddings: Mapping[str, np.ndarray],
    targets: np.ndarray,
    *,
    standardize: Mapping[str, bool],
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[list[Likeness], np.ndarray]:
    """The checks of every backbone, and which training photos, each held out, they call
    unlike (together). `folds`: the validation's (train, held-out) splits."""
    checks: list[Likeness] = []
    unlike = np.zeros(len(targets), dtype=bool)
    labels, counts = np.unique(targets, return_counts=True)
    for backbone, rows in embeddings.items():
        descriptor = standardize[backbone]
        centres, own = _centres(rows, targets, labels)
        ceiling = DESCRIPTOR_CEILING if descriptor else NETWORK_CEILING
        threshold = min(ceiling, float(np.percentile(own, COSINE_PERCENTILE)))
        checks.append(NearestCentre(backbone, centres, max(-1.0, threshold)))
        unlike |= own < checks[-1].threshold
        if descriptor and counts.min() >= MAHALANOBIS_MIN_PHOTOS:
            held_out = np.empty(len(targets))
            for train, test in folds:
                fitted = NearestMean.fit(backbone, rows[train], targets[train])
                held_out[test] = fitted.distance(rows[test])
            check = NearestMean.fit(backbone, rows, targets)
            percentile = float(np.percentile(held_out, MAHALANOBIS_PERCENTILE))
            check.threshold = MAHALANOBIS_MARGIN * percentile
            checks.append(check)
            unlike |= held_out > check.threshold
    return checks, unlike


def _centres(
    rows: np.ndarray, targets: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each label's centre, and each photo's similarity to its label's centre without it.

    Left out because with six photos a label, a photo is a sixth of its own centre, and would
    look closer than any new photo of the label can: without it, it comes as near as a new
    photo of a known label does.
    """
    unit = _unit(rows)
    at = np.searchsorted(labels, targets)
    sums = np.stack([unit[at == index].sum(axis=0) for index in range(len(labels))])
    sizes = np.bincount(at, minlength=len(labels))
    others = sums[at] - np.where((sizes[at] > 1)[:, None], unit, 0.0)
    own = np.einsum("ij,ij->i", unit, others) / np.maximum(np.linalg.norm(others, axis=1), 1e-12)
    return _unit(sums), own


def _unit(rows: np.ndarray) -> np.ndarray:
    values = rows.astype(np.float64)
    found: np.ndarray = values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)
    return found


def described(checks: Iterable[Likeness]) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Each check as a description (JSON) and its arrays, for storage."""
    for check in checks:
        yield (
            {"kind": check.kind, "backbone": check.backbone, "threshold": check.threshold},
            check.arrays(),
        )


def from_described(description: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Likeness:
    """A check read back from its description and arrays."""
    backbone, threshold = str(description["backbone"]), float(description["threshold"])
    if description.get("kind", NearestCentre.kind) == NearestMean.kind:
        return NearestMean(backbone, arrays["means"], arrays["precision"], threshold)
    return NearestCentre(backbone, arrays["centres"], threshold)
