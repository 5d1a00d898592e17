"""`kai dataset import`, `kai train` and `kai recognize` from a terminal: a folder of labelled
photos to an answer, against the test database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer.main
from httpx import AsyncClient
from typer.core import TyperGroup

from kai.cli import app
from kai.runtime import Runtime
from tests.commands import run_kai
from tests.identity.factories import member
from tests.vision.textures import jpeg, material_set, stripes

pytestmark = pytest.mark.database


async def test_a_folder_of_photos_is_imported_trained_on_and_recognized(
    committed_runtime: Runtime, committed_client: AsyncClient, tmp_path: Path
) -> None:
    owner = await member(committed_runtime, committed_client)
    assert owner.organization is not None
    slug = owner.organization.slug
    settings = committed_runtime.settings
    folder = tmp_path / "samples"
    for label, photos in material_set(5).items():
        (folder / label).mkdir(parents=True)
        for index, data in enumerate(photos):
            (folder / label / f"{index}.jpg").write_bytes(data)
    (folder / "brushed_brass" / "Thumbs.db").write_bytes(b"\x00\x01 not a photo")

    imported = run_kai(settings, "dataset", "import", str(folder), "--organization", slug, "--json")

    assert imported.returncode == 0, imported.stderr
    report = json.loads(imported.stdout)
    assert report["labels"] == 3
    assert report["categories_created"] == 3
    assert report["materials_created"] == 3
    assert report["images_added"] == 15
    assert report["embedded"] == 15
    assert "skipped brushed_brass/Thumbs.db" in imported.stderr
    again = run_kai(settings, "dataset", "import", str(folder), "--organization", slug, "--json")
    assert json.loads(again.stdout)["duplicates"] == 15
    assert json.loads(again.stdout)["materials_created"] == 0

    trained = run_kai(settings, "train", "--organization", slug, "--json")

    assert trained.returncode == 0, trained.stderr
    version = json.loads(trained.stdout)
    assert version["status"] == "ready"
    assert version["active"] is True
    assert sorted(label["label"] for label in version["labels"]) == [
        "Blue mosaic",
        "Brushed brass",
        "Grey terrazzo",
    ]
    photo = tmp_path / "new-brass.jpg"
    photo.write_bytes(jpeg(stripes(320, period=8, angle=0.2, colour=(200, 160, 70), seed=42)))

    answered = run_kai(settings, "recognize", str(photo), "--organization", slug, "--json")

    assert answered.returncode == 0, answered.stderr
    answer = json.loads(answered.stdout)
    assert answer["label"] == "Brushed brass"
    assert answer["similar"][0]["name"] == "Brushed brass"
    readable = run_kai(
        settings, "recognize", str(photo), str(tmp_path / "missing.jpg"), "--organization", slug
    )
    assert readable.returncode == 1
    assert "Brushed brass" in readable.stdout
    assert "missing.jpg" in readable.stderr


async def test_training_without_photos_says_why(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    owner = await member(committed_runtime, committed_client)
    assert owner.organization is not None

    trained = run_kai(
        committed_runtime.settings, "train", "--organization", owner.organization.slug
    )

    assert trained.returncode == 1
    assert "at least two labels" in trained.stderr


async def test_training_held_back_by_a_label_of_one_photo_says_which_option_gets_past_it(
    committed_runtime: Runtime, committed_client: AsyncClient, tmp_path: Path
) -> None:
    owner = await member(committed_runtime, committed_client)
    assert owner.organization is not None
    slug = owner.organization.slug
    settings = committed_runtime.settings
    folder = tmp_path / "samples"
    for label, photos in material_set(2).items():
        (folder / label).mkdir(parents=True)
        for index, data in enumerate(photos):
            (folder / label / f"{index}.jpg").write_bytes(data)
    # A material per photo: by material, every label has one photo; by category, two.
    imported = run_kai(
        settings, "dataset", "import", str(folder), "--organization", slug,
        "--materials", "image", "--json",
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr

    trained = run_kai(settings, "train", "--organization", slug, "--label-by", "material", "--json")

    assert trained.returncode == 1
    assert trained.stdout == ""
    said = trained.stderr.strip().splitlines()[-1]
    assert said.startswith("error: Every label needs at least two photos; ")
    assert said.endswith(
        "Add photos, or train with --label-by category: every label then has at least two."
    )
    # The version is not left "training": it failed, with the reason the API gives.
    listed = await committed_client.get("/api/v1/models", headers=owner.headers)
    [version] = listed.json()["items"]
    assert version["status"] == "failed"
    assert version["error"].endswith(
        'train with label_by "category": every label then has at least two.'
    )


def test_kai_train_explains_each_option_in_a_sentence() -> None:
    command = typer.main.get_command(app)
    assert isinstance(command, TyperGroup)
    for option in command.commands["train"].params:
        explained = getattr(option, "help", None) or ""
        assert explained[:1].isupper(), option.name
        assert explained.endswith("."), option.name


async def test_kai_train_fine_tunes_a_network_when_asked(
    committed_runtime: Runtime, committed_client: AsyncClient, tmp_path: Path
) -> None:
    owner = await member(committed_runtime, committed_client)
    assert owner.organization is not None
    slug = owner.organization.slug
    settings = committed_runtime.settings
    folder = tmp_path / "samples"
    for label, photos in material_set(4).items():
        (folder / label).mkdir(parents=True)
        for index, data in enumerate(photos):
            (folder / label / f"{index}.jpg").write_bytes(data)
    imported = run_kai(settings, "dataset", "import", str(folder), "--organization", slug)
    assert imported.returncode == 0, imported.stderr
    refused = run_kai(settings, "train", "--organization", slug, "--fine-tune", "resnet-50")
    assert refused.returncode == 1
    assert "efficientnet-lite0" in refused.stderr

    trained = run_kai(
        settings, "train", "--organization", slug, "--backbone", "handcrafted",
        "--fine-tune", "efficientnet-lite0", "--epochs", "1", "--json",
    )  # fmt: skip

    assert trained.returncode == 0, trained.stderr
    version = json.loads(trained.stdout)
    # The fine-tuned network joins the descriptor, first.
    assert [backbone["name"] for backbone in version["backbones"]] == [
        "custom:fine-tuned-v1",
        "handcrafted",
    ]
    assert version["metrics"]["fine_tuning"]["photos"] == 12
    assert version["metrics"]["fine_tuning"]["export_difference"] < 1e-3
