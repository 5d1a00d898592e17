"""Out-of-distribution detection: how often a trained model calls a photo unknown, for new
photos of what it was trained on, for images that are plainly not materials, and for real
photos of other materials.

    PYTHONPATH=src .venv/bin/python -m benchmarks.ood [--datasets DIR] [--per-class 60]
        [--folds 3] [--per-kind 25] [--model-dir DIR] [--keep DIR]

Each development set (a folder per class; at most `--per-class` photos of each, drawn with a
fixed seed, so that a run stays modest on a shared machine) is embedded once by the default
backbones, as `kai train` embeds. Then, per set, stratified `--folds`-fold: a model trained on
all folds but one exactly as `kai train` trains one (`train_recognizer`), and each of its
answers judged as a recognition is (`kai.ml.inference.judge`, the default confidence
threshold) under two rules:

- *before* (issue 14): unknown when the confidence is under the threshold, or when the photo's
  cosine similarity to the nearest label's centre, by the first backbone, is under the 1st
  percentile of the training photos' own (each left out of its centre), less 0.05, and never
  above 0.7 (what a version stored before carries, and is still judged by);
- *now*: the same confidence rule, and unlike the training photos by any check
  (`kai.ml.likeness`): each backbone's cosine similarity to the nearest label's centre under
  its 1st percentile, without the margin (at most 0.7 for the network, 0.88 for the
  descriptor), or the descriptor's Mahalanobis distance beyond its 99.5th percentile.

Measured on the held-out fold (every photo once): the share called unknown (it must stay at a
few per cent), and how much of it is `unlike_training` (the rest is the confidence rule, the
same in both); on generated non-materials (`kai.vision.non_materials`: noise, checkerboards,
stripes, flat colours, gradients, text; `--per-kind` of each); and on real photos of another
development set that shares no class with the one trained on (below). Results go to
`benchmarks/results/ood.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from kai.config import Settings
from kai.ml.evaluation import LabeledImages, embed_folder, find_labeled_images
from kai.ml.inference import judge
from kai.ml.likeness import NearestCentre
from kai.ml.recognizer import Recognizer, train_recognizer
from kai.recognition.service import DEFAULT_CONFIDENCE
from kai.vision import non_materials
from kai.vision.backbones import DEFAULT_BACKBONES, Backbone, get_backbone
from kai.vision.preprocessing import prepare_views

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASETS = REPO_ROOT.parent / "shared" / "datasets"
RESULTS = Path(__file__).resolve().parent / "results" / "ood.json"
# Trained on the first, the second's photos are "unrelated real photos": a set that shares no
# class with it (the classes left out would be the same material under another name).
UNRELATED = {
    "indoor-floors": ("kth-tips-color", ()),
    "waste-materials": (
        "uiuc-texture",
        ("T04_wood1", "T05_wood2", "T06_wood3", "T16_glass1", "T17_glass2"),
    ),
    "kth-tips-color": ("indoor-floors", ()),
    "uiuc-texture": ("kth-tips-color", ("corduroy",)),
}
# The rule before issue 14 (kai.ml.recognizer then): first backbone, margin, ceiling.
OLD_PERCENTILE, OLD_MARGIN, OLD_CEILING = 1.0, 0.05, 0.7


def _sample(images: LabeledImages, per_class: int, seed: int) -> LabeledImages:
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    paths: list[Path] = []
    labels: list[str] = []
    for label in sorted(set(images.labels)):
        own = [
            path for path, found in zip(images.paths, images.labels, strict=True) if found == label
        ]
        for path in sorted(rng.sample(own, min(per_class, len(own)))):
            paths.append(path)
            labels.append(label)
    return LabeledImages(paths=paths, labels=labels)


def _embedded(
    images: LabeledImages, backbones: list[Backbone], keep: Path | None, name: str
) -> tuple[LabeledImages, dict[str, np.ndarray]]:
    """The photos embedded by every backbone; read from `keep` when embedded there before."""
    names = [backbone.name for backbone in backbones]
    kept_file = None if keep is None else keep / f"{name}-{len(images.paths)}.npz"
    if kept_file is not None and kept_file.is_file():
        with np.load(kept_file, allow_pickle=False) as stored:
            if stored["paths"].tolist() == [str(path) for path in images.paths]:
                return images, {backbone: stored[backbone] for backbone in names}
    kept, embeddings, _ = embed_folder(images, backbones)
    if kept_file is not None and kept.paths == images.paths:
        kept_file.parent.mkdir(parents=True, exist_ok=True)
        paths = np.asarray([str(path) for path in kept.paths])
        np.savez(kept_file, allow_pickle=False, paths=paths, **embeddings)
    return kept, embeddings


def _embed_non_materials(
    backbones: list[Backbone], per_kind: int, seed: int
) -> tuple[list[str], dict[str, np.ndarray]]:
    made = non_materials.non_materials(per_kind, seed=seed)
    sides = sorted({backbone.input_side for backbone in backbones})
    prepared = [prepare_views(non_materials.png(pixels), sides=sides) for _, pixels in made]
    embeddings = {
        backbone.name: backbone.embed([views.views[backbone.input_side] for views in prepared])
        for backbone in backbones
    }
    return [kind for kind, _ in made], embeddings


def _old_rule(recognizer: Recognizer, rows: np.ndarray, labels: np.ndarray) -> Recognizer:
    """The same heads judged as a version trained before issue 14 is: by its first backbone's
    centres, under the 1st percentile of the photos' own similarity less 0.05, at most 0.7."""
    unit = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    names = recognizer.labels
    sums = np.stack([unit[labels == name].sum(axis=0) for name in names])
    own = []
    for index, label in enumerate(labels):
        at = names.index(str(label))
        others = sums[at] - unit[index] if np.sum(labels == label) > 1 else sums[at]
        own.append(float(unit[index] @ others / max(float(np.linalg.norm(others)), 1e-12)))
    threshold = float(np.percentile(own, OLD_PERCENTILE)) - OLD_MARGIN
    first = recognizer.heads[0].backbone
    centres = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    old = NearestCentre(first, centres, max(-1.0, min(OLD_CEILING, threshold)))
    return Recognizer(recognizer.labels, recognizer.heads, recognizer.temperature, [old])


def _reasons(recognizer: Recognizer, embeddings: dict[str, np.ndarray]) -> np.ndarray:
    """Why each photo is answered unknown ("" when it is not), as a recognition would be."""
    judged = judge(
        recognizer,
        embeddings,
        category_ids={},
        top_k=1,
        confidence_threshold=DEFAULT_CONFIDENCE,
    )
    return np.asarray([reason or "" for _, reason in judged])


def _share(flags: np.ndarray) -> float:
    return round(float(np.mean(flags)) * 100, 1) if len(flags) else 0.0


def measure_set(
    name: str,
    embedded: dict[str, tuple[LabeledImages, dict[str, np.ndarray]]],
    strangers: tuple[list[str], dict[str, np.ndarray]],
    *,
    standardize: dict[str, bool],
    folds: int,
) -> dict[str, Any]:
    images, embeddings = embedded[name]
    targets = np.asarray(images.labels)
    other, left_out = UNRELATED[name]
    other_images, other_embeddings = embedded[other]
    keep = ~np.isin(np.asarray(other_images.labels), left_out)
    unrelated = {backbone: rows[keep] for backbone, rows in other_embeddings.items()}
    kinds = np.asarray(strangers[0])
    flags: dict[str, dict[str, list[np.ndarray]]] = {
        rule: {"held_out": [], "non_materials": [], "unrelated": []} for rule in ("old", "new")
    }
    right: list[np.ndarray] = []
    thresholds: dict[str, list[float]] = {}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    for train, test in splitter.split(np.zeros(len(targets)), targets):
        trained = train_recognizer(
            {backbone: rows[train] for backbone, rows in embeddings.items()},
            list(targets[train]),
            standardize=standardize,
        ).recognizer
        first = trained.heads[0].backbone
        rules = {
            "old": _old_rule(trained, embeddings[first][train], targets[train]),
            "new": trained,
        }
        for check in trained.likeness:
            key = f"{check.backbone} {check.kind}"
            thresholds.setdefault(key, []).append(check.threshold)
        held_out = {backbone: rows[test] for backbone, rows in embeddings.items()}
        predicted = trained.probabilities(held_out).argmax(axis=1)
        right.append(np.asarray(trained.labels)[predicted] == targets[test])
        for rule, recognizer in rules.items():
            flags[rule]["held_out"].append(_reasons(recognizer, held_out))
            flags[rule]["non_materials"].append(_reasons(recognizer, strangers[1]) != "")
            flags[rule]["unrelated"].append(_reasons(recognizer, unrelated) != "")
    found: dict[str, Any] = {
        "photos": len(targets),
        "labels": len(set(images.labels)),
        "unrelated": {"set": other, "without": list(left_out), "photos": int(keep.sum())},
        "accuracy": round(float(np.mean(np.concatenate(right))), 4),
        "thresholds": {
            backbone: [round(min(values), 3), round(max(values), 3)]
            for backbone, values in thresholds.items()
        },
    }
    for rule, measured in flags.items():
        per_fold = np.stack(measured["non_materials"])
        reasons = np.concatenate(measured["held_out"])
        found[rule] = {
            "held_out_unknown_percent": _share(reasons != ""),
            "held_out_unlike_training_percent": _share(reasons == "unlike_training"),
            "non_materials_unknown_percent": _share(per_fold.ravel()),
            "unrelated_unknown_percent": _share(np.concatenate(measured["unrelated"])),
            "non_materials_by_kind_percent": {
                kind: _share(per_fold[:, kinds == kind].ravel()) for kind in non_materials.KINDS
            },
        }
    return found


def _table(results: dict[str, Any]) -> str:
    lines = [
        "| Trained on (photos) | unrelated photos | rule | held-out photos unknown "
        "(of which unlike training) | non-materials unknown | unrelated photos unknown |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name, found in results["sets"].items():
        unrelated = f"{found['unrelated']['set']} ({found['unrelated']['photos']})"
        for rule, label in (("old", "before"), ("new", "now")):
            measured = found[rule]
            lines.append(
                f"| {name} ({found['photos']}) | {unrelated} | {label} | "
                f"{measured['held_out_unknown_percent']}% "
                f"({measured['held_out_unlike_training_percent']}%) | "
                f"{measured['non_materials_unknown_percent']}% | "
                f"{measured['unrelated_unknown_percent']}% |"
            )
    lines += ["", "Non-materials called unknown, by kind (before / now):", ""]
    lines.append("| Trained on | " + " | ".join(non_materials.KINDS) + " |")
    lines.append("|---|" + "---:|" * len(non_materials.KINDS))
    for name, found in results["sets"].items():
        old = found["old"]["non_materials_by_kind_percent"]
        new = found["new"]["non_materials_by_kind_percent"]
        cells = " | ".join(f"{old[kind]} / {new[kind]}" for kind in non_materials.KINDS)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ood", description=__doc__)
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--per-class", type=int, default=60, help="Photos of each class, at most.")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--per-kind", type=int, default=25, help="Non-materials of each kind.")
    parser.add_argument("--model-dir", type=Path, help="The image-model store (default: KAI's).")
    parser.add_argument("--threads", type=int, default=1, help="Threads a backbone uses.")
    parser.add_argument(
        "--keep",
        type=Path,
        help="A folder where the photos' embeddings are kept: a later run with the same "
        "sample measures at once.",
    )
    options = parser.parse_args()
    missing = [name for name in UNRELATED if not (options.datasets / name).is_dir()]
    if missing:
        raise SystemExit(f"no {', '.join(missing)} under {options.datasets}: pass --datasets DIR")
    model_dir = options.model_dir or Settings().model_dir
    backbones = [
        get_backbone(name, model_dir=model_dir, threads=options.threads)
        for name in DEFAULT_BACKBONES
    ]
    standardize = {backbone.name: backbone.standardize for backbone in backbones}
    started = time.perf_counter()
    embedded = {}
    for name in UNRELATED:
        images = _sample(find_labeled_images(options.datasets / name), options.per_class, seed=7)
        embedded[name] = _embedded(images, backbones, options.keep, name)
        print(f"embedded {name}: {len(embedded[name][0].paths)} photos", flush=True)
    strangers = _embed_non_materials(backbones, options.per_kind, seed=1)
    results: dict[str, Any] = {
        "per_class": options.per_class,
        "folds": options.folds,
        "non_materials": len(strangers[0]),
        "confidence_threshold": DEFAULT_CONFIDENCE,
        "cpus": os.cpu_count(),
        "embedding_seconds": round(time.perf_counter() - started, 1),
        "sets": {},
    }
    for name in UNRELATED:
        results["sets"][name] = measure_set(
            name, embedded, strangers, standardize=standardize, folds=options.folds
        )
        print(name, json.dumps(results["sets"][name]), flush=True)
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(_table(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
