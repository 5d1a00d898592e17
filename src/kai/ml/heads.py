"""Classifier heads on embeddings, and the weights of their vote across backbones."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

# Inverse regularisation: unit-length network features separate best with little of it;
# standardised descriptor features, whose parts are many and correlated, with more.
C_NORMALIZED = 10.0
C_STANDARDIZED = 1.0
MAX_ITERATIONS = 3000


def new_head(*, standardize: bool) -> Pipeline:
    """Class-balanced logistic regression on (optionally standardised) embeddings, unfitted."""
    classifier = LogisticRegression(
        C=C_STANDARDIZED if standardize else C_NORMALIZED,
        class_weight="balanced",
        max_iter=MAX_ITERATIONS,
    )
    return make_pipeline(StandardScaler(), classifier) if standardize else make_pipeline(classifier)


def fit_head(embeddings: np.ndarray, labels: Sequence[str], *, standardize: bool) -> Pipeline:
    return new_head(standardize=standardize).fit(embeddings, np.asarray(labels))


def vote_weights(probabilities: Sequence[np.ndarray], labels: Sequence[str]) -> list[float]:
    """The weights (summing to 1, in steps of a tenth) whose vote is most often right on the
    held-out probabilities; ties go to the lower log-loss, then to the earlier backbones.

    A plain weight per backbone proportional to its accuracy lets a weaker member pull the
    vote down (0.98 and 0.91 alone made 0.978 together on UIUC); searching the weights on
    validation keeps a member only where it helps.
    """
    targets = np.searchsorted(sorted(set(labels)), np.asarray(labels))
    best: tuple[float, float] | None = None
    chosen: list[float] = []
    for weights in _simplex(len(probabilities), steps=10):
        mixed = sum(w * p for w, p in zip(weights, probabilities, strict=True))
        assert isinstance(mixed, np.ndarray)
        accuracy = float(np.mean(mixed.argmax(axis=1) == targets))
        loss = float(-np.mean(np.log(mixed[np.arange(len(targets)), targets] + 1e-9)))
        if best is None or (accuracy, -loss) > best:
            best, chosen = (accuracy, -loss), weights
    return chosen


def _simplex(parts: int, *, steps: int) -> list[list[float]]:
    """Every split of 1 into `parts` non-negative multiples of 1/steps, the first part's
    largest share first."""
    return [[count / steps for count in split] for split in _compositions(parts, steps)]


def _compositions(parts: int, total: int) -> list[tuple[int, ...]]:
    if parts == 1:
        return [(total,)]
    return [
        (first, *rest)
        for first in range(total, -1, -1)
        for rest in _compositions(parts - 1, total - first)
    ]
