"""A trained recognizer: linear heads per backbone, their weighted vote, a temperature, and
what the training photos looked like (to say "unlike anything trained on").

Trained with scikit-learn; stored and served as plain arrays (no pickles), so an artifact
read back from storage can only ever be numbers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.metrics import precision_recall_fscore_support as per_class_scores
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline

from kai.kit.errors import Unprocessable
from kai.ml.heads import fit_head, new_head, vote_weights

# Folds of the validation (stratified; fewer when a label has fewer photos).
VALIDATION_FOLDS = 5
# Temperatures tried when calibrating the vote's probabilities on validation. Sharpening is
# bounded: on a small set that validation gets all right, the log-loss keeps falling as the
# temperature does, and would make every answer "100 %", a photo of an untrained material too.
TEMPERATURES = tuple(float(value) for value in np.geomspace(0.5, 5.0, 25))
# A photo is unlike the training set when, by any backbone, its similarity to the nearest
# label's centre is under the lowest 1% of the training photos' similarity to their own
# label's (each left out of that centre): a photo like the training photos is thus flagged
# about once in a hundred by each backbone. Measured in benchmarks/ood.py: with the network
# and the descriptor each asked, 0.4-1.5% of new photos of the development sets are flagged,
# and 87-98% of noise, patterns, flat colours, gradients and text (one backbone, and 0.05
# less than that percentile, as until 2026-12: 68%).
NOVELTY_PERCENTILE = 1.0
# ...and never above these: a label whose photos are nearly alike (one product shot one way)
# would otherwise call every new photo of it a stranger. For a network's unit-length features
# (EfficientNet-Lite0): trained on one development set, photos of another set's textures come
# to 0.47-0.50 at the median and 0.77-0.78 at the 99th percentile, and the thresholds found
# were 0.35-0.58. For a descriptor of histograms (the handcrafted one, read as it is, all its
# parts positive): photos of the other sets come to 0.94-0.96 at the median, thresholds were
# 0.88-0.96, and the generated non-materials other than noise 0.55-0.83 at the median.
NETWORK_CEILING = 0.7
DESCRIPTOR_CEILING = 0.88


class NotEnoughPhotos(Unprocessable):
    type, title = "not-enough-photos", "There are not enough labelled photos to train"


@dataclass
class LinearHead:
    """A logistic-regression head as arrays: probabilities = softmax(standardised x . W + b)."""

    backbone: str
    classes: list[str]
    weights: np.ndarray
    bias: np.ndarray
    mean: np.ndarray | None
    scale: np.ndarray | None
    vote: float

    @classmethod
    def of(cls, backbone: str, pipeline: Pipeline, vote: float) -> LinearHead:
        classifier = pipeline[-1]
        scaler = pipeline[0] if len(pipeline) > 1 else None
        return cls(
            backbone=backbone,
            classes=[str(label) for label in classifier.classes_],
            weights=np.asarray(classifier.coef_, dtype=np.float64),
            bias=np.asarray(classifier.intercept_, dtype=np.float64),
            mean=None if scaler is None else np.asarray(scaler.mean_, dtype=np.float64),
            scale=None if scaler is None else np.asarray(scaler.scale_, dtype=np.float64),
            vote=vote,
        )

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        values = rows.astype(np.float64)
        if self.mean is not None and self.scale is not None:
            values = (values - self.mean) / self.scale
        scores = values @ self.weights.T + self.bias
        if scores.shape[1] == 1:
            # Two labels: scikit-learn keeps one row of weights, for the second label.
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.stack([1.0 - positive, positive], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        exponentials = np.exp(scores)
        found: np.ndarray = exponentials / exponentials.sum(axis=1, keepdims=True)
        return found


@dataclass
class Likeness:
    """How alike photos are to the training photos by one backbone: the cosine similarity to
    the nearest label's centre, and the similarity under which a photo is unlike them."""

    backbone: str
    # Unit-length centre of each label's photos (rows in label order).
    centres: np.ndarray
    threshold: float

    def similarity(self, rows: np.ndarray) -> np.ndarray:
        """Each photo's cosine similarity to the nearest label's centre."""
        found: np.ndarray = (_unit(rows) @ self.centres.T).max(axis=1)
        return found


@dataclass
class Recognizer:
    labels: list[str]
    heads: list[LinearHead]
    temperature: float
    # A photo unlike the training photos by any of these is unknown. A version trained before
    # 2026-12 has one, by its first backbone.
    likeness: list[Likeness]

    @property
    def backbones(self) -> list[str]:
        """The backbones whose embeddings a recognition needs: those that measure likeness to
        the training photos, and those of the vote (a head weighted zero needs none)."""
        voting = [head.backbone for head in self.heads if head.vote > 0]
        measuring = [check.backbone for check in self.likeness]
        return list(dict.fromkeys([*measuring, *voting]))

    @property
    def novelty_threshold(self) -> float:
        """The first backbone's threshold (the one a version's `novelty_threshold` shows)."""
        return self.likeness[0].threshold

    def probabilities(self, embeddings: Mapping[str, np.ndarray]) -> np.ndarray:
        """Calibrated probabilities over `labels`, a row per photo."""
        mixed = _vote(self.heads, self.labels, embeddings)
        return _tempered(mixed, self.temperature)

    def unlike_training(self, embeddings: Mapping[str, np.ndarray]) -> np.ndarray:
        """Whether each photo is unlike the training photos (by any backbone), a row per photo."""
        found: np.ndarray = np.any(
            [
                check.similarity(embeddings[check.backbone]) < check.threshold
                for check in self.likeness
            ],
            axis=0,
        )
        return found

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {}
        heads = []
        for index, head in enumerate(self.heads):
            arrays[f"head{index}.weights"] = head.weights
            arrays[f"head{index}.bias"] = head.bias
            if head.mean is not None and head.scale is not None:
                arrays[f"head{index}.mean"] = head.mean
                arrays[f"head{index}.scale"] = head.scale
            heads.append({"backbone": head.backbone, "classes": head.classes, "vote": head.vote})
        for index, check in enumerate(self.likeness):
            arrays[f"likeness{index}.centres"] = check.centres
        described = {
            "labels": self.labels,
            "heads": heads,
            "temperature": self.temperature,
            "likeness": [
                {"backbone": check.backbone, "threshold": check.threshold}
                for check in self.likeness
            ],
        }
        arrays["description"] = np.frombuffer(json.dumps(described).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Recognizer:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            described = json.loads(arrays["description"].tobytes().decode())
            heads = [
                LinearHead(
                    backbone=head["backbone"],
                    classes=list(head["classes"]),
                    weights=arrays[f"head{index}.weights"],
                    bias=arrays[f"head{index}.bias"],
                    mean=arrays.get(f"head{index}.mean"),
                    scale=arrays.get(f"head{index}.scale"),
                    vote=float(head["vote"]),
                )
                for index, head in enumerate(described["heads"])
            ]
            if "likeness" in described:
                likeness = [
                    Likeness(
                        backbone=check["backbone"],
                        centres=arrays[f"likeness{index}.centres"],
                        threshold=float(check["threshold"]),
                    )
                    for index, check in enumerate(described["likeness"])
                ]
            else:
                # Stored before 2026-12: the first backbone's centres and threshold only, and
                # so the rule it was trained with.
                likeness = [
                    Likeness(
                        backbone=heads[0].backbone,
                        centres=arrays["centres"],
                        threshold=float(described["novelty_threshold"]),
                    )
                ]
            return cls(
                labels=list(described["labels"]),
                heads=heads,
                temperature=float(described["temperature"]),
                likeness=likeness,
            )


@dataclass
class Trained:
    recognizer: Recognizer
    metrics: dict[str, Any]


def train_recognizer(
    embeddings: Mapping[str, np.ndarray],
    labels: Sequence[str],
    *,
    standardize: Mapping[str, bool],
    seed: int = 0,
) -> Trained:
    """Validate by stratified k-fold (the vote's weights and temperature are chosen on the
    held-out predictions, and the metrics measured on them), then fit the heads on every photo.

    Each backbone also measures how alike a new photo is to the training photos."""
    targets = np.asarray([str(label) for label in labels])
    names = sorted(set(targets.tolist()))
    counts = {name: int(np.sum(targets == name)) for name in names}
    if len(names) < 2:
        raise NotEnoughPhotos("Training needs photos of at least two labels.")
    thin = sorted(name for name, count in counts.items() if count < 2)
    if thin:
        raise NotEnoughPhotos(
            f"Every label needs at least two photos; {', '.join(thin[:10])} "
            f"{'has' if len(thin) == 1 else 'have'} one."
        )
    folds = min(VALIDATION_FOLDS, min(counts.values()))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    backbones = list(embeddings)
    held_out = [
        cross_val_predict(
            new_head(standardize=standardize[name]),
            embeddings[name],
            targets,
            cv=splitter,
            method="predict_proba",
        )
        for name in backbones
    ]
    votes = vote_weights(held_out, list(targets)) if len(backbones) > 1 else [1.0]
    mixed = sum(vote * found for vote, found in zip(votes, held_out, strict=True))
    assert isinstance(mixed, np.ndarray)
    truth = np.searchsorted(names, targets)
    temperature = min(TEMPERATURES, key=lambda value: _log_loss(_tempered(mixed, value), truth))
    calibrated = _tempered(mixed, temperature)
    predicted = np.asarray(names)[calibrated.argmax(axis=1)]
    heads = [
        LinearHead.of(
            name,
            fit_head(embeddings[name], list(targets), standardize=standardize[name]),
            vote,
        )
        for name, vote in zip(backbones, votes, strict=True)
    ]
    likeness, held_out_unlike = _likeness(embeddings, targets, names, standardize=standardize)
    metrics = classification_metrics(targets, predicted, names)
    metrics.update(
        {
            "validation": {"method": "stratified k-fold", "folds": folds, "photos": len(targets)},
            "calibration": {
                "temperature": temperature,
                "log_loss_before": round(_log_loss(mixed, truth), 4),
                "log_loss_after": round(_log_loss(calibrated, truth), 4),
            },
            "backbone_accuracy": {
                name: round(float(np.mean(np.asarray(names)[found.argmax(axis=1)] == targets)), 4)
                for name, found in zip(backbones, held_out, strict=True)
            },
            "votes": dict(zip(backbones, votes, strict=True)),
            "unknown": {
                "method": "cosine similarity to the nearest label's centre, by each backbone",
                "percentile": NOVELTY_PERCENTILE,
                "thresholds": {check.backbone: round(check.threshold, 4) for check in likeness},
                # Of the training photos, each measured against centres made without it: how
                # often a new photo like them would be called unlike them.
                "held_out_unlike": round(float(np.mean(held_out_unlike)), 4),
            },
        }
    )
    recognizer = Recognizer(
        labels=names,
        heads=heads,
        temperature=temperature,
        likeness=likeness,
    )
    return Trained(recognizer=recognizer, metrics=metrics)


def _vote(
    heads: Sequence[LinearHead], labels: Sequence[str], embeddings: Mapping[str, np.ndarray]
) -> np.ndarray:
    voting = [head for head in heads if head.vote > 0] or list(heads[:1])
    total = sum(head.vote for head in voting) or 1.0
    combined: np.ndarray | None = None
    for head in voting:
        found = head.probabilities(embeddings[head.backbone])
        aligned = np.zeros((found.shape[0], len(labels)))
        for column, label in enumerate(head.classes):
            aligned[:, labels.index(label)] = found[:, column]
        share = aligned * ((head.vote or 1.0) / total)
        combined = share if combined is None else combined + share
    assert combined is not None
    return combined


def _tempered(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities sharpened (T < 1) or softened (T > 1): p^(1/T), renormalised."""
    logs = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logs -= logs.max(axis=1, keepdims=True)
    exponentials = np.exp(logs)
    found: np.ndarray = exponentials / exponentials.sum(axis=1, keepdims=True)
    return found


def _log_loss(probabilities: np.ndarray, truth: np.ndarray) -> float:
    picked = probabilities[np.arange(len(truth)), truth]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))


def _likeness(
    embeddings: Mapping[str, np.ndarray],
    targets: np.ndarray,
    names: Sequence[str],
    *,
    standardize: Mapping[str, bool],
) -> tuple[list[Likeness], np.ndarray]:
    """A likeness check per backbone, and which training photos, each left out of its label's
    centre, the checks together call unlike."""
    checks = []
    unlike = np.zeros(len(targets), dtype=bool)
    for backbone, rows in embeddings.items():
        ceiling = DESCRIPTOR_CEILING if standardize[backbone] else NETWORK_CEILING
        centres, own = _centres(rows, targets, names)
        threshold = float(np.percentile(own, NOVELTY_PERCENTILE))
        checks.append(Likeness(backbone, centres, max(-1.0, min(ceiling, threshold))))
        unlike |= own < checks[-1].threshold
    return checks, unlike


def _centres(
    rows: np.ndarray, targets: np.ndarray, names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Each label's centre, and each photo's similarity to its label's centre without it.

    Left out because with six photos a label, a photo is a sixth of its own centre, and would
    look closer than any new photo of the label can: without it, it comes as near as a new
    photo of a known label does.
    """
    unit = _unit(rows)
    sums = np.stack([unit[targets == name].sum(axis=0) for name in names])
    sizes = np.asarray([int(np.sum(targets == name)) for name in names])
    at = np.searchsorted(np.asarray(names), targets)
    others = sums[at] - np.where((sizes[at] > 1)[:, None], unit, 0.0)
    own = np.einsum("ij,ij->i", unit, others) / np.maximum(np.linalg.norm(others, axis=1), 1e-12)
    return _unit(sums), own


def _unit(rows: np.ndarray) -> np.ndarray:
    values = rows.astype(np.float64)
    found: np.ndarray = values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)
    return found


def classification_metrics(
    truth: np.ndarray, predicted: np.ndarray, names: list[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix of
    `predicted` against `truth`, over the labels `names` (in that order)."""
    precision, recall, f1, support = per_class_scores(
        truth, predicted, labels=names, zero_division=0
    )
    return {
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(
            float(f1_score(truth, predicted, labels=names, average="macro", zero_division=0)), 4
        ),
        "per_class": [
            {
                "label": name,
                "precision": round(float(p), 4),
                "recall": round(float(r), 4),
                "f1": round(float(f), 4),
                "support": int(count),
            }
            for name, p, r, f, count in zip(names, precision, recall, f1, support, strict=True)
        ],
        "labels": names,
        "confusion_matrix": confusion_matrix(truth, predicted, labels=names).tolist(),
    }
