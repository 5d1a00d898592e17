"""Classifier heads on embeddings, and their ensemble across backbones by weighted voting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

# Inverse regularisation: unit-length network features separate best with little of it;
# standardised descriptor features, whose parts are many and correlated, with more.
C_NORMALIZED = 10.0
C_STANDARDIZED = 1.0
MAX_ITERATIONS = 3000
# Folds used inside a training set to weigh each backbone's vote by its held-out accuracy.
INNER_FOLDS = 3


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


def held_out_probabilities(
    embeddings: np.ndarray, labels: Sequence[str], *, standardize: bool
) -> np.ndarray | None:
    """Out-of-fold class probabilities of a head under a small stratified cross-validation of
    the given set (columns in sorted label order); None when a label has too few photos."""
    targets = np.asarray(labels)
    smallest = int(np.unique(targets, return_counts=True)[1].min())
    folds = min(INNER_FOLDS, smallest)
    if folds < 2:
        return None
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    found: np.ndarray = cross_val_predict(
        new_head(standardize=standardize), embeddings, targets, cv=splitter, method="predict_proba"
    )
    return found


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


@dataclass
class Member:
    """One backbone's head and the weight of its vote."""

    backbone: str
    head: Pipeline
    weight: float


@dataclass
class Ensemble:
    """Heads of several backbones; probabilities averaged with weights from validation."""

    labels: list[str]
    members: list[Member]

    def probabilities(self, embeddings: Mapping[str, np.ndarray]) -> np.ndarray:
        """Rows of probabilities over `labels` for the photos embedded by each backbone."""
        voting = [member for member in self.members if member.weight > 0]
        total = sum(member.weight for member in voting)
        combined: np.ndarray | None = None
        for member in voting:
            found = member.head.predict_proba(embeddings[member.backbone])
            aligned = np.zeros((found.shape[0], len(self.labels)), dtype=np.float64)
            for column, label in enumerate(member.head.classes_):
                aligned[:, self.labels.index(str(label))] = found[:, column]
            weighted = aligned * (member.weight / total)
            combined = weighted if combined is None else combined + weighted
        assert combined is not None
        return combined


def fit_ensemble(
    embeddings: Mapping[str, np.ndarray],
    labels: Sequence[str],
    *,
    standardize: Mapping[str, bool],
) -> Ensemble:
    """A head per backbone, their votes weighted as validation on this training set says
    (`vote_weights`). A member weighted zero is kept, to be reported, but not consulted."""
    names = list(embeddings)
    weights = [1.0 / len(names)] * len(names)
    if len(names) > 1:
        held_out = [
            held_out_probabilities(embeddings[name], labels, standardize=standardize[name])
            for name in names
        ]
        if all(found is not None for found in held_out):
            weights = vote_weights([found for found in held_out if found is not None], labels)
    members = [
        Member(
            backbone=name,
            head=fit_head(embeddings[name], labels, standardize=standardize[name]),
            weight=weight,
        )
        for name, weight in zip(names, weights, strict=True)
    ]
    return Ensemble(labels=sorted({str(label) for label in labels}), members=members)
