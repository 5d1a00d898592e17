"""Hostile archives and images: zip bombs, zips inside zips, and files smuggled after an image.

Every zip a request sends (a catalog import, a recognition batch's zips) is inflated under one
budget, a few times the body limit, counted as it inflates; only stored and deflated entries are
read (zipfile inflates bzip2 and LZMA without bounds); a zip inside a zip is refused by its name
or its first bytes; a malformed zip is refused, never a 500; the inflating and parsing run in a
thread, so the server answers everyone else meanwhile. An image keeps nothing after its end
marker, and one whose end cannot be found is refused.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import threading
import time
import tracemalloc
import uuid
import zipfile
from typing import Any

import pytest
from httpx import AsyncClient, Response
from PIL import Image
from sqlalchemy import select

from kai.catalog import import_files
from kai.catalog.models import MaterialImage
from kai.kit.archives import ArchiveTooLarge, InflateBudget
from kai.kit.db import act_for
from kai.kit.errors import PayloadTooLarge
from kai.kit.images import ImageLimits, ImageRejected, without_trailer
from kai.recognition import batches
from kai.runtime import Runtime
from tests.catalog.factories import create_material
from tests.catalog.test_images import photo
from tests.catalog.test_imports import _run_queued_import
from tests.identity.factories import Member, member
from tests.security.zips import (
    MIB,
    bomb_entry,
    deflated_entry,
    mutated,
    needing_version,
    plain_zip,
    while_pinging,
    with_empty_name,
    zip_of,
)

pytestmark = pytest.mark.database

# Far below the 9.6 s the issue saw /healthz wait, and above a busy CI machine's hiccups.
PROMPT_SECONDS = 1.0
POLYGLOT_TAIL = plain_zip({"secret.txt": b"carried inside a photo " * 200})


async def _import(
    client: AsyncClient, owner: Member, content: bytes, *, dry_run: bool = False
) -> Response:
    return await client.post(
        "/api/v1/catalog/imports",
        files={"file": ("catalog.zip", content, "application/zip")},
        data={"dry_run": str(dry_run).lower(), "mode": "skip_invalid"},
        headers=owner.headers,
    )


async def _batch(client: AsyncClient, owner: Member, *files: tuple[str, bytes]) -> Response:
    return await client.post(
        "/api/v1/recognition-batches",
        files=[("files", (name, data, "application/zip")) for name, data in files],
        headers=owner.headers,
    )


async def _stored(runtime: Runtime, owner: Member) -> list[str]:
    return [stored.key async for stored in runtime.storage.list(f"{owner.organization_id}/")]


def _problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


# --- bombs --------------------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [True, False])
async def test_the_catalog_zip_bomb_of_the_issue_answers_413_at_once(
    runtime: Runtime, client: AsyncClient, dry_run: bool
) -> None:
    owner = await member(runtime, client)
    # 1.2 MB that unpacks to 600 MiB of rows: the issue's zip held /healthz for 9.6 s.
    bomb = zip_of(bomb_entry("materials.csv", 600, b"ABC-1,Bomb row\n"))
    assert len(bomb) < 2 * MIB

    started = time.perf_counter()
    refused, pings = await while_pinging(client, _import(client, owner, bomb, dry_run=dry_run))

    assert _problem(refused, 413)["type"].endswith("/archive-too-large")
    assert time.perf_counter() - started < 5
    assert pings
    assert max(pings) < PROMPT_SECONDS
    assert await _stored(runtime, owner) == []
    jobs = await client.get("/api/v1/jobs", headers=owner.headers)
    assert jobs.json()["items"] == []


async def test_a_catalog_zip_of_too_many_rows_is_parsed_in_a_thread_while_others_are_served(
    runtime: Runtime, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fifth of the real cap keeps the test short; the reading is the same.
    monkeypatch.setattr(import_files, "MAX_ROWS", import_files.MAX_ROWS // 5)
    owner = await member(runtime, client)
    # Honest headers and well under the unpacking budget, but more rows than an import holds.
    row = b"C-%06d,Some material name that is long enough,Stone > Marble," + b"x" * 200 + b"\n"
    rows = b"code,name,category,description\n" + b"".join(
        row % number for number in range(import_files.MAX_ROWS + 10_000)
    )
    archive = zip_of(deflated_entry("materials.csv", rows))
    # The reading waits, once begun, until the server has answered someone else: were it on
    # the event loop, nobody could be answered and it would give up waiting.
    reading, answered = threading.Event(), threading.Event()
    read_rows = import_files._read_rows

    def read_once_others_are_served(stream: Any, kind: Any) -> Any:
        reading.set()
        if not answered.wait(timeout=60):
            raise AssertionError("the server answered nobody while the rows were read")
        return read_rows(stream, kind)

    monkeypatch.setattr(import_files, "_read_rows", read_once_others_are_served)

    importing = asyncio.ensure_future(_import(client, owner, archive, dry_run=True))
    assert await asyncio.to_thread(reading.wait, 60)
    assert (await client.get("/healthz")).status_code == 200
    answered.set()
    refused = await importing

    assert "import it in parts" in _problem(refused, 413)["detail"]


async def test_every_zip_of_a_batch_shares_one_unpacking_budget(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    budget = runtime.settings.max_inflated_bytes
    assert budget == 4 * runtime.settings.max_body_bytes
    # Each zip claims, and holds, 60% of the budget: alone each is read whole (and refused for
    # not holding photos); two in one request are stopped while the second inflates.
    share = budget * 6 // 10 // MIB // 3
    first = zip_of(*(bomb_entry(f"first/{n}.jpg", share) for n in range(3)))
    second = zip_of(*(bomb_entry(f"second/{n}.jpg", share) for n in range(3)))

    alone = await _batch(client, owner, ("first.zip", first))
    assert _problem(alone, 422)["type"].endswith("/batch-rejected")

    together, pings = await while_pinging(
        client, _batch(client, owner, ("first.zip", first), ("second.zip", second))
    )
    refused = _problem(together, 413)
    assert refused["type"].endswith("/archive-too-large")
    assert "together" in refused["detail"]
    assert pings
    assert max(pings) < PROMPT_SECONDS
    assert await _stored(runtime, owner) == []


async def test_a_batch_zip_bomb_answers_413(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    bomb = zip_of(*(bomb_entry(f"photos/{n}.jpg", 20) for n in range(30)))

    started = time.perf_counter()
    refused = await _batch(client, owner, ("photos.zip", bomb))

    assert _problem(refused, 413)["type"].endswith("/archive-too-large")
    assert time.perf_counter() - started < 5


def test_the_budget_is_counted_as_bytes_come_out_not_as_headers_claim() -> None:
    # Two zips whose headers are each within a small budget; the count stops the second one
    # part way, whatever its headers said.
    archive = zip_of(bomb_entry("a.jpg", 3), bomb_entry("b.jpg", 3))
    budget = InflateBudget(10 * MIB)
    limits = ImageLimits(max_bytes=4 * MIB)
    with pytest.raises(batches.BatchRejected):  # alone: read whole, and not photos
        batches.checked_photos([("one.zip", archive)], limits, budget)
    assert budget.used == 6 * MIB
    with pytest.raises(ArchiveTooLarge):
        batches.checked_photos([("two.zip", archive)], limits, budget)
    assert budget.used <= 10 * MIB + 64 * 1024


# --- compression methods and malformed zips ------------------------------------------------

# zipfile decompresses a whole read of these with no limit on what comes out: 710 bytes of
# bzip2 once became 1.5 GiB before the budget was charged. A small entry shows the refusal.
UNBOUNDED_METHODS = pytest.mark.parametrize(
    "method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"]
)


@UNBOUNDED_METHODS
async def test_a_catalog_zip_compressed_other_than_with_deflate_is_refused(
    runtime: Runtime, client: AsyncClient, method: int
) -> None:
    owner = await member(runtime, client)
    archive = plain_zip({"materials.csv": b"code,name\nA-1,One\n"}, method)

    for dry_run in (True, False):
        refused = _problem(await _import(client, owner, archive, dry_run=dry_run), 400)
        assert "materials.csv is compressed with" in refused["detail"]
        assert "deflate" in refused["detail"]

    assert await _stored(runtime, owner) == []
    jobs = await client.get("/api/v1/jobs", headers=owner.headers)
    assert jobs.json()["items"] == []


@UNBOUNDED_METHODS
async def test_a_batch_zip_compressed_other_than_with_deflate_is_refused(
    runtime: Runtime, client: AsyncClient, method: int
) -> None:
    owner = await member(runtime, client)
    archive = plain_zip({"wall.jpg": photo(64, 48)}, method)

    refused = _problem(await _batch(client, owner, ("photos.zip", archive)), 422)

    assert "deflate" in refused["detail"]
    assert [error["loc"][-1] for error in refused["errors"]] == ["photos.zip/wall.jpg"]
    assert await _stored(runtime, owner) == []


def _catalog_zip() -> bytes:
    return plain_zip(
        {
            "materials.csv": b"code,name,images\nA-1,One,photos/a.jpg\n",
            "photos/a.jpg": photo(64, 48),
            "notes.txt": b"read me " * 40,
        }
    )


# The shapes the review found, then mutants of a good zip (the same ones on every run).
MALFORMED = [
    needing_version(_catalog_zip(), 200),  # "version 20.0 needed": NotImplementedError
    with_empty_name(_catalog_zip()),  # is_dir() of an empty name: IndexError
    *mutated(_catalog_zip(), 40, seed=13),
]


@pytest.mark.parametrize("route", ["import", "batch"])
async def test_malformed_zips_are_refused_with_a_problem_never_a_500(
    runtime: Runtime, client: AsyncClient, route: str
) -> None:
    owner = await member(runtime, client)
    answers: list[int] = []
    for number, archive in enumerate(MALFORMED):
        if route == "import":
            response = await _import(client, owner, archive, dry_run=True)
        else:
            response = await _batch(client, owner, ("photos.zip", archive))
        assert response.status_code < 500, (number, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"
            assert "zipfile" not in response.text
        answers.append(response.status_code)

    # The review's two, at least, are refused as the unreadable zips they are.
    for response_status in answers[:2]:
        assert response_status == (400 if route == "import" else 422)
    assert await _stored(runtime, owner) == []


# --- a JSON table is measured before it is parsed -------------------------------------------


def _empty_objects(count: int) -> bytes:
    """The review's JSON: `[{},{},...]`, three bytes an object, a dict each once parsed."""
    return b"[" + b"{}," * (count - 1) + b"{}]"


# Just past the cap: some 6 MB that deflate to a few KB, two million dicts if parsed.
PAST_THE_JSON_CAP = _empty_objects(import_files.MAX_JSON_VALUES // 2 + 1)


async def test_a_json_import_past_its_caps_is_refused_before_it_is_parsed(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    archive = zip_of(deflated_entry("materials.json", PAST_THE_JSON_CAP))
    assert len(archive) < 64 * 1024

    answers = [await _import(client, owner, archive, dry_run=dry_run) for dry_run in (True, False)]
    answers.append(
        await client.post(
            "/api/v1/catalog/imports",
            files={"file": ("catalog.json", PAST_THE_JSON_CAP, "application/json")},
            headers=owner.headers,
        )
    )

    for answer in answers:
        refused = _problem(answer, 413)
        assert "commas and brackets" in refused["detail"]
        assert "import it in parts" in refused["detail"]
    assert await _stored(runtime, owner) == []
    jobs = await client.get("/api/v1/jobs", headers=owner.headers)
    assert jobs.json()["items"] == []


def test_measuring_a_json_table_past_its_caps_builds_nothing() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge):
            import_files.read_file(
                PAST_THE_JSON_CAP, image_bytes_limit=MIB, budget=InflateBudget(100 * MIB)
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Parsed, its two million dicts would take some 150 MiB; measured, a copy of it at most.
    assert peak < 2 * len(PAST_THE_JSON_CAP)


# --- nested archives ----------------------------------------------------------------------

INNER_ZIP = plain_zip({"inner.jpg": photo(64, 48)})


@pytest.mark.parametrize(
    ("entry", "content"),
    [
        ("more.zip", INNER_ZIP),  # a zip inside a zip
        ("holiday.jpg", INNER_ZIP),  # the same, named as a photo: found by its first bytes
        ("holiday.jpg", gzip.compress(photo(64, 48))),  # gzip, named as a photo
        ("holiday.tar.gz", photo(64, 48)),  # named as an archive
    ],
)
async def test_an_archive_inside_a_batch_zip_is_refused(
    runtime: Runtime, client: AsyncClient, entry: str, content: bytes
) -> None:
    owner = await member(runtime, client)
    outer = plain_zip({"ok.jpg": photo(64, 48), entry: content})

    refused = _problem(await _batch(client, owner, ("photos.zip", outer)), 422)

    assert "archive" in refused["detail"]
    assert [error["loc"][-1] for error in refused["errors"]] == [f"photos.zip/{entry}"]
    assert await _stored(runtime, owner) == []


@pytest.mark.parametrize(
    "files",
    [
        {"materials.csv": b"code,name,images\nA-1,One,more.zip\n", "more.zip": INNER_ZIP},
        {"materials.csv": b"code,name\nA-1,One\n", "photos/a.jpg": INNER_ZIP},
        {"materials.csv": INNER_ZIP},  # the table itself a zip in disguise
    ],
)
async def test_an_archive_inside_a_catalog_import_zip_is_refused(
    runtime: Runtime, client: AsyncClient, files: dict[str, bytes]
) -> None:
    owner = await member(runtime, client)
    for dry_run in (True, False):
        refused = _problem(await _import(client, owner, plain_zip(files), dry_run=dry_run), 400)
        assert "is itself an archive" in refused["detail"]
    assert await _stored(runtime, owner) == []


# --- images carrying something after their end ---------------------------------------------


def _encoded(image_format: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 120, 200)).save(out, image_format)
    return out.getvalue()


@pytest.mark.parametrize(
    "image",
    [photo(320, 240), _encoded("PNG"), _encoded("WEBP"), _encoded("HEIF")],
    ids=["jpeg", "png", "webp", "heic"],
)
def test_whatever_follows_an_image_is_cut_off(image: bytes) -> None:
    assert without_trailer(image + POLYGLOT_TAIL) == image
    assert without_trailer(image) == image


# A zip holding no 0xFF byte: after a JPEG that lost its end marker, nothing in it reads as
# one, so the picture's end cannot be found at all (the review's polyglot).
MARKERLESS_ZIP = plain_zip({"a.txt": b"hello " * 100}, zipfile.ZIP_STORED)


def test_an_image_whose_end_cannot_be_found_is_refused() -> None:
    assert b"\xff" not in MARKERLESS_ZIP
    webp = bytearray(_encoded("WEBP"))
    webp[4:8] = (len(webp) + 4096).to_bytes(4, "little")  # a RIFF size past the file's end
    without_end = [
        photo(64, 48)[:-2] + MARKERLESS_ZIP,  # the JPEG's EOI dropped, a zip in its place
        _encoded("PNG")[:-12] + MARKERLESS_ZIP,  # the PNG's IEND chunk dropped
        bytes(webp) + MARKERLESS_ZIP,
    ]

    for data in without_end:
        with pytest.raises(ImageRejected, match="its end cannot be found"):
            without_trailer(data)


async def test_a_photo_without_its_end_followed_by_a_zip_is_refused_everywhere(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    material = await create_material(client, owner)
    polyglot = photo(320, 240)[:-2] + MARKERLESS_ZIP

    uploaded = await client.post(
        f"/api/v1/materials/{material['id']}/images",
        files={"file": ("tile.jpg", polyglot, "image/jpeg")},
        headers=owner.headers,
    )
    assert "its end cannot be found" in _problem(uploaded, 422)["detail"]

    batch = await _batch(client, owner, ("site.zip", plain_zip({"wall.jpg": polyglot})))
    refused = _problem(batch, 422)
    assert [error["loc"][-1] for error in refused["errors"]] == ["site.zip/wall.jpg"]
    assert "its end cannot be found" in refused["errors"][0]["msg"]

    archive = plain_zip(
        {"materials.csv": b"code,name,images\nT-1,Tile,tile.jpg\n", "tile.jpg": polyglot}
    )
    started = await _import(client, owner, archive)
    assert started.status_code == 202, started.text
    report = await _run_queued_import(runtime, owner, started.json()["job"]["id"])
    assert (report["created"], report["images"]) == (1, 0), report
    assert "its end cannot be found" in report["errors"][0]["message"]
    assert [key for key in await _stored(runtime, owner) if "/materials/" in key] == []


async def test_a_photo_that_is_also_a_zip_is_stored_without_the_zip(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    material = await create_material(client, owner)
    picture = photo(320, 240)
    polyglot = picture + POLYGLOT_TAIL

    uploaded = await client.post(
        f"/api/v1/materials/{material['id']}/images",
        files={"file": ("tile.jpg", polyglot, "image/jpeg")},
        headers=owner.headers,
    )

    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["size_bytes"] == len(picture)
    assert await _original(runtime, owner, uploaded.json()["id"]) == picture


async def test_a_catalog_import_and_a_batch_keep_no_tail_either(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    picture = photo(320, 240, colour=(90, 40, 30))
    archive = plain_zip(
        {
            "materials.csv": b"code,name,images\nT-1,Tile,tile.jpg\n",
            "tile.jpg": picture + b"\0" * 4096 + POLYGLOT_TAIL,
        }
    )
    started = await _import(client, owner, archive)
    assert started.status_code == 202, started.text
    report = await _run_queued_import(runtime, owner, started.json()["job"]["id"])
    assert (report["created"], report["images"]) == (1, 1), report
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        image = (await session.scalars(select(MaterialImage))).one()
        assert await runtime.storage.read(image.original_key) == picture

    photos = batches.checked_photos(
        [("site.zip", plain_zip({"wall.jpg": picture + POLYGLOT_TAIL}))],
        ImageLimits(),
        InflateBudget(runtime.settings.max_inflated_bytes),
    )
    assert [photo.data for photo in photos] == [picture]


async def _original(runtime: Runtime, owner: Member, image_id: str) -> bytes:
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        image = await session.get(MaterialImage, uuid.UUID(image_id))
        assert image is not None
        return await runtime.storage.read(image.original_key)
