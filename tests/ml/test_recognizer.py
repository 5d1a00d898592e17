from __future__ import annotations

import io
import json

import numpy as np
import pytest

from kai.ml.likeness import NearestCentre, NearestMean
from kai.ml.recognizer import NotEnoughPhotos, Recognizer, train_recognizer


def _clusters(
    labels: list[str], per_label: int, *, dimension: int, spread: float, seed: int
) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (len(labels), dimension))
    rows, names = [], []
    for index, label in enumerate(labels):
        for _ in range(per_label):
            rows.append(centres[index] + rng.normal(0, spread, dimension))
            names.append(label)
    found = np.asarray(rows)
    return found / np.linalg.norm(found, axis=1, keepdims=True), names


def test_training_reports_validation_metrics_and_recognizes_new_photos() -> None:
    labels = ["marble", "oak", "slate", "terrazzo"]
    network, names = _clusters(labels, 12, dimension=32, spread=0.3, seed=1)
    # A second, weaker backbone: the same clusters, blurred.
    descriptor, _ = _clusters(labels, 12, dimension=8, spread=1.5, seed=1)

    trained = train_recognizer(
        {"network": network, "descriptor": descriptor},
        names,
        standardize={"network": False, "descriptor": True},
    )

    metrics = trained.metrics
    assert metrics["accuracy"] >= 0.95
    assert metrics["labels"] == labels
    assert np.asarray(metrics["confusion_matrix"]).sum() == 48
    assert [row["support"] for row in metrics["per_class"]] == [12, 12, 12, 12]
    assert metrics["validation"] == {"method": "stratified k-fold", "folds": 5, "photos": 48}
    assert sum(metrics["votes"].values()) == pytest.approx(1.0)
    assert metrics["calibration"]["log_loss_after"] <= metrics["calibration"]["log_loss_before"]

    recognizer = trained.recognizer
    fresh, fresh_names = _clusters(labels, 3, dimension=32, spread=0.3, seed=1)
    fresh_descriptor, _ = _clusters(labels, 3, dimension=8, spread=1.5, seed=1)
    found = recognizer.probabilities({"network": fresh, "descriptor": fresh_descriptor})
    assert found.shape == (12, 4)
    assert np.allclose(found.sum(axis=1), 1.0)
    assert [labels[i] for i in found.argmax(axis=1)] == fresh_names


def _away_from(centres: np.ndarray) -> np.ndarray:
    """A unit row far from every one of `centres`."""
    stranger = np.zeros((1, centres.shape[1]))
    stranger[0, 0] = 1.0
    stranger = stranger - centres.mean(axis=0)
    found: np.ndarray = stranger / np.linalg.norm(stranger)
    return found


def _centres(recognizer: Recognizer, backbone: str) -> np.ndarray:
    (check,) = (
        check
        for check in recognizer.likeness
        if isinstance(check, NearestCentre) and check.backbone == backbone
    )
    return check.centres


def test_a_photo_unlike_the_training_set_is_told_apart() -> None:
    network, names = _clusters(["brick", "cork"], 10, dimension=16, spread=0.2, seed=2)
    recognizer = train_recognizer(
        {"network": network}, names, standardize={"network": False}
    ).recognizer

    stranger = _away_from(_centres(recognizer, "network"))

    assert not recognizer.unlike_training({"network": network[:1]})[0]
    assert recognizer.unlike_training({"network": stranger})[0]


def test_a_photo_unlike_the_training_set_by_any_backbone_is_told_apart() -> None:
    labels = ["marble", "oak", "slate"]
    network, names = _clusters(labels, 12, dimension=16, spread=0.2, seed=6)
    descriptor, _ = _clusters(labels, 12, dimension=8, spread=0.2, seed=7)
    trained = train_recognizer(
        {"network": network, "descriptor": descriptor},
        names,
        standardize={"network": False, "descriptor": True},
    )
    recognizer = trained.recognizer

    # The network sees a training photo; the descriptor sees nothing it was trained on (as a
    # noise image can look like grain to a network, and nothing like it to a descriptor).
    stranger = {
        "network": network[:1],
        "descriptor": _away_from(_centres(recognizer, "descriptor")),
    }
    known = {"network": network[:1], "descriptor": descriptor[:1]}

    assert recognizer.unlike_training(stranger).tolist() == [True]
    assert recognizer.unlike_training(known).tolist() == [False]
    unknown = trained.metrics["unknown"]
    assert [(check["backbone"], check["kind"]) for check in unknown["checks"]] == [
        ("network", "cosine"),
        ("descriptor", "cosine"),
        ("descriptor", "mahalanobis"),  # twelve photos a label: enough to measure their spread
    ]
    # About one in a hundred of photos like the training ones, by each check.
    assert unknown["held_out_unlike"] <= 0.05


def test_a_descriptor_sees_a_part_unlike_every_photo_though_the_whole_looks_alike() -> None:
    labels = ["granite", "oak", "slate"]
    rng = np.random.default_rng(10)
    descriptor, names = _clusters(labels, 12, dimension=8, spread=0.05, seed=10)
    # A part that every photo has nearly alike (in a descriptor: the share of irregular fine
    # patterns, low in any photo, high in pixel noise).
    steady = np.hstack([descriptor, 0.05 + rng.normal(0, 0.002, (len(names), 1))])
    recognizer = Recognizer.from_bytes(
        train_recognizer(
            {"descriptor": steady}, names, standardize={"descriptor": True}
        ).recognizer.to_bytes()
    )
    cosine, spread = recognizer.likeness
    assert isinstance(cosine, NearestCentre)
    assert isinstance(spread, NearestMean)
    noisy = steady[:1].copy()
    noisy[0, -1] = 0.3

    # Alike as a whole (the part is small beside the others), unlike in that part.
    assert not cosine.unlike(noisy)[0]
    assert spread.unlike(noisy)[0]
    assert recognizer.unlike_training({"descriptor": noisy}).tolist() == [True]
    assert recognizer.unlike_training({"descriptor": steady[1:4]}).tolist() == [False] * 3


def _stored_before_likeness_by_every_backbone(recognizer: Recognizer, threshold: float) -> bytes:
    """The recognizer as a version trained before every backbone measured likeness stored it:
    the first backbone's label centres and one threshold."""
    with np.load(io.BytesIO(recognizer.to_bytes()), allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files if not name.startswith("likeness")}
    described = json.loads(arrays["description"].tobytes().decode())
    del described["likeness"]
    described["novelty_threshold"] = threshold
    arrays["description"] = np.frombuffer(json.dumps(described).encode(), dtype=np.uint8)
    arrays["centres"] = _centres(recognizer, "network")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def test_a_version_stored_before_keeps_the_rule_it_was_trained_with() -> None:
    labels = ["marble", "oak", "slate"]
    network, names = _clusters(labels, 10, dimension=16, spread=0.2, seed=8)
    descriptor, _ = _clusters(labels, 10, dimension=8, spread=0.2, seed=9)
    embeddings = {"network": network, "descriptor": descriptor}
    recognizer = train_recognizer(
        embeddings, names, standardize={"network": False, "descriptor": True}
    ).recognizer

    restored = Recognizer.from_bytes(_stored_before_likeness_by_every_backbone(recognizer, 0.3))

    (check,) = restored.likeness
    assert isinstance(check, NearestCentre)
    assert (check.backbone, check.threshold) == ("network", 0.3)
    assert restored.novelty_threshold == 0.3
    assert np.allclose(check.centres, _centres(recognizer, "network"))
    assert np.allclose(restored.probabilities(embeddings), recognizer.probabilities(embeddings))
    # Only the first backbone is asked: a descriptor far from everything changes nothing.
    far = _away_from(_centres(recognizer, "descriptor"))
    assert restored.unlike_training({"network": network[:1], "descriptor": far}).tolist() == [False]
    assert restored.unlike_training({"network": _away_from(check.centres)}).tolist() == [True]


def test_a_recognizer_survives_storage_as_arrays_only() -> None:
    network, names = _clusters(["a", "b", "c"], 6, dimension=10, spread=0.3, seed=3)
    descriptor, _ = _clusters(["a", "b", "c"], 6, dimension=5, spread=0.5, seed=4)
    embeddings = {"network": network, "descriptor": descriptor}
    recognizer = train_recognizer(
        embeddings, names, standardize={"network": False, "descriptor": True}
    ).recognizer

    restored = Recognizer.from_bytes(recognizer.to_bytes())

    assert restored.labels == recognizer.labels
    assert restored.temperature == recognizer.temperature
    assert [(check.backbone, check.threshold) for check in restored.likeness] == [
        (check.backbone, check.threshold) for check in recognizer.likeness
    ]
    assert restored.unlike_training(embeddings).tolist() == (
        recognizer.unlike_training(embeddings).tolist()
    )
    assert np.allclose(restored.probabilities(embeddings), recognizer.probabilities(embeddings))


def test_two_labels_are_enough_and_use_one_row_of_weights() -> None:
    network, names = _clusters(["glass", "steel"], 4, dimension=6, spread=0.2, seed=5)
    embeddings = {"network": network}

    recognizer = train_recognizer(embeddings, names, standardize={"network": False}).recognizer

    assert recognizer.heads[0].weights.shape == (1, 6)
    found = recognizer.probabilities(embeddings)
    assert [recognizer.labels[i] for i in found.argmax(axis=1)] == names


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["oak", "oak", "oak"], "at least two labels"),
        (["oak", "oak", "slate"], "slate has one"),
    ],
)
def test_too_few_photos_are_refused_with_a_reason(names: list[str], message: str) -> None:
    rows = np.eye(3)

    with pytest.raises(NotEnoughPhotos, match=message):
        train_recognizer({"network": rows}, names, standardize={"network": False})


def test_a_first_backbone_out_of_the_vote_is_still_asked_for_likeness() -> None:
    labels = ["marble", "oak", "slate"]
    noise = np.random.default_rng(5).normal(0, 1, (30, 6))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    network, names = _clusters(labels, 10, dimension=16, spread=0.2, seed=5)

    recognizer = train_recognizer(
        {"noise": noise, "network": network},
        names,
        standardize={"noise": False, "network": False},
    ).recognizer

    assert recognizer.heads[0].vote == 0  # a backbone that tells nothing apart gets no say
    assert [check.backbone for check in recognizer.likeness] == ["noise", "network"]
    assert recognizer.backbones == ["noise", "network"]
