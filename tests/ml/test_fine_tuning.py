"""Fine-tuning: a network fine-tuned on an organization's photos (PyTorch in a child, on the
CPU here), exported to ONNX that answers as PyTorch does, kept as the organization's image
model, and recognized with like any backbone. On a tiny generated set: the figures that
matter come from `benchmarks/backbones.py`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from httpx import AsyncClient

from kai.runtime import Runtime
from kai.vision.backbones import OnnxBackbone, efficientnet, get_backbone
from kai.vision.preprocessing import prepare_views
from tests.identity.factories import member
from tests.recognition.test_recognitions import _brass_photo, _catalog, _train
from tests.vision.textures import material_set


def _fine_tune(tmp_path: Path, **settings: Any) -> tuple[Path, dict[str, Any]]:
    photos = []
    for label, images in material_set(8, size=128).items():
        for index, data in enumerate(images):
            path = tmp_path / f"{label}-{index}.jpg"
            path.write_bytes(data)
            photos.append({"path": str(path), "label": label})
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"photos": photos, **settings}))
    target = tmp_path / "tuned.onnx"
    finished = subprocess.run(
        [sys.executable, "-m", "kai.vision.fine_tune", str(manifest), str(target)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    report: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])["report"]
    return target, report


def test_a_fine_tuned_network_is_exported_as_pytorch_answers_and_embeds(
    tmp_path: Path,
) -> None:
    target, report = _fine_tune(
        tmp_path, epochs=2, trainable_blocks=1, holdout=0.25, batch_size=8, probe_steps=50
    )

    assert report["network"] == "efficientnet-lite0"
    assert report["device"] == "cpu"
    assert report["labels"] == ["blue_mosaic", "brushed_brass", "grey_terrazzo"]
    # A quarter of each label's eight photos never trained on, and measured there.
    assert (report["trained_photos"], report["held_out_photos"]) == (18, 6)
    assert 0 <= report["held_out_accuracy"] <= 1
    assert [entry["epoch"] for entry in report["history"]] == [1, 2]
    assert report["export_difference"] < 1e-3

    tuned = OnnxBackbone(target, efficientnet.SPEC)
    frozen = get_backbone(efficientnet.NAME, model_dir=tmp_path / "models")
    photo = prepare_views(_brass_photo(), sides=[224]).views[224]
    mine, imagenet = tuned.embed([photo])[0], frozen.embed([photo])[0]
    assert mine.shape == imagenet.shape == (efficientnet.DIMENSIONS,)
    assert np.isclose(np.linalg.norm(mine), 1.0)
    # The last block learned: the same photo is described otherwise than by ImageNet's weights.
    assert float(mine @ imagenet) < 0.9999
    assert tuned.fingerprint != frozen.fingerprint


def test_fine_tuning_refuses_what_it_cannot_learn_from(tmp_path: Path) -> None:
    (tmp_path / "one.jpg").write_bytes(material_set(1)["blue_mosaic"][0])
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"photos": [{"path": str(tmp_path / "one.jpg"), "label": "a"}]}))
    finished = subprocess.run(
        [sys.executable, "-m", "kai.vision.fine_tune", str(manifest), str(tmp_path / "x.onnx")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert finished.returncode != 0
    assert "at least two labels" in finished.stderr
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.database
async def test_a_version_trained_with_fine_tuning_stands_on_its_own_network(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    await _catalog(client, owner)

    version = await _train(
        client,
        owner,
        backbones=["efficientnet-lite0", "handcrafted"],
        fine_tune={"epochs": 1, "holdout": 0.34},
    )

    assert version["status"] == "ready", version
    assert [backbone["name"] for backbone in version["backbones"]] == [
        "custom:fine-tuned-v1",
        "handcrafted",
    ]
    report = version["metrics"]["fine_tuning"]
    assert report["network"] == "efficientnet-lite0"
    assert report["photos"] == 18
    assert report["held_out_photos"] == 6
    assert report["model_version"] == 1
    assert version["options"]["fine_tune"]["epochs"] == 1
    listed = await client.get("/api/v1/backbones", headers=owner.headers)
    tuned = [entry for entry in listed.json()["items"] if entry["kind"] == "fine-tuned"]
    assert [entry["name"] for entry in tuned] == ["custom:fine-tuned-v1"]
    assert tuned[0]["dimension"] == efficientnet.DIMENSIONS
    assert tuned[0]["fine_tuning"]["model_version_id"] == version["id"]

    answered = await client.post(
        "/api/v1/recognitions",
        files={"file": ("brass.jpg", _brass_photo(), "image/jpeg")},
        headers=owner.headers,
    )
    assert answered.status_code == 201, answered.text
    assert answered.json()["predictions"][0]["label"] == "Brushed brass"
    assert "embed.custom:fine-tuned-v1" in answered.json()["timings"]
    # Kept while the version it was made for stands on it.
    kept = await client.delete("/api/v1/backbones/custom:fine-tuned-v1", headers=owner.headers)
    assert kept.status_code == 409
    assert kept.json()["type"].endswith("image-model-in-use")


@pytest.mark.database
async def test_fine_tuning_options_are_checked_before_anything_is_queued(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    refused: list[dict[str, Any]] = [
        {"fine_tune": {"network": "resnet-50"}},
        {"fine_tune": {"epochs": 0}},
        {"fine_tune": {"epochs": "many"}},
        {"fine_tune": {"holdout": 0.9}},
        {"fine_tune": {"learning_rate": 1}},
        {"fine_tune": "yes"},
    ]
    for options in refused:
        answer = await client.post("/api/v1/models", json=options, headers=owner.headers)
        assert answer.status_code == 422, (options, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    versions = await client.get("/api/v1/models", headers=owner.headers)
    assert versions.json()["items"] == []
