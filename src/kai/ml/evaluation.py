"""Evaluation of the organisation-independent default pipeline on a folder-per-class image set:
stratified k-fold, a head per backbone and their weighted vote, and the usual metrics."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from kai.kit.errors import KaiError
from kai.ml import plots
from kai.ml.recognizer import classification_metrics, train_recognizer
from kai.search.features import features_of
from kai.vision.backbones import Backbone
from kai.vision.preprocessing import Enhancement, prepare_views

# Photos embedded per call to a backbone (progress is reported between calls).
EMBED_CHUNK = 16


class DatasetProblem(KaiError):
    status, type, title = 422, "dataset-unusable", "The image set cannot be evaluated"


@dataclass
class LabeledImages:
    """Image files by label (a folder per label), and the files passed over, with why."""

    paths: list[Path]
    labels: list[str]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


@dataclass
class ClassScores:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class EvaluationReport:
    accuracy: float
    macro_f1: float
    labels: list[str]
    per_class: list[ClassScores]
    confusion_matrix: list[list[int]]
    folds: int
    images: int
    # Each backbone's own accuracy over the same folds, and how long embedding took.
    backbone_accuracy: dict[str, float]
    milliseconds_per_image: dict[str, float]
    skipped: list[tuple[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "labels": self.labels,
            "per_class": [
                {
                    "label": scores.label,
                    "precision": round(scores.precision, 4),
                    "recall": round(scores.recall, 4),
                    "f1": round(scores.f1, 4),
                    "support": scores.support,
                }
                for scores in self.per_class
            ],
            "confusion_matrix": self.confusion_matrix,
            "folds": self.folds,
            "images": self.images,
            "backbone_accuracy": {k: round(v, 4) for k, v in self.backbone_accuracy.items()},
            "milliseconds_per_image": {
                k: round(v, 2) for k, v in self.milliseconds_per_image.items()
            },
            "skipped": [{"path": path, "reason": reason} for path, reason in self.skipped],
        }


def find_labeled_images(root: Path) -> LabeledImages:
    """Every file under each sub-folder of `root`, labelled by its folder (hidden ones skipped)."""
    if not root.is_dir():
        raise DatasetProblem(f"{root} is not a folder")
    found = LabeledImages(paths=[], labels=[])
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        if folder.name.startswith("."):
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                found.paths.append(path)
                found.labels.append(folder.name)
    return found


class FeatureCache:
    """Embeddings of image files kept on disk between evaluations: by the file's content
    (SHA-256) and by `features_of` (the backbone's fingerprint and the preparation), as the
    platform's feature store keeps a stored photo's. Another backbone, or the same photos
    prepared another way, are other entries."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, features: str, digest: str) -> Path:
        folder = hashlib.sha256(features.encode()).hexdigest()[:24]
        return self.root / folder / f"{digest}.npy"

    def read(self, features: str, digest: str) -> np.ndarray | None:
        try:
            found: np.ndarray = np.load(self._path(features, digest), allow_pickle=False)
        except (OSError, ValueError):
            return None
        return found

    def write(self, features: str, digest: str, vector: np.ndarray) -> None:
        target = self._path(features, digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_suffix(f".{os.getpid()}.tmp")
        with scratch.open("wb") as out:
            np.save(out, np.asarray(vector, dtype=np.float32), allow_pickle=False)
        scratch.replace(target)


def embed_folder(
    images: LabeledImages,
    backbones: Sequence[Backbone],
    *,
    enhancement: Enhancement = Enhancement(),  # noqa: B008 - frozen, shared default is safe
    progress: Callable[[int], None] | None = None,
    cache: FeatureCache | None = None,
) -> tuple[LabeledImages, dict[str, np.ndarray], dict[str, float]]:
    """Each readable image embedded by every backbone; files that are not images are moved to
    `skipped` (with the reason) rather than failing the run. With a `cache`, what it holds is
    read rather than computed, and what is computed is kept there. The milliseconds an image
    are of the images embedded here (a backbone that embedded none has no figure)."""
    kept = LabeledImages(paths=[], labels=[], skipped=list(images.skipped))
    named = {
        backbone.name: features_of(backbone.fingerprint, enhancement.tag) for backbone in backbones
    }
    found: dict[str, list[np.ndarray | None]] = {backbone.name: [] for backbone in backbones}
    views: list[dict[int, list[np.ndarray]]] = []
    digests: list[str] = []
    for path, label in zip(images.paths, images.labels, strict=True):
        try:
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            known = {
                name: cache.read(features, digest) if cache is not None else None
                for name, features in named.items()
            }
            sides = sorted({b.input_side for b in backbones if known[b.name] is None})
            # Decoded once for every backbone's view size (not at all when all are known).
            prepared = (
                prepare_views(data, sides=sides, enhancement=enhancement).views if sides else {}
            )
        except KaiError as exc:
            kept.skipped.append((path, exc.detail or exc.title))
        else:
            kept.paths.append(path)
            kept.labels.append(label)
            digests.append(digest)
            views.append(prepared)
            for name, vector in known.items():
                found[name].append(vector)
        if progress:
            progress(1)
    embeddings: dict[str, np.ndarray] = {}
    timings: dict[str, float] = {}
    for backbone in backbones:
        rows = found[backbone.name]
        needing = [index for index, vector in enumerate(rows) if vector is None]
        photos = [views[index][backbone.input_side] for index in needing]
        started = time.perf_counter()
        computed = [
            backbone.embed(photos[start : start + EMBED_CHUNK])
            for start in range(0, len(photos), EMBED_CHUNK)
        ]
        elapsed = time.perf_counter() - started
        fresh = np.concatenate(computed) if computed else np.zeros((0, backbone.dimension))
        for index, vector in zip(needing, fresh, strict=True):
            rows[index] = vector
            if cache is not None:
                cache.write(named[backbone.name], digests[index], vector)
        embeddings[backbone.name] = (
            np.stack(
                [np.asarray(vector, dtype=np.float32) for vector in rows if vector is not None]
            )
            if rows
            else np.zeros((0, backbone.dimension), np.float32)
        )
        if needing:
            timings[backbone.name] = elapsed * 1000 / len(needing)
        if progress:
            progress(len(rows))
    return kept, embeddings, timings


def cross_validate(
    labels: Sequence[str],
    embeddings: dict[str, np.ndarray],
    *,
    standardize: dict[str, bool],
    folds: int,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, float]]:
    """Out-of-fold predictions of the ensemble, and each backbone's own out-of-fold accuracy."""
    targets = np.asarray(labels)
    classes, counts = np.unique(targets, return_counts=True)
    if len(classes) < 2:
        raise DatasetProblem("At least two labels (folders) with images are needed.")
    if folds < 2:
        raise DatasetProblem("At least two folds are needed.")
    if counts.min() < folds:
        smallest = str(classes[counts.argmin()])
        raise DatasetProblem(
            f"{folds} folds need at least {folds} images of every label; "
            f"{smallest!r} has {int(counts.min())}."
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predicted = np.empty(len(targets), dtype=object)
    alone = {name: np.empty(len(targets), dtype=object) for name in embeddings}
    for train, test in splitter.split(np.zeros(len(targets)), targets):
        # Trained exactly as an organization's model is (its own validation choosing the
        # vote and the temperature), then scored on photos it never saw.
        recognizer = train_recognizer(
            {name: rows[train] for name, rows in embeddings.items()},
            list(targets[train]),
            standardize=standardize,
            seed=seed,
        ).recognizer
        test_rows = {name: rows[test] for name, rows in embeddings.items()}
        names = np.asarray(recognizer.labels, dtype=object)
        predicted[test] = names[recognizer.probabilities(test_rows).argmax(axis=1)]
        for head in recognizer.heads:
            found = head.probabilities(test_rows[head.backbone])
            alone[head.backbone][test] = names[found.argmax(axis=1)]
    accuracy = {name: float(np.mean(found == targets)) for name, found in alone.items()}
    return predicted, accuracy


def evaluate_folder(
    root: Path,
    backbones: Sequence[Backbone],
    *,
    folds: int = 5,
    enhancement: Enhancement = Enhancement(),  # noqa: B008 - frozen, shared default is safe
    progress: Callable[[int], None] | None = None,
    cache: FeatureCache | None = None,
) -> EvaluationReport:
    images = find_labeled_images(root)
    kept, embeddings, timings = embed_folder(
        images, backbones, enhancement=enhancement, progress=progress, cache=cache
    )
    predicted, alone = cross_validate(
        kept.labels,
        embeddings,
        standardize={backbone.name: backbone.standardize for backbone in backbones},
        folds=folds,
    )
    return report_of(kept, predicted, alone, timings, folds=folds, root=root)


def report_of(
    images: LabeledImages,
    predicted: np.ndarray,
    backbone_accuracy: dict[str, float],
    timings: dict[str, float],
    *,
    folds: int,
    root: Path,
) -> EvaluationReport:
    truth = np.asarray(images.labels)
    labels = sorted(set(images.labels))
    metrics = classification_metrics(truth, np.asarray([str(value) for value in predicted]), labels)
    return EvaluationReport(
        accuracy=metrics["accuracy"],
        macro_f1=metrics["macro_f1"],
        labels=labels,
        per_class=[
            ClassScores(row["label"], row["precision"], row["recall"], row["f1"], row["support"])
            for row in metrics["per_class"]
        ],
        confusion_matrix=metrics["confusion_matrix"],
        folds=folds,
        images=len(truth),
        backbone_accuracy=backbone_accuracy,
        milliseconds_per_image=timings,
        skipped=[(str(path.relative_to(root)), reason) for path, reason in images.skipped],
    )


def render_confusion_matrix(report: EvaluationReport, target: Path) -> None:
    """The confusion matrix as a PNG heat map: rows the true label, columns the predicted."""
    picture = plots.confusion_matrix_png(
        report.labels,
        report.confusion_matrix,
        title=f"accuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f} "
        f"({report.images} photos, {report.folds}-fold)",
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(picture)
