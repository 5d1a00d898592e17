"""A trained recognizer: linear heads per backbone, their weighted vote, a temperature, and
what the training photos looked like (to say "unlike anything trained on").

Trained with scikit-learn; stored and served as plain arrays (no pickles), so an artifact
read back from storage can only ever be numbers.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.metrics import precision_recall_fscore_support as per_class_scores
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline

from kai.kit.errors import Unprocessable
from kai.ml import likeness
from kai.ml.heads import fit_head, new_head, vote_weights
from kai.ml.likeness import Likeness

# Folds of the validation (stratified; fewer when a label has fewer photos).
VALIDATION_FOLDS = 5
# Temperatures tried when calibrating the vote's probabilities on validation. Sharpening is
# bounded: on a small set that validation gets all right, the log-loss keeps falling as the
# temperature does, and would make every answer "100 %", a photo of an untrained material too.
TEMPERATURES = tuple(float(value) for value in np.geomspace(0.5, 5.0, 25))


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
class Recognizer:
    labels: list[str]
    heads: list[LinearHead]
    temperature: float
    # A photo unlike the training photos by any of these is unknown. A version trained before
    # every backbone measured likeness has one: the first backbone's nearest centre.
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
        """The first backbone's cosine threshold (a version's `novelty_threshold`)."""
        return self.likeness[0].threshold

    def probabilities(self, embeddings: Mapping[str, np.ndarray]) -> np.ndarray:
        """Calibrated probabilities over `labels`, a row per photo."""
        mixed = _vote(self.heads, self.labels, embeddings)
        return _tempered(mixed, self.temperature)

    def unlike_training(self, embeddings: Mapping[str, np.ndarray]) -> np.ndarray:
        """Whether each photo is unlike the training photos (by any backbone), a row per photo."""
        found: np.ndarray = np.any(
            [check.unlike(embeddings[check.backbone]) for check in self.likeness], axis=0
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
        checks = []
        for index, (description, kept) in enumerate(likeness.described(self.likeness)):
            checks.append(description)
            arrays.update({f"likeness{index}.{name}": value for name, value in kept.items()})
        described = {
            "labels": self.labels,
            "heads": heads,
            "temperature": self.temperature,
            "likeness": checks,
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
                checks = [
                    likeness.from_described(check, _prefixed(arrays, f"likeness{index}."))
                    for index, check in enumerate(described["likeness"])
                ]
            else:
                # Stored before every backbone measured likeness: the first backbone's centres
                # and threshold only, and so the rule it was trained with.
                checks = [
                    likeness.NearestCentre(
                        heads[0].backbone, arrays["centres"], float(described["novelty_threshold"])
                    )
                ]
            return cls(
                labels=list(described["labels"]),
                heads=heads,
                temperature=float(described["temperature"]),
                likeness=checks,
            )


@dataclass
class Trained:
    recognizer: Recognizer
    metrics: dict[str, Any]
    # The calibrated probabilities of each training photo, held out of the heads that scored
    # it (a row per photo, columns in `recognizer.labels`' order): what a new photo like the
    # training ones would be answered with, the reference drift is measured against.
    held_out: np.ndarray | None = None


def photos_shortfall(labels: Sequence[str]) -> str | None:
    """Why photos with these labels cannot be trained on; None when they can."""
    counts = Counter(labels)
    if len(counts) < 2:
        return "Training needs photos of at least two labels."
    thin = sorted(name for name, count in counts.items() if count < 2)
    if thin:
        more = f" and {len(thin) - 10} more" if len(thin) > 10 else ""
        return (
            f"Every label needs at least two photos; {', '.join(thin[:10])}{more} "
            f"{'has' if len(thin) == 1 else 'have'} one."
        )
    return None


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
    shortfall = photos_shortfall(targets.tolist())
    if shortfall is not None:
        raise NotEnoughPhotos(shortfall)
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
    checks, held_out_unlike = likeness.fit_likeness(
        embeddings,
        targets,
        standardize=standardize,
        folds=list(splitter.split(np.zeros(len(targets)), targets)),
    )
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
                "checks": [
                    {
                        "backbone": check.backbone,
                        "kind": check.kind,
                        "threshold": round(check.threshold, 4),
                    }
                    for check in checks
                ],
                # Of the training photos, each measured by checks made without it: how often
                # a new photo like them would be called unlike them.
                "held_out_unlike": round(float(np.mean(held_out_unlike)), 4),
            },
        }
    )
    recognizer = Recognizer(
        labels=names,
        heads=heads,
        temperature=temperature,
        likeness=checks,
    )
    return Trained(recognizer=recognizer, metrics=metrics, held_out=calibrated)


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


def _prefixed(arrays: Any, prefix: str) -> dict[str, np.ndarray]:
    return {
        name.removeprefix(prefix): arrays[name] for name in arrays.files if name.startswith(prefix)
    }


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
