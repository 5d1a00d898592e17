"""The whole recognition path as a user meets it: a catalog with photos, a model trained on
it by the worker, a new photo recognized with similar materials, feedback that the next
training learns from, and bad uploads refused without a trace."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from typing import Any

import numpy as np
import pytest
from httpx import AsyncClient
from PIL import Image
from sqlalchemy import select

from kai.kit.db import act_for, scoped_transaction
from kai.ml.models import ModelVersion
from kai.recognition import service
from kai.recognition.models import Recognition
from kai.runtime import Runtime
from kai.search.models import ImageFeatures
from kai.vision import non_materials
from tests.catalog.factories import create_category, create_material
from tests.catalog.test_images import png_bomb
from tests.identity.factories import Member, member
from tests.recognition.test_projects import _recognition
from tests.vision.textures import checks, grain, jpeg, material_set, stripes

pytestmark = pytest.mark.database

WAIT_SECONDS = 120.0
CATEGORIES = {
    "brushed_brass": "Brushed brass",
    "blue_mosaic": "Blue mosaic",
    "grey_terrazzo": "Grey terrazzo",
}


async def _finished(
    client: AsyncClient, owner: Member, kind: str, count: int = 1
) -> list[dict[str, Any]]:
    """The jobs of `kind` once `count` of them finished (newest first)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        response = await client.get(
            "/api/v1/jobs", params={"kind": kind, "limit": 100}, headers=owner.headers
        )
        assert response.status_code == 200, response.text
        jobs = response.json()["items"]
        done = [job for job in jobs if job["status"] in ("succeeded", "failed")]
        if len(done) >= count and len(done) == len(jobs):
            return done
        await asyncio.sleep(0.25)
    raise AssertionError(f"{count} {kind} job(s) did not finish within {WAIT_SECONDS} s")


def _items(listed: Any) -> list[dict[str, Any]]:
    """A list's entries, whether it answers a page or a bare array."""
    return listed["items"] if isinstance(listed, dict) else listed


async def _catalog(client: AsyncClient, owner: Member) -> dict[str, dict[str, Any]]:
    """Three categories, two materials each, three photos of each material."""
    photos = material_set(6)
    materials = {}
    for key, name in CATEGORIES.items():
        category = await create_category(client, owner, name)
        for index in range(2):
            material = await create_material(
                client, owner, category_id=category["id"], name=f"{name} {index + 1}"
            )
            materials[f"{key}{index}"] = {**material, "category": category}
            for photo in photos[key][index * 3 : index * 3 + 3]:
                uploaded = await client.post(
                    f"/api/v1/materials/{material['id']}/images",
                    files={"file": ("photo.jpg", photo, "image/jpeg")},
                    headers=owner.headers,
                )
                assert uploaded.status_code == 201, uploaded.text
    await _finished(client, owner, "catalog.image_derivatives", 18)
    return materials


async def _train(
    client: AsyncClient, owner: Member, runs: int = 1, **options: Any
) -> dict[str, Any]:
    started = await client.post("/api/v1/models", json=options, headers=owner.headers)
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "training"
    jobs = await _finished(client, owner, "ml.train_model", runs)
    assert jobs[0]["status"] == "succeeded", jobs[0]
    version = await client.get(f"/api/v1/models/{started.json()['id']}", headers=owner.headers)
    body: dict[str, Any] = version.json()
    return body


def _png(pixels: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def _brass_photo() -> bytes:
    return jpeg(stripes(300, period=8, angle=0.25, colour=(200, 160, 70), seed=99))


async def test_a_photo_is_recognized_after_training_and_feedback_feeds_the_next_training(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    materials = await _catalog(client, owner)

    untrained = await client.post(
        "/api/v1/recognitions",
        files={"file": ("brass.jpg", _brass_photo(), "image/jpeg")},
        headers=owner.headers,
    )
    assert untrained.status_code == 409
    assert untrained.json()["type"].endswith("no-trained-model")
    assert "Train a model first" in untrained.json()["detail"]

    version = await _train(client, owner)
    assert version["status"] == "ready"
    assert version["active"] is True
    assert version["number"] == 1
    assert sorted(label["label"] for label in version["labels"]) == sorted(CATEGORIES.values())
    assert all(label["photos"] == 6 for label in version["labels"])
    assert version["metrics"]["accuracy"] >= 0.9
    assert len(version["metrics"]["confusion_matrix"]) == 3
    assert {backbone["name"] for backbone in version["backbones"]} == {
        "efficientnet-lite0",
        "handcrafted",
    }
    await _finished(client, owner, "search.embed_images")

    project = await client.post(
        "/api/v1/projects", json={"name": "Showroom"}, headers=owner.headers
    )
    answered = await client.post(
        "/api/v1/recognitions",
        files={"file": ("brass.jpg", _brass_photo(), "image/jpeg")},
        data={"top_k": "2", "similar_k": "3", "project_id": project.json()["id"]},
        headers=owner.headers,
    )

    assert answered.status_code == 201, answered.text
    recognition = answered.json()
    assert recognition["unknown"] is False
    assert recognition["label"] == "Brushed brass"
    assert recognition["category_id"] == materials["brushed_brass0"]["category"]["id"]
    assert len(recognition["predictions"]) == 2
    assert (
        recognition["predictions"][0]["confidence"] >= recognition["predictions"][1]["confidence"]
    )
    assert recognition["model_version"] == {"id": version["id"], "number": 1}
    assert recognition["project_id"] == project.json()["id"]
    # Every id KAI makes is time-ordered (UUIDv7): recognitions and images like the rest.
    assert uuid.UUID(recognition["id"]).version == 7
    images = await client.get(
        f"/api/v1/materials/{materials['brushed_brass0']['id']}/images", headers=owner.headers
    )
    image_ids = [image["id"] for image in _items(images.json())]
    assert len(image_ids) == 3
    assert {uuid.UUID(image_id).version for image_id in image_ids} == {7}
    similar = recognition["similar"]
    assert len(similar) == 3
    brass_ids = {materials["brushed_brass0"]["id"], materials["brushed_brass1"]["id"]}
    assert similar[0]["material_id"] in brass_ids
    assert similar[0]["score"] >= similar[-1]["score"]
    assert len({entry["material_id"] for entry in similar}) == 3  # one entry a material
    thumbnail = await client.get(similar[0]["image_url"], headers=owner.headers)
    assert thumbnail.status_code == 200
    for step in ("decode", "views", "embed.efficientnet-lite0", "classify", "similar", "store"):
        assert recognition["timings"][step] >= 0
    assert recognition["timings"]["total"] >= recognition["timings"]["classify"]

    listed = await client.get("/api/v1/recognitions", headers=owner.headers)
    assert [item["id"] for item in listed.json()["items"]] == [recognition["id"]]
    by_label = await client.get(
        "/api/v1/recognitions", params={"label": "Blue mosaic"}, headers=owner.headers
    )
    assert by_label.json()["items"] == []
    # The copy shown is made when it is first asked for (not in the recognition's time), and
    # kept for every later showing.
    kept = service.shown_key(owner.organization_id, uuid.UUID(recognition["id"]))
    assert not await committed_runtime.storage.exists(kept)
    shown = await client.get(recognition["image_url"], headers=owner.headers)
    assert shown.status_code == 200
    assert shown.headers["content-type"] == "image/webp"
    assert shown.content == await committed_runtime.storage.read(kept)

    # "Wrong: it is blue mosaic": kept as a labelled photo for the next training.
    said = await client.post(
        f"/api/v1/recognitions/{recognition['id']}/feedback",
        json={"correct": False, "category_id": materials["blue_mosaic0"]["category"]["id"]},
        headers=owner.headers,
    )
    assert said.status_code == 201, said.text
    assert said.json()["correct"] is False

    # What the recognition computed of its photo is in the feature store: the next training
    # reads it rather than embedding the photo again.
    async with scoped_transaction(
        committed_runtime.session_factory, organization_id=owner.organization_id
    ) as session:
        stored = await session.get(Recognition, uuid.UUID(recognition["id"]))
        assert stored is not None
        kept_features = (
            await session.scalars(
                select(ImageFeatures.features_of).where(ImageFeatures.image_key == stored.image_key)
            )
        ).all()
    assert sorted(named.split("|")[1] for named in kept_features) == ["plain", "plain"]
    assert {named.split("|")[0] for named in kept_features} == {
        backbone["fingerprint"] for backbone in version["backbones"]
    }

    second = await _train(client, owner, runs=2)
    assert second["number"] == 2
    assert second["active"] is True
    photos = {label["label"]: label["photos"] for label in second["labels"]}
    assert photos["Blue mosaic"] == 7
    assert second["metrics"]["validation"]["photos"] == 19
    first = await client.get(f"/api/v1/models/{version['id']}", headers=owner.headers)
    assert first.json()["active"] is False


async def test_thresholds_decide_when_the_answer_is_unknown(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    await _catalog(client, owner)
    # Trained with test-time augmentation: a photo and its mirror image are answered alike.
    version = await _train(client, owner, test_time_augmentation=True)
    assert version["options"]["test_time_augmentation"] is True
    # Half brass, half mosaic: an ambiguous photo, whose mirror is another photo.
    tile = checks(300, cell=16, colour=(60, 90, 190), seed=7)
    tile[:, :150] = stripes(300, period=8, angle=0.25, colour=(200, 160, 70), seed=8)[:, :150]
    answers = []
    for pixels in (tile, tile[:, ::-1].copy()):
        answered = await client.post(
            "/api/v1/recognitions",
            files={"file": ("tile.png", _png(pixels), "image/png")},
            headers=owner.headers,
        )
        assert answered.status_code == 201, answered.text
        answers.append(answered.json()["predictions"])
    assert answers[0] == answers[1]

    strict = await client.patch(
        "/api/v1/recognitions/settings",
        json={"confidence_threshold": 1.0},
        headers=owner.headers,
    )
    assert strict.status_code == 200, strict.text
    answered = await client.post(
        "/api/v1/recognitions",
        files={
            "file": (
                "tile.jpg",
                jpeg(checks(300, cell=16, colour=(60, 90, 190), seed=7)),
                "image/jpeg",
            )
        },
        headers=owner.headers,
    )

    recognition = answered.json()
    assert recognition["unknown"] is True
    assert recognition["unknown_reason"] == "low_confidence"
    assert recognition["label"] is None
    assert recognition["predictions"][0]["label"] == "Blue mosaic"
    unknowns = await client.get(
        "/api/v1/recognitions", params={"unknown": "true"}, headers=owner.headers
    )
    assert unknowns.json()["items"][0]["id"] == recognition["id"]
    assert all(item["unknown"] for item in unknowns.json()["items"])
    # "Right" cannot confirm an answer that was not given.
    confirmed = await client.post(
        f"/api/v1/recognitions/{recognition['id']}/feedback",
        json={"correct": True},
        headers=owner.headers,
    )
    assert confirmed.status_code == 422

    # An upgrade brings another EfficientNet export than the one the version was trained on:
    # its heads would read the new embeddings wrongly, so it answers nothing until retrained.
    async with committed_runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        trained = await session.get(ModelVersion, uuid.UUID(version["id"]))
        assert trained is not None
        trained.backbones = [
            {**entry, "fingerprint": entry["fingerprint"] + ":before"}
            for entry in trained.backbones
        ]
    outdated = await client.post(
        "/api/v1/recognitions",
        files={"file": ("tile.png", _png(tile), "image/png")},
        headers=owner.headers,
    )
    assert outdated.status_code == 409
    assert outdated.json()["type"].endswith("model-outdated")
    assert "Train a new version" in outdated.json()["detail"]


def _plainly_not_materials() -> dict[str, bytes]:
    """Colour noise, a black-and-white checkerboard and a flat colour, as PNG files."""
    rows, columns = np.mgrid[0:300, 0:300]
    board = (((rows // 30 + columns // 30) % 2) * 255).astype(np.uint8)
    return {
        "noise.png": _png(np.random.default_rng(0).integers(0, 256, (300, 300, 3), np.uint8)),
        "checkerboard.png": _png(np.repeat(board[..., None], 3, axis=2)),
        "flat.png": _png(np.full((300, 300, 3), (180, 60, 60), np.uint8)),
    }


async def test_what_is_plainly_not_a_material_is_unknown(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    await _catalog(client, owner)
    version = await _train(client, owner)
    # The version says how often it would call a photo like its own unknown, and how many
    # generated non-materials (noise, patterns, flat colours, gradients, text) it catches.
    unknown = version["metrics"]["unknown"]
    assert [(check["backbone"], check["kind"]) for check in unknown["checks"]] == [
        ("efficientnet-lite0", "cosine"),
        ("handcrafted", "cosine"),
    ]
    assert unknown["held_out_unlike"] <= 0.1
    assert unknown["non_materials"]["images"] == 4 * len(non_materials.KINDS)
    assert unknown["non_materials"]["unlike"] >= 0.9
    assert version["novelty_threshold"] == pytest.approx(
        unknown["checks"][0]["threshold"], abs=1e-4
    )
    strangers = _plainly_not_materials()
    strangers["text.png"] = _png(non_materials.text(np.random.default_rng(3), 300))
    # Photos of the trained materials, none of them a training photo.
    photos = {
        "brass.jpg": _brass_photo(),
        "mosaic.jpg": jpeg(checks(300, cell=16, colour=(60, 90, 190), seed=7)),
        "terrazzo.jpg": jpeg(grain(300, blur=6, colour=(150, 150, 145), seed=33)),
    }

    answers = {}
    for name, data in {**strangers, **photos}.items():
        answered = await client.post(
            "/api/v1/recognitions",
            files={"file": (name, data, "image/png" if name.endswith("png") else "image/jpeg")},
            headers=owner.headers,
        )
        assert answered.status_code == 201, answered.text
        answers[name] = answered.json()

    for name in strangers:
        assert answers[name]["unknown"] is True, (name, answers[name]["predictions"])
        assert answers[name]["unknown_reason"] == "unlike_training"
        assert answers[name]["label"] is None
        assert answers[name]["predictions"]  # what it would have said is still shown
    assert {name: answers[name]["label"] for name in photos} == {
        "brass.jpg": "Brushed brass",
        "mosaic.jpg": "Blue mosaic",
        "terrazzo.jpg": "Grey terrazzo",
    }
    unknowns = await client.get(
        "/api/v1/recognitions", params={"unknown": "true"}, headers=owner.headers
    )
    assert {item["file_name"] for item in unknowns.json()["items"]} == set(strangers)

    # A batch judges its photos alike.
    started = await client.post(
        "/api/v1/recognition-batches",
        files=[
            ("files", (name, data, "image/png" if name.endswith("png") else "image/jpeg"))
            for name, data in {**_plainly_not_materials(), "brass.jpg": _brass_photo()}.items()
        ],
        headers=owner.headers,
    )
    assert started.status_code == 202, started.text
    (job,) = await _finished(client, owner, "recognition.recognize_batch")
    assert job["status"] == "succeeded", job
    results = await client.get(
        f"/api/v1/recognition-batches/{started.json()['id']}/results", headers=owner.headers
    )
    assert [
        (row["file_name"], row["unknown"], row["unknown_reason"]) for row in results.json()["items"]
    ] == [
        ("noise.png", True, "unlike_training"),
        ("checkerboard.png", True, "unlike_training"),
        ("flat.png", True, "unlike_training"),
        ("brass.jpg", False, None),
    ]


BAD_UPLOADS = [
    ("report.jpg", b"%PDF-1.7\n1 0 obj << >> endobj", 422),
    ("empty.jpg", b"", 422),
    ("cut.jpg", jpeg(grain(400, blur=5, colour=(120, 120, 120), seed=3))[:2000], 422),
    ("bomb.png", png_bomb(), 413),
    ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', 422),
]


async def test_bad_uploads_are_refused_and_leave_nothing_behind(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    await _catalog(client, owner)
    await _train(client, owner)
    assert owner.organization is not None

    for name, data, status in BAD_UPLOADS:
        refused = await client.post(
            "/api/v1/recognitions",
            files={"file": (name, data, "image/jpeg")},
            headers=owner.headers,
        )

        assert refused.status_code == status, (name, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    listed = await client.get("/api/v1/recognitions", headers=owner.headers)
    assert listed.json()["items"] == []
    prefix = f"{owner.organization.id}/users/"
    assert [stored async for stored in committed_runtime.storage.list(prefix)] == []


async def test_a_photo_is_shown_from_a_copy_decoded_once(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    organization_id = owner.organization_id
    original = jpeg(grain(1600, blur=3, colour=(150, 120, 90), seed=5))
    # Only its photo is stored, as a recognition leaves it.
    recognition = Recognition(
        id=uuid.uuid4(),
        organization_id=organization_id,
        image_key=f"{organization_id}/users/uploads/recognitions/old.jpg",
        sha256="0" * 64,
        content_type="image/jpeg",
        width=1600,
        height=1600,
        unknown=True,
        unknown_reason="low_confidence",
        predictions=[],
        similar=[],
        timings={},
    )
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=organization_id)
        session.add(recognition)
    await runtime.storage.put(recognition.image_key, original)
    shown_key = service.shown_key(organization_id, recognition.id)
    assert not await runtime.storage.exists(shown_key)
    url = f"/api/v1/recognitions/{recognition.id}/image"

    first = await client.get(url, headers=owner.headers)

    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(first.content)).size == (1024, 1024)
    # Made once, and kept: the next showing reads it, and decodes nothing.
    assert await runtime.storage.read(shown_key) == first.content
    await runtime.storage.delete(recognition.image_key)
    second = await client.get(url, headers=owner.headers)
    assert second.status_code == 200
    assert second.content == first.content


async def test_settings_change_only_what_is_sent(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    url = "/api/v1/recognitions/settings"
    whole = await client.put(
        url,
        json={"confidence_threshold": 0.5, "near_duplicate_threshold": 0.9},
        headers=owner.headers,
    )
    assert whole.status_code == 200, whole.text
    # The PUT of one threshold reset the other to its default: PUT is the whole
    # settings now, and PATCH the way to change one.
    half = await client.put(url, json={"confidence_threshold": 0.6}, headers=owner.headers)
    assert half.status_code == 422
    changed = await client.patch(url, json={"confidence_threshold": 0.6}, headers=owner.headers)
    assert changed.json() == {"confidence_threshold": 0.6, "near_duplicate_threshold": 0.9}
    read = await client.get(url, headers=owner.headers)
    assert read.json() == {"confidence_threshold": 0.6, "near_duplicate_threshold": 0.9}


async def test_recognitions_are_filtered_by_label_in_any_case(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    tiles = await _recognition(runtime, owner, label="Tiles")
    creme = await _recognition(runtime, owner, label="Crème Marfil")
    await _recognition(runtime, owner, label="Tile adhesive")

    async def labelled(label: str) -> list[str]:
        found = await client.get(
            "/api/v1/recognitions", params={"label": label}, headers=owner.headers
        )
        assert found.status_code == 200, found.text
        return [item["id"] for item in found.json()["items"]]

    assert await labelled("tiles") == [tiles]
    assert await labelled("TILES") == [tiles]
    assert await labelled("Tiles") == [tiles]
    assert await labelled("CRÈME MARFIL") == [creme]
    assert await labelled("creme marfil") == [creme]
    # The whole label, not a part of it.
    assert await labelled("tile") == []
