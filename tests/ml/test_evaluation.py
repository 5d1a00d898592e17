from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from kai.cli import app
from kai.ml.heads import vote_weights
from tests.vision.textures import material_set

runner = CliRunner()


def _folder(root: Path, count: int) -> Path:
    for label, photos in material_set(count).items():
        (root / label).mkdir(parents=True)
        for index, data in enumerate(photos):
            (root / label / f"{index}.jpg").write_bytes(data)
    return root


def _environment(tmp_path: Path, model_dir: Path) -> dict[str, str]:
    return {"KAI_DATA_DIR": str(tmp_path / "data"), "KAI_VISION__MODEL_DIR": str(model_dir)}


def test_evaluate_prints_one_json_object_and_saves_the_confusion_matrix(
    tmp_path: Path, model_dir: Path
) -> None:
    images = _folder(tmp_path / "photos", 6)
    (images / "grey_terrazzo" / "notes.txt").write_text("supplier sample, March")
    png = tmp_path / "confusion.png"

    result = runner.invoke(
        app,
        ["evaluate", str(images), "--folds", "3", "--json", "--png", str(png)],
        env=_environment(tmp_path, model_dir),
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["labels"] == ["blue_mosaic", "brushed_brass", "grey_terrazzo"]
    assert report["accuracy"] >= 0.9
    assert 0.0 <= report["macro_f1"] <= 1.0
    assert [row["label"] for row in report["per_class"]] == report["labels"]
    assert all(row["support"] == 6 for row in report["per_class"])
    matrix = np.asarray(report["confusion_matrix"])
    assert matrix.shape == (3, 3)
    assert matrix.sum() == 18
    assert np.trace(matrix) / 18 == pytest.approx(report["accuracy"], abs=1e-3)
    assert set(report["backbone_accuracy"]) == {"efficientnet-lite0", "handcrafted"}
    # The text file was skipped, with a warning, not counted.
    assert report["images"] == 18
    assert report["skipped"][0]["path"] == "grey_terrazzo/notes.txt"
    assert "skipped grey_terrazzo/notes.txt" in result.stderr
    with Image.open(png) as picture:
        assert picture.format == "PNG"
        assert picture.width > 100


def test_evaluate_prints_a_readable_report(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = _folder(tmp_path / "data" / "photos", 4)
    working = tmp_path / "work"
    working.mkdir()
    monkeypatch.chdir(working)

    result = runner.invoke(
        app,
        ["evaluate", str(images), "--folds", "2", "--backbone", "handcrafted"],
        env=_environment(tmp_path, model_dir),
    )

    assert result.exit_code == 0, result.output
    assert "12 images, 3 labels, 2-fold: accuracy" in result.stdout
    assert "brushed_brass" in result.stdout
    assert "confusion matrix saved to" in result.stdout
    # The picture goes to the working directory, never beside the data set.
    assert (working / "photos-confusion.png").is_file()
    assert not (tmp_path / "data" / "photos-confusion.png").exists()


def test_a_second_evaluation_reads_the_embeddings_the_first_kept(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = _folder(tmp_path / "photos", 4)
    monkeypatch.chdir(tmp_path)  # where the confusion matrix goes
    cache = tmp_path / "features"

    def evaluate(*extra: str) -> str:
        result = runner.invoke(
            app,
            ["evaluate", str(images), "--folds", "2", "--cache-dir", str(cache), *extra],
            env=_environment(tmp_path, model_dir),
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    first = evaluate()
    kept = sorted(cache.rglob("*.npy"))
    assert len(kept) == 12 * 2  # each image, by each backbone
    again = evaluate()

    assert first.splitlines()[0] == again.splitlines()[0]  # the same accuracy and macro-F1
    assert "ms an image" in first
    assert again.count("every image from the feature cache") == 2
    assert sorted(cache.rglob("*.npy")) == kept
    # Prepared another way, the images are embedded again, and kept apart.
    mirrored = evaluate("--mirrored")
    assert "every image from the feature cache" not in mirrored
    assert len(list(cache.rglob("*.npy"))) == 12 * 2 * 2


def test_evaluate_says_why_a_set_cannot_be_evaluated(tmp_path: Path, model_dir: Path) -> None:
    images = _folder(tmp_path / "photos", 2)
    env = _environment(tmp_path, model_dir)

    too_few = runner.invoke(app, ["evaluate", str(images), "--folds", "3"], env=env)
    missing = runner.invoke(app, ["evaluate", str(tmp_path / "nowhere")], env=env)
    unknown = runner.invoke(app, ["evaluate", str(images), "--backbone", "resnet"], env=env)

    assert too_few.exit_code == 2
    assert "3 folds need at least 3 images of every label" in too_few.stderr
    assert missing.exit_code == 2
    assert "is not a folder" in missing.stderr
    assert unknown.exit_code == 2
    assert "No backbone named 'resnet'" in unknown.stderr


def test_the_vote_leaves_out_a_member_that_only_adds_mistakes() -> None:
    labels = ["a", "b"] * 10
    right = np.array([[0.9, 0.1] if label == "a" else [0.2, 0.8] for label in labels])
    noisy = np.array([[0.1, 0.9] if i % 3 == 0 else [0.6, 0.4] for i in range(20)])

    assert vote_weights([right, noisy], labels) == [1.0, 0.0]
    assert vote_weights([noisy, right], labels) == [0.0, 1.0]
