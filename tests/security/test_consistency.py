"""Nothing half-written: rows and the stored files they name stay together whatever fails,
a batch records each photo once however many workers run it, and a training holds no
transaction while it trains (and trains its version once)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kai.catalog import images
from kai.catalog.models import MaterialImage
from kai.config import Settings
from kai.identity.actor import Actor
from kai.identity.permissions import Permission
from kai.kit.db import create_engine, scoped_transaction
from kai.kit.images import ImageLimits
from kai.ml import image_models, training
from kai.ml.models import ModelVersion
from kai.recognition import batches
from kai.runtime import Runtime
from tests.catalog.factories import create_category, create_material
from tests.catalog.test_images import photo
from tests.conftest import _client_of, committing_runtime, worker_running
from tests.identity.factories import Member, member
from tests.kit.deletions import run_queued_deletions
from tests.ml.test_image_models import _tiny, _upload
from tests.recognition.test_batches import _brass, _mosaic
from tests.recognition.test_recognitions import WAIT_SECONDS, _catalog, _finished, _train

pytestmark = pytest.mark.database

Sessions = Callable[[], contextlib.AbstractAsyncContextManager[AsyncSession]]


class RequestFailedLater(Exception):
    """What a unit of work raises after its deletion, to roll it back."""


def _actor(owner: Member) -> Actor:
    return Actor(
        kind="operator", organization_id=owner.organization_id, permissions=frozenset(Permission)
    )


async def _stored(runtime: Runtime, owner: Member, folder: str = "") -> set[str]:
    prefix = f"{owner.organization_id}/{folder}"
    return {stored.key async for stored in runtime.storage.list(prefix)}


async def _all_jobs_finished(client: AsyncClient, owner: Member) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        jobs = (
            await client.get("/api/v1/jobs", params={"limit": 100}, headers=owner.headers)
        ).json()["items"]
        if all(job["status"] in ("succeeded", "failed", "cancelled") for job in jobs):
            return list(jobs)
        await asyncio.sleep(0.2)
    raise AssertionError(f"jobs still running after {WAIT_SECONDS} s")


# --- stored objects are deleted only after the transaction that forgets them commits ---------


async def test_an_image_deleted_in_a_transaction_that_rolls_back_keeps_its_files(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    material = await create_material(client, owner)
    base = f"/api/v1/materials/{material['id']}/images"
    uploaded = await client.post(
        base, files={"file": ("tile.jpg", photo(), "image/jpeg")}, headers=owner.headers
    )
    assert uploaded.status_code == 201, uploaded.text
    image_id = uploaded.json()["id"]
    await _finished(client, owner, "catalog.image_derivatives")
    files = await _stored(committed_runtime, owner)
    assert len(files) == 3  # the original, the processed copy and the thumbnail

    async def delete_then_fail() -> None:
        async with scoped_transaction(
            committed_runtime.session_factory, organization_id=owner.organization_id
        ) as session:
            await images.delete_image(
                session,
                actor=_actor(owner),
                material_id=uuid.UUID(material["id"]),
                image_id=uuid.UUID(image_id),
            )
            raise RequestFailedLater

    with pytest.raises(RequestFailedLater):
        await delete_then_fail()

    # The image is still there, and so is every file it names.
    served = await client.get(f"{base}/{image_id}/processed", headers=owner.headers)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/webp"
    assert await _stored(committed_runtime, owner) == files
    for key in files:
        assert await committed_runtime.storage.read(key)

    deleted = await client.delete(f"{base}/{image_id}", headers=owner.headers)
    assert deleted.status_code == 204
    removal = await _finished(client, owner, "storage.delete_objects")
    assert removal[0]["status"] == "succeeded", removal[0]
    assert await _stored(committed_runtime, owner) == set()


async def test_a_model_deleted_in_a_transaction_that_rolls_back_keeps_its_file(
    committed_runtime: Runtime,
    committed_client: AsyncClient,
    running_worker: None,
    tmp_path: Path,
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    status, _ = await _upload(client, owner, _tiny(tmp_path))
    assert status == 201
    files = await _stored(committed_runtime, owner, "models/")
    assert len(files) == 1

    async def delete_then_fail() -> None:
        async with scoped_transaction(
            committed_runtime.session_factory, organization_id=owner.organization_id
        ) as session:
            await image_models.delete(
                session, actor=_actor(owner), name="tiny", settings=committed_runtime.settings
            )
            raise RequestFailedLater

    with pytest.raises(RequestFailedLater):
        await delete_then_fail()

    listed = await client.get("/api/v1/backbones", headers=owner.headers)
    assert "custom:tiny" in [entry["name"] for entry in listed.json()["items"]]
    (key,) = files
    assert await committed_runtime.storage.read(key) == _tiny(tmp_path)

    gone = await client.delete("/api/v1/backbones/custom:tiny", headers=owner.headers)
    assert gone.status_code == 204
    removal = await _finished(client, owner, "storage.delete_objects")
    assert removal[0]["status"] == "succeeded", removal[0]
    assert await _stored(committed_runtime, owner, "models/") == set()
    # Uploaded again under its name: a file of its own, which the removal above never touches.
    assert (await _upload(client, owner, _tiny(tmp_path)))[0] == 201
    (again,) = await _stored(committed_runtime, owner, "models/")
    assert again != key


# --- a retried import leaves nothing of its failed attempt -----------------------------------


@contextlib.asynccontextmanager
async def _impatient(
    settings: Settings, owner_engine: AsyncEngine, *, retry_seconds: float
) -> AsyncIterator[Runtime]:
    assert settings.database_url is not None
    url = settings.database_url.get_secret_value()
    jobs = settings.jobs.model_copy(
        update={"retry_base_seconds": retry_seconds, "retry_max_seconds": retry_seconds}
    )
    impatient = settings.model_copy(update={"jobs": jobs})
    engine = create_engine(
        url,
        settings.database,
        connect_args={
            "options": "-c lock_timeout=1000 -c statement_timeout=60000",
            "application_name": "kai-test",
        },
    )
    async with committing_runtime(impatient, engine, owner_engine, owns_engine=True) as runtime:
        yield runtime


@pytest.fixture
async def impatient_runtime(
    settings: Settings, owner_engine: AsyncEngine
) -> AsyncIterator[Runtime]:
    """A runtime that really commits, whose statements give up after waiting a second for
    another transaction's lock, and whose jobs retry five seconds after a failure."""
    # Long enough to look at what the failed attempt left before the next one begins.
    async with _impatient(settings, owner_engine, retry_seconds=5.0) as runtime:
        yield runtime


@pytest.fixture
async def impatient_quick_runtime(
    settings: Settings, owner_engine: AsyncEngine
) -> AsyncIterator[Runtime]:
    """As `impatient_runtime`, its jobs retrying at once."""
    async with _impatient(settings, owner_engine, retry_seconds=0.2) as runtime:
        yield runtime


async def _job(client: AsyncClient, owner: Member, job_id: str) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/jobs/{job_id}", headers=owner.headers)
    body: dict[str, Any] = answer.json()
    return body


async def _wait_for_job(
    client: AsyncClient, owner: Member, job_id: str, status: str
) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        job = await _job(client, owner, job_id)
        if job["status"] == status:
            return job
        assert job["status"] in ("queued", "running", "retrying", "cancelling"), job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} not {status} within {WAIT_SECONDS} s")


async def test_an_import_attempt_that_fails_midway_leaves_no_images_and_its_retry_succeeds(
    impatient_runtime: Runtime, owner_engine: AsyncEngine
) -> None:
    runtime = impatient_runtime
    async with _client_of(runtime.settings, runtime) as client, worker_running(runtime):
        owner = await member(runtime, client)
        await create_category(client, owner, "Stone")
        existing = await create_material(client, owner, code="LOCKED-1", name="Old name")
        rows = [
            {"code": "NEW-1", "name": "First", "category": "Stone", "images": "a.jpg"},
            {"code": "NEW-2", "name": "Second", "category": "Stone", "images": "b.jpg"},
            {"code": "LOCKED-1", "name": "New name", "category": "Stone", "images": "c.jpg"},
        ]
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("materials.json", json.dumps(rows))
            for name, colour in (
                ("a.jpg", (200, 9, 9)),
                ("b.jpg", (9, 200, 9)),
                ("c.jpg", (9, 9, 200)),
            ):
                zipped.writestr(name, photo(colour=colour))

        # Someone else's long edit holds the material the import updates last: the import's
        # first attempt creates the new materials, stores their images, then waits for that
        # row, gives up, and rolls back.
        async with owner_engine.connect() as editor:
            edit = await editor.begin()
            await editor.execute(
                text("SELECT id FROM materials WHERE id = :id FOR UPDATE"),
                {"id": existing["id"]},
            )
            started = await client.post(
                "/api/v1/catalog/imports",
                files={"file": ("catalog.zip", archive.getvalue(), "application/zip")},
                data={"mode": "all_or_nothing", "dry_run": "false"},
                headers=owner.headers,
            )
            assert started.status_code == 202, started.text
            job_id = started.json()["job"]["id"]
            failed = await _wait_for_job(client, owner, job_id, "retrying")

            # Nothing of the failed attempt is left: neither its rows nor the images it
            # stored (looked at before the next attempt, five seconds on, begins).
            assert failed["attempts"] == 1
            listed = (await client.get("/api/v1/materials", headers=owner.headers)).json()
            assert [item["code"] for item in listed["items"]] == ["LOCKED-1"]
            assert await _stored(runtime, owner, "materials/") == set()
            await edit.rollback()

        done = await _wait_for_job(client, owner, job_id, "succeeded")
        assert done["attempts"] == 2
        assert (done["result"]["created"], done["result"]["images"]) == (2, 3), done["result"]
        jobs = await _all_jobs_finished(client, owner)
        assert {job["status"] for job in jobs} == {"succeeded"}, jobs

        # The storage holds exactly what the committed rows name (the uploaded file went
        # with the import's success).
        async with scoped_transaction(
            runtime.session_factory, organization_id=owner.organization_id
        ) as session:
            named = {
                key
                for row in (await session.scalars(select(MaterialImage))).all()
                for key in (row.original_key, row.processed_key, row.thumbnail_key)
                if key
            }
        assert len(named) == 9
        assert await _stored(runtime, owner) == named


# --- an import's uploaded file goes however its job ends -------------------------------------


async def _start_import(client: AsyncClient, owner: Member, code: str) -> dict[str, Any]:
    """An import of one row, naming the material `code` "Renamed"."""
    content = f"code,name\n{code},Renamed\n".encode()
    started = await client.post(
        "/api/v1/catalog/imports",
        files={"file": ("catalog.csv", content, "text/csv")},
        headers=owner.headers,
    )
    assert started.status_code == 202, started.text
    job: dict[str, Any] = started.json()["job"]
    return job


@contextlib.asynccontextmanager
async def _held(owner_engine: AsyncEngine, material: dict[str, Any]) -> AsyncIterator[None]:
    """Someone else's long edit of `material`: its row locked for the block's duration."""
    async with owner_engine.connect() as editor:
        edit = await editor.begin()
        await editor.execute(
            text("SELECT id FROM materials WHERE id = :id FOR UPDATE"), {"id": material["id"]}
        )
        try:
            yield
        finally:
            await edit.rollback()


async def _until_gone(runtime: Runtime, owner: Member, folder: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while await _stored(runtime, owner, folder):
        assert time.monotonic() < deadline, await _stored(runtime, owner, folder)
        await asyncio.sleep(0.1)


async def test_an_import_cancelled_before_it_runs_leaves_no_file(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    job = await _start_import(client, owner, "A-1")
    (upload,) = await _stored(runtime, owner, "users/uploads/")

    cancelled = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=owner.headers)

    assert cancelled.json()["status"] == "cancelled", cancelled.text
    assert await run_queued_deletions(runtime, owner.organization_id) == [upload]
    assert await _stored(runtime, owner) == set()


async def test_an_import_cancelled_as_a_worker_takes_it_leaves_no_file(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    runtime, client = committed_runtime, committed_client
    owner = await member(runtime, client)
    job = await _start_import(client, owner, "A-1")
    (upload,) = await _stored(runtime, owner, "users/uploads/")
    # A worker has taken the job from the queue but not begun its attempt.
    queue_job = "(SELECT queue_job_id FROM jobs WHERE id = :id)"
    async with scoped_transaction(
        runtime.session_factory, organization_id=owner.organization_id
    ) as session:
        await session.execute(
            text(f"UPDATE procrastinate_jobs SET status = 'doing' WHERE id = {queue_job}"),
            {"id": job["id"]},
        )

    cancelling = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=owner.headers)
    assert cancelling.json()["status"] == "cancelling", cancelling.text

    # That worker dies before it begins: the recovery of stalled jobs finds the job (no
    # worker holds it), which the queue fails rather than hands back since it was being
    # cancelled; it ends cancelled, never begun, and the upload goes with it.
    async with worker_running(runtime):
        await _wait_for_job(client, owner, job["id"], "cancelled")
        [removal] = await _finished(client, owner, "storage.delete_objects")
    assert removal["status"] == "succeeded", removal
    assert upload not in await _stored(runtime, owner, "users/uploads/")
    # And it never ran: the row it would have made is not there.
    listed = await client.get("/api/v1/materials", headers=owner.headers)
    assert listed.json()["items"] == []


async def test_an_import_cancelled_while_it_runs_leaves_no_file(
    committed_runtime: Runtime,
    committed_client: AsyncClient,
    running_worker: None,
    owner_engine: AsyncEngine,
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    locked = await create_material(client, owner, code="LOCKED-1")
    async with _held(owner_engine, locked):
        # The import waits on the locked row for as long as it is held: it is still running
        # when it is cancelled, whenever that is.
        job = await _start_import(client, owner, locked["code"])
        assert len(await _stored(committed_runtime, owner, "users/uploads/")) == 1
        await _wait_for_job(client, owner, job["id"], "running")

        cancelling = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=owner.headers)
        assert cancelling.json()["status"] == "cancelling", cancelling.text
        await _until_gone(committed_runtime, owner, "users/uploads/")

    assert (await _wait_for_job(client, owner, job["id"], "cancelled"))["attempts"] == 1
    material = await client.get(f"/api/v1/materials/{locked['id']}", headers=owner.headers)
    assert material.json()["name"] == locked["name"]


async def test_an_import_whose_every_attempt_fails_leaves_no_file(
    impatient_quick_runtime: Runtime, owner_engine: AsyncEngine
) -> None:
    runtime = impatient_quick_runtime
    async with _client_of(runtime.settings, runtime) as client, worker_running(runtime):
        owner = await member(runtime, client)
        locked = await create_material(client, owner, code="LOCKED-1")
        async with _held(owner_engine, locked):
            # Every attempt gives up waiting for the row, and the last fails the job.
            job = await _start_import(client, owner, locked["code"])
            failed = await _wait_for_job(client, owner, job["id"], "failed")
            await _until_gone(runtime, owner, "users/uploads/")

        assert failed["attempts"] == failed["max_attempts"] == 3, failed
        assert await _stored(runtime, owner) == set()


# --- a batch run twice at once records each photo once ---------------------------------------


def _sessions_meeting_at_the_first_recording(
    factory: async_sessionmaker[AsyncSession], organization_id: uuid.UUID, both: asyncio.Barrier
) -> Sessions:
    """Transactions for one run; its second (after reading what is left to do) waits until
    the other run has read it too, so that the two really work on the same photos."""
    opened = 0

    @contextlib.asynccontextmanager
    async def sessions() -> AsyncIterator[AsyncSession]:
        nonlocal opened
        opened += 1
        if opened == 2:
            await both.wait()
        async with scoped_transaction(factory, organization_id=organization_id) as session:
            yield session

    return sessions


async def test_a_batch_run_by_two_workers_at_once_records_every_photo_once(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    async with worker_running(committed_runtime):
        await _catalog(client, owner)
        await _train(client, owner, backbones=["handcrafted"])
    # No worker from here on: the batch's job is run below, twice at once, as two workers
    # would run it when a stalled job is handed to a second while the first still runs.
    photos = [("files", (f"{index}.jpg", _brass(60 + index), "image/jpeg")) for index in range(10)]
    photos += [("files", ("mosaic.jpg", _mosaic(70), "image/jpeg"))]
    started = await client.post("/api/v1/recognition-batches", files=photos, headers=owner.headers)
    assert started.status_code == 202, started.text
    batch_id = uuid.UUID(started.json()["id"])
    both = asyncio.Barrier(2)

    def run() -> Any:
        return batches.run_batch(
            _sessions_meeting_at_the_first_recording(
                committed_runtime.session_factory, owner.organization_id, both
            ),
            committed_runtime.storage,
            organization_id=owner.organization_id,
            batch_id=batch_id,
            settings=committed_runtime.settings,
            limits=ImageLimits(),
        )

    first, second = await asyncio.gather(run(), run())

    assert (first["recognized"], first["failed"]) == (11, 0)
    assert (second["recognized"], second["failed"]) == (11, 0)
    batch = (
        await client.get(f"/api/v1/recognition-batches/{batch_id}", headers=owner.headers)
    ).json()
    assert (batch["status"], batch["done"], batch["failed"], batch["total"]) == (
        "succeeded",
        11,
        0,
        11,
    )
    rows = (
        await client.get(f"/api/v1/recognition-batches/{batch_id}/results", headers=owner.headers)
    ).json()["items"]
    assert [row["position"] for row in rows] == list(range(1, 12))
    assert all(row["status"] == "recognized" for row in rows)
    assert len({row["recognition_id"] for row in rows}) == 11
    listed = await client.get("/api/v1/recognitions", params={"limit": 100}, headers=owner.headers)
    assert sorted(item["id"] for item in listed.json()["items"]) == sorted(
        row["recognition_id"] for row in rows
    )


# --- a training holds no transaction while it trains, and trains its version once -----------


async def test_a_training_holds_no_transaction_open_while_it_trains(
    committed_runtime: Runtime, committed_client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    async with worker_running(committed_runtime):
        await _catalog(client, owner)
    factory = committed_runtime.session_factory
    options = training.TrainingOptions(backbones=["handcrafted"])
    async with scoped_transaction(factory, organization_id=owner.organization_id) as session:
        version = await training.new_version(session, actor=_actor(owner), options=options)
    seen_open: list[int] = []

    async def while_training(done: int, total: int | None) -> None:
        # Between two chunks of photos: no connection of the app is inside a transaction...
        async with owner_engine.connect() as connection:
            open_transactions = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                    " AND xact_start IS NOT NULL"
                )
            )
        seen_open.append(int(open_transactions or 0))
        # ...and the version being trained is not locked: anyone may change it meanwhile.
        async with scoped_transaction(factory, organization_id=owner.organization_id) as other:
            await other.execute(
                text("SELECT id FROM model_versions WHERE id = :id FOR UPDATE NOWAIT"),
                {"id": version.id},
            )

    outcome = await training.run_training(
        lambda: scoped_transaction(factory, organization_id=owner.organization_id),
        committed_runtime.storage,
        organization_id=owner.organization_id,
        version_id=version.id,
        settings=committed_runtime.settings,
        limits=ImageLimits(),
        progress=while_training,
    )

    assert outcome["photos"] == 18
    assert seen_open
    assert set(seen_open) == {0}
    trained = (await client.get(f"/api/v1/models/{version.id}", headers=owner.headers)).json()
    assert (trained["status"], trained["active"]) == ("ready", True)


async def test_a_version_trained_twice_at_once_is_trained_once(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    async with worker_running(committed_runtime):
        await _catalog(client, owner)
    factory = committed_runtime.session_factory
    options = training.TrainingOptions(backbones=["handcrafted"])
    async with scoped_transaction(factory, organization_id=owner.organization_id) as session:
        version = await training.new_version(session, actor=_actor(owner), options=options)
    both = asyncio.Barrier(2)

    def run(sessions: Sessions) -> Any:
        return training.run_training(
            sessions,
            committed_runtime.storage,
            organization_id=owner.organization_id,
            version_id=version.id,
            settings=committed_runtime.settings,
            limits=ImageLimits(),
        )

    # Two workers with the same job (a stalled one handed on while it still runs): both read
    # the version in training and train it before either records it.
    outcomes = await asyncio.gather(
        *(
            run(_sessions_meeting_at_the_first_recording(factory, owner.organization_id, both))
            for _ in range(2)
        )
    )

    assert sorted("skipped" in outcome for outcome in outcomes) == [False, True]
    assert [outcome["skipped"] for outcome in outcomes if "skipped" in outcome] == [
        "model version already ready"
    ]
    async with scoped_transaction(factory, organization_id=owner.organization_id) as session:
        versions = (await session.scalars(select(ModelVersion))).all()
    assert [(found.id, found.status) for found in versions] == [(version.id, "ready")]
    (trained,) = versions
    # The files of the run that lost are gone; the winner's are the version's.
    assert await _stored(committed_runtime, owner, "models/") == {
        trained.dataset_key,
        trained.artifact_key,
        trained.reference_key,
    }
    # Run again later (a retry after the job's success was lost), it does nothing.
    again = await run(lambda: scoped_transaction(factory, organization_id=owner.organization_id))
    assert again == {"skipped": "model version already ready"}
