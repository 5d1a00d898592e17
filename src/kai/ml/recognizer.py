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
from kai.ml.heads import fit_head, new_head, vote_weights

# Folds of the validation (stratified; fewer when a label has fewer photos).
VALIDATION_FOLDS = 5
# Temperatures tried when calibrating the vote's probabilities on validation. Sharpening is
# bounded: on a small set that validation gets all right, the log-loss keeps falling as the
# temperature does, and would make every answer "100 %", a photo of an untrained material too.
TEMPERATURES = tuple(float(value) for value in np.geomspace(0.5, 5.0, 25))
# A photo is unlike the training set when its similarity to the nearest label's centre is
# under the lowest 1% of the training photos' similarity to their own label's (each left out
# of that centre), less a margin.
NOVELTY_PERCENTILE = 1.0
NOVELTY_MARGIN = 0.05
# ...and never above this: a label whose photos are nearly alike (one product shot one way)
# would otherwise call every new photo of it a stranger. Measured with EfficientNet-Lite0:
# trained on one development set, photos of the other set's textures come to 0.47-0.50 at
# the median and 0.77-0.78 at the 99th percentile; the thresholds found were 0.56-0.58.
NOVELTY_CEILING = 0.7


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
    # Unit-length centre of each label's photos, by the first backbone (rows in label order).
    centres: np.ndarray
    novelty_threshold: float

    @property
    def backbones(self) -> list[str]:
        """The backbones whose embeddings a recognition needs: those of the vote (a head
        weighted zero needs none) and the one that measures likeness to the training photos."""
        voting = [head.backbone for head in self.heads if head.vote > 0]
        return list(dict.fromkeys([self.novelty_backbone, *voting]))

    @property
    def novelty_backbone(self) -> str:
        return self.heads[0].backbone

    def probabilities(self, embeddings: Mapping[str, np.ndarray]) -> np.ndarray:
        """Calibrated probabilities over `labels`, a row per photo."""
        mixed = _vote(self.heads, self.labels, embeddings)
        return _tempered(mixed, self.temperature)

    def similarity_to_training(self, rows: np.ndarray) -> np.ndarray:
        """Each photo's cosine similarity to the nearest label's centre."""
        found: np.ndarray = (rows.astype(np.float64) @ self.centres.T).max(axis=1)
        return found

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {"centres": self.centres}
        heads = []
        for index, head in enumerate(self.heads):
            arrays[f"head{index}.weights"] = head.weights
            arrays[f"head{index}.bias"] = head.bias
            if head.mean is not None and head.scale is not None:
                arrays[f"head{index}.mean"] = head.mean
                arrays[f"head{index}.scale"] = head.scale
            heads.append({"backbone": head.backbone, "classes": head.classes, "vote": head.vote})
        described = {
            "labels": self.labels,
            "heads": heads,
            "temperature": self.temperature,
            "novelty_threshold": self.novelty_threshold,
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
            return cls(
                labels=list(described["labels"]),
                heads=heads,
                temperature=float(described["temperature"]),
                centres=arrays["centres"],
                novelty_threshold=float(described["novelty_threshold"]),
            )


@dataclass
class Trained:
    recognizer: Recognizer
    metrics: dict[str, Any]


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

    The first backbone also defines what "like the training photos" means."""
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
    centres, threshold = _novelty(embeddings[backbones[0]], targets, names)
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
        }
    )
    recognizer = Recognizer(
        labels=names,
        heads=heads,
        temperature=temperature,
        centres=centres,
        novelty_threshold=threshold,
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


def _novelty(
    rows: np.ndarray, targets: np.ndarray, names: Sequence[str]
) -> tuple[np.ndarray, float]:
    """Each label's centre, and the similarity under which a photo is unlike them all.

    A training photo is compared with its label's centre *without itself* (with six photos a
    label, a photo is a sixth of its own centre, and would look closer than any new photo
    of the label can): that is how near a new photo of a known label comes.
    """
    unit = rows.astype(np.float64)
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    sums = np.stack([unit[targets == name].sum(axis=0) for name in names])
    sizes = np.asarray([int(np.sum(targets == name)) for name in names])
    centres = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    own = []
    for index, label in enumerate(targets):
        at = names.index(str(label))
        others = sums[at] - unit[index] if sizes[at] > 1 else sums[at]
        own.append(float(unit[index] @ others / max(float(np.linalg.norm(others)), 1e-12)))
    threshold = float(np.percentile(own, NOVELTY_PERCENTILE)) - NOVELTY_MARGIN
    return centres, max(-1.0, min(NOVELTY_CEILING, threshold))


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
