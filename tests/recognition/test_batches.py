"""Batches of recognitions: many photos and zips of photos recognized by the worker, a result
per photo as JSON or CSV, and uploads that are not all photos refused whole."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
import zlib
from typing import Any

import pytest
from httpx import AsyncClient
from PIL import ImageFile

from kai.kit.archives import InflateBudget
from kai.kit.db import act_for, scoped_transaction
from kai.kit.images import ImageLimits
from kai.recognition import batches, service
from kai.recognition.models import RecognitionBatch, RecognitionBatchItem
from kai.recognition.tasks import recognize_batch
from kai.runtime import Runtime
from tests.catalog.test_images import png_bomb
from tests.conftest import worker_running
from tests.identity.factories import member
from tests.pages import every_page
from tests.recognition.test_recognitions import _catalog, _finished, _train
from tests.vision.textures import checks, grain, jpeg, stripes

pytestmark = pytest.mark.database


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _png(side: int, pixels: bytes | None = None) -> bytes:
    """A 1-bit PNG of side x side pixels, flat (a few KB whatever its size), or with an IDAT
    chunk of `pixels` as they are."""
    if pixels is None:
        return png_bomb(side)
    whole = png_bomb(1)
    header = whole[: whole.index(b"IDAT") - 4].replace(
        (1).to_bytes(4, "big") * 2, side.to_bytes(4, "big") * 2, 1
    )
    header = header[:29] + (zlib.crc32(header[12:29]) & 0xFFFFFFFF).to_bytes(4, "big")
    idat = len(pixels).to_bytes(4, "big") + b"IDAT" + pixels
    idat += (zlib.crc32(b"IDAT" + pixels) & 0xFFFFFFFF).to_bytes(4, "big")
    return header + idat + whole[whole.index(b"IEND") - 4 :]


def test_an_uploaded_batch_is_checked_by_header_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow's decoding, counted: what a photo's check costs grows with it, not with its bytes.
    loads: list[str | None] = []
    load = ImageFile.ImageFile.load

    def counted(image: ImageFile.ImageFile) -> Any:
        loads.append(image.format)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted)
    # 49 megapixels each, a few KB: about half a processor-second apiece to decode in full.
    flat = _png(7000)
    limits = ImageLimits()
    budget = InflateBudget(100 * 1024 * 1024)
    uploaded = [(f"flat-{number}.png", flat) for number in range(500)]
    uploaded.append(("site.zip", _zip({f"wall-{n}.png": flat for n in range(100)})))
    # Broken pixel data behind a sound header: only decoding would tell.
    uploaded.append(("smudged.png", _png(64, pixels=b"not deflate data")))

    photos = batches.checked_photos(uploaded, limits, budget)

    assert len(photos) == 601
    assert {photo.format for photo in photos} == {"png"}
    assert loads == []
    # Too many pixels is told from the header too, before any decoding.
    with pytest.raises(batches.BatchRejected) as refused:
        batches.checked_photos(
            [("ok.png", flat), ("huge.png", _png(7072))], limits, InflateBudget(1024 * 1024)
        )
    assert [error["loc"][-1] for error in refused.value.errors or []] == ["huge.png"]
    assert "50000000 pixels" in refused.value.errors[0]["msg"]  # type: ignore[index]
    assert loads == []


def _brass(seed: int) -> bytes:
    return jpeg(stripes(256, period=8, angle=0.2, colour=(200, 160, 70), seed=seed))


def _mosaic(seed: int) -> bytes:
    return jpeg(checks(256, cell=15, colour=(60, 90, 190), seed=seed))


async def test_a_batch_of_photos_and_zips_is_recognized_photo_by_photo(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    untrained = await client.post(
        "/api/v1/recognition-batches",
        files=[("files", ("a.jpg", _brass(1), "image/jpeg"))],
        headers=owner.headers,
    )
    assert untrained.status_code == 409
    materials = await _catalog(client, owner)
    await _train(client, owner)
    project = await client.post("/api/v1/projects", json={"name": "Site"}, headers=owner.headers)
    archive = _zip(
        {
            "site/wall.jpg": _mosaic(21),
            "site/floor.jpg": _brass(22),
            "__MACOSX/site/._wall.jpg": b"resource fork",
            "site/.DS_Store": b"finder",
            "site/Thumbs.db": b"explorer",
        }
    )

    started = await client.post(
        "/api/v1/recognition-batches",
        files=[
            ("files", ("brass.jpg", _brass(20), "image/jpeg")),
            ("files", ("mosaic.jpg", _mosaic(23), "image/jpeg")),
            ("files", ("site.zip", archive, "application/zip")),
        ],
        data={"similar_k": "1", "project_id": project.json()["id"]},
        headers=owner.headers,
    )

    assert started.status_code == 202, started.text
    batch = started.json()
    assert batch["total"] == 4
    assert batch["project_id"] == project.json()["id"]
    assert batch["status"] == "queued"
    jobs = await _finished(client, owner, "recognition.recognize_batch")
    assert jobs[0]["status"] == "succeeded", jobs[0]
    finished = (
        await client.get(f"/api/v1/recognition-batches/{batch['id']}", headers=owner.headers)
    ).json()
    assert (finished["status"], finished["done"], finished["failed"]) == ("succeeded", 4, 0)
    results = (
        await client.get(
            f"/api/v1/recognition-batches/{batch['id']}/results", headers=owner.headers
        )
    ).json()["items"]
    assert [row["file_name"] for row in results] == [
        "brass.jpg",
        "mosaic.jpg",
        "site.zip/site/wall.jpg",
        "site.zip/site/floor.jpg",
    ]
    assert [row["label"] for row in results] == [
        "Brushed brass",
        "Blue mosaic",
        "Blue mosaic",
        "Brushed brass",
    ]
    assert all(row["status"] == "recognized" and row["similar_name"] for row in results)
    # Every id KAI makes is time-ordered (UUIDv7), the recognitions a batch makes too.
    assert {uuid.UUID(row["recognition_id"]).version for row in results} == {7}
    assert uuid.UUID(batch["id"]).version == 7
    # The most similar material by name and by code, as a price list or an ERP knows it.
    codes = {material["id"]: material["code"] for material in materials.values()}
    assert [row["similar_code"] for row in results] == [
        codes[row["similar_material_id"]] for row in results
    ]
    exported = await client.get(
        f"/api/v1/recognition-batches/{batch['id']}/results",
        params={"format": "csv"},
        headers=owner.headers,
    )
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [row["label"] for row in rows] == [row["label"] for row in results]
    # Booleans in a CSV are `true`/`false`, as in JSON and in the catalog's export.
    assert [row["unknown"] for row in rows] == ["false"] * 4
    assert [row["similar_code"] for row in rows] == [row["similar_code"] for row in results]
    listed = await client.get(
        "/api/v1/recognitions", params={"project_id": project.json()["id"]}, headers=owner.headers
    )
    assert len(listed.json()["items"]) == 4  # each photo's recognition, filed in the project
    batches = await client.get("/api/v1/recognition-batches", headers=owner.headers)
    assert [item["id"] for item in batches.json()["items"]] == [batch["id"]]


# What Finder, Explorer and Spotlight leave in the folders a person zips.
SYSTEM_FILES = {
    "site/Thumbs.db": b"\xd0\xcf\x11\xe0 explorer thumbnails",
    "site/ehthumbs.db": b"media center thumbnails",
    "site/desktop.ini": b"[.ShellClassInfo]",
    "site/.DS_Store": b"\x00\x00\x00\x01Bud1",
    "site/._wall.jpg": b"\x00\x05\x16\x07 AppleDouble",
    "site/Icon\r": b"",
    "__MACOSX/site/._wall.jpg": b"resource fork",
    ".Spotlight-V100/Store-V2/index": b"spotlight",
    ".Trashes/501/old.jpg": b"trash",
    "$RECYCLE.BIN/S-1-5-21/desktop.ini": b"recycle bin",
}


async def test_the_files_operating_systems_leave_in_a_zip_are_skipped(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    with_photo = _zip({"site/wall.jpg": _mosaic(1), **SYSTEM_FILES})

    # Checked and accepted: what stops it is only the model it still lacks.
    accepted = await client.post(
        "/api/v1/recognition-batches",
        files=[("files", ("site.zip", with_photo, "application/zip"))],
        headers=owner.headers,
    )
    assert accepted.status_code == 409, accepted.text
    assert "Train a model first" in accepted.json()["detail"]

    # And they are not photos either: a zip of nothing else holds none.
    empty = await client.post(
        "/api/v1/recognition-batches",
        files=[("files", ("site.zip", _zip(SYSTEM_FILES), "application/zip"))],
        headers=owner.headers,
    )
    assert empty.status_code == 422, empty.text
    assert empty.json()["detail"] == "The batch has no photos."


async def test_a_batch_with_anything_but_photos_is_refused_whole(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    assert owner.organization is not None
    await _catalog(client, owner)
    await _train(client, owner)
    uploads = {
        "a pdf among photos": [
            ("files", ("ok.jpg", _brass(1), "image/jpeg")),
            ("files", ("invoice.jpg", b"%PDF-1.7 not a photo", "image/jpeg")),
        ],
        "a broken zip": [("files", ("photos.zip", b"PK\x03\x04 broken", "application/zip"))],
        # (One cut later, in its pixel data, passes the header check and fails alone when the
        # job decodes it.)
        "a zip with a photo cut short in its header": [
            (
                "files",
                (
                    "photos.zip",
                    _zip({"cut.jpg": jpeg(grain(300, blur=5, colour=(90, 90, 90), seed=2))[:300]}),
                    "application/zip",
                ),
            )
        ],
        "an empty zip": [("files", ("photos.zip", _zip({}), "application/zip"))],
    }

    for case, files in uploads.items():
        refused = await client.post(
            "/api/v1/recognition-batches", files=files, headers=owner.headers
        )

        assert refused.status_code == 422, (case, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    pdf = await client.post(
        "/api/v1/recognition-batches", files=uploads["a pdf among photos"], headers=owner.headers
    )
    assert [error["loc"][-1] for error in pdf.json()["errors"]] == ["invoice.jpg"]
    batches = await client.get("/api/v1/recognition-batches", headers=owner.headers)
    assert batches.json()["items"] == []
    prefix = f"{owner.organization.id}/users/"
    assert [stored async for stored in committed_runtime.storage.list(prefix)] == []


async def test_a_photo_unreadable_at_its_turn_fails_alone_and_a_rerun_redoes_nothing(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    async with worker_running(committed_runtime):
        await _catalog(client, owner)
        await _train(client, owner)
    # No worker from here on: the batch waits, and is run below as its job would run it.
    photos = [("files", (f"{index}.jpg", _brass(40 + index), "image/jpeg")) for index in range(20)]
    photos[7] = ("files", ("7.jpg", _mosaic(47), "image/jpeg"))
    started = await client.post("/api/v1/recognition-batches", files=photos, headers=owner.headers)
    assert started.status_code == 202, started.text
    batch_id = uuid.UUID(started.json()["id"])
    async with committed_runtime.session_factory() as session:
        await act_for(session, organization_id=owner.organization_id)
        spoiled = await session.get(RecognitionBatchItem, (batch_id, 12))
        lost = await session.get(RecognitionBatchItem, (batch_id, 18))
        assert spoiled is not None
        assert lost is not None
    # After the upload was checked, one stored copy went bad and another was lost.
    await committed_runtime.storage.put(spoiled.image_key, b"\xff\xd8 not a jpeg any more")
    await committed_runtime.storage.delete(lost.image_key)

    def sessions() -> Any:
        return scoped_transaction(
            committed_runtime.session_factory, organization_id=owner.organization_id
        )

    reported: list[int] = []

    async def progress(done: int, total: int | None) -> None:
        reported.append(done)

    arguments: dict[str, Any] = {
        "organization_id": owner.organization_id,
        "batch_id": batch_id,
        "settings": committed_runtime.settings,
        "limits": ImageLimits(),
    }
    outcome = await batches.run_batch(
        sessions, committed_runtime.storage, progress=progress, **arguments
    )

    assert (outcome["recognized"], outcome["failed"]) == (18, 2)
    assert reported[-1] == 20
    assert reported == sorted(reported)
    url = f"/api/v1/recognition-batches/{batch_id}/results"
    pages = await every_page(client, url, headers=owner.headers, limit=8)
    assert [len(page) for page in pages] == [8, 8, 4]
    rows = [row for page in pages for row in page]
    assert rows == (await client.get(url, headers=owner.headers)).json()["items"]
    assert [row["position"] for row in rows] == list(range(1, 21))
    assert [row["position"] for row in rows if row["status"] == "failed"] == [12, 18]
    assert rows[11]["error"]
    assert rows[11]["recognition_id"] is None
    assert "missing" in rows[17]["error"]
    labels = [row["label"] for row in rows if row["status"] == "recognized"]
    assert labels == ["Brushed brass"] * 7 + ["Blue mosaic"] + ["Brushed brass"] * 10
    recognition = await client.get(
        f"/api/v1/recognitions/{rows[0]['recognition_id']}", headers=owner.headers
    )
    assert recognition.json()["file_name"] == "0.jpg"
    assert recognition.json()["timings"]["embed.efficientnet-lite0"] > 0
    # A photo's shown copy is made when it is first shown, not by the batch for every photo.
    shown_folder = f"{owner.organization_id}/users/uploads/recognitions/shown/"
    assert [stored async for stored in committed_runtime.storage.list(shown_folder)] == []
    assert (
        await client.get(recognition.json()["image_url"], headers=owner.headers)
    ).status_code == 200
    kept = service.shown_key(owner.organization_id, uuid.UUID(rows[0]["recognition_id"]))
    assert [stored.key async for stored in committed_runtime.storage.list(shown_folder)] == [kept]

    # The job run again (a retry after a crash) finds nothing left to do.
    again = await batches.run_batch(sessions, committed_runtime.storage, **arguments)
    assert (again["recognized"], again["failed"]) == (18, 2)
    listed = await client.get("/api/v1/recognitions", params={"limit": 100}, headers=owner.headers)
    assert len(listed.json()["items"]) == 18


async def test_a_batch_whose_job_is_cancelled_before_it_runs_fails(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        batch = RecognitionBatch(organization_id=owner.organization_id, status="queued", total=3)
        session.add(batch)
        await session.flush()
        job = await recognize_batch.enqueue(
            session, params={"batch_id": str(batch.id)}, organization_id=owner.organization_id
        )
        batch.job_id = job.id

    cancelled = await client.post(f"/api/v1/jobs/{job.id}/cancel", headers=owner.headers)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    # No worker will ever run it: the batch does not wait for one for ever.
    shown = await client.get(f"/api/v1/recognition-batches/{batch.id}", headers=owner.headers)
    assert shown.json()["status"] == "failed"
    assert shown.json()["finished_at"] is not None
