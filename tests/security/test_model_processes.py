"""The processes that run uploaded models, as organizations compete for them (issue 13, point
2's follow-up): an organization holds at most its share, checks on upload count like every
other child, a caller with no process free is answered at once (429 for its organization's
share, 503 for the server's) instead of waiting, and a deleted model's backbone starts nothing.

Children here wait to start, holding their place, until a test lets them (`_Gate`): counts and
answers are asserted while they wait, never how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from httpx import AsyncClient, Response

from kai.config import Settings, VisionSettings
from kai.runtime import Runtime
from kai.vision.backbones import BackboneUnavailable, sandboxed
from kai.vision.backbones.sandboxed import ImageModelsBusy, ImageModelShareUsed
from kai.vision.onnx_session import OnnxModelSpec
from tests.conftest import worker_running
from tests.identity.factories import Member, member
from tests.ml.test_image_models import TINY_SPEC
from tests.recognition.test_recognitions import _brass_photo, _catalog, _finished, _train
from tests.security import attack_models
from tests.security.test_uploaded_models import SANDBOX, _serving

SPEC = OnnxModelSpec.from_json(
    {"name": "custom:tiny", "input_side": 32, "mean": [0, 0, 0], "std": [1, 1, 1], "scale": 1}
)
PHOTO = np.full((32, 32, 3), 90, dtype=np.uint8)
SHARE_USED = (
    "The organization's image models may run in {} processes at once, and all are busy; try "
    "again in a few seconds."
)
SERVER_BUSY = "Every image-model process of this server is busy; try again in a few seconds."


@pytest.fixture(autouse=True)
def _children_stopped() -> Iterator[None]:
    yield
    sandboxed.stop_all()


def _vision(**sandbox: Any) -> VisionSettings:
    return VisionSettings(sandbox=SANDBOX.model_copy(update=sandbox))


class _Gate:
    """Children (or checks) that wait to start until the gate opens, holding their place."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.opened = threading.Event()

    def enter(self) -> None:
        self.entered.release()
        assert self.opened.wait(60), "the test never opened the gate"

    def wait_for(self, count: int) -> None:
        """Until `count` more have come to the gate."""
        for _ in range(count):
            assert self.entered.acquire(timeout=60), "nothing came to the gate"

    def reader(self) -> Callable[[], bytes]:
        data = attack_models.tiny()

        def read_model() -> bytes:
            self.enter()
            return data

        return read_model


def _backbone(
    organization_id: uuid.UUID,
    vision: VisionSettings,
    *,
    read_model: Callable[[], bytes] | None = None,
    model_id: uuid.UUID | None = None,
    digest: str = "0" * 64,
) -> sandboxed.SandboxedBackbone:
    """A backbone of the model `model_id` (a new one by default); another `digest` is another
    pool of children of the same model, as after a re-upload."""
    data = attack_models.tiny()
    return sandboxed.backbone(
        organization_id=organization_id,
        model_id=model_id or uuid.uuid4(),
        spec=SPEC,
        digest=digest,
        dimension=4,
        read_model=read_model or (lambda: data),
        settings=vision,
        max_bytes=1024**2,
    )


class _Embedding(threading.Thread):
    """One photo embedded by `backbone` on a thread of its own: its rows, or what it raised."""

    def __init__(self, backbone: sandboxed.SandboxedBackbone) -> None:
        super().__init__(daemon=True)
        self.backbone = backbone
        self.rows: np.ndarray | None = None
        self.error: Exception | None = None
        self.start()

    def run(self) -> None:
        try:
            self.rows = self.backbone.embed([[PHOTO]])
        except Exception as exc:
            self.error = exc


def _finish(embeddings: list[_Embedding]) -> None:
    for embedding in embeddings:
        embedding.join(60)
        assert not embedding.is_alive()
        assert embedding.error is None, embedding.error
        assert embedding.rows is not None
        assert embedding.rows.shape == (1, 4)


def _sandbox_children() -> list[int]:
    """The processes this one started that run a sandbox child."""
    found = []
    for task in Path("/proc/self/task").iterdir():
        # A thread of this process may end between the listing and the reading.
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for pid in children:
            with contextlib.suppress(FileNotFoundError):
                if b"child_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(int(pid))
    return found


def test_an_organization_holds_at_most_its_share_and_the_next_is_answered_at_once() -> None:
    vision = _vision(max_processes=4, organization_share=0.5)
    hog, first, second, third = (uuid.uuid4() for _ in range(4))
    gate = _Gate()
    held = _backbone(hog, vision, read_model=gate.reader())
    holders = [_Embedding(held), _Embedding(held)]
    try:
        gate.wait_for(2)
        assert sandboxed.in_use(hog) == 2

        with pytest.raises(ImageModelShareUsed) as refused:
            _backbone(hog, vision).embed([[PHOTO]])

        # A 429 saying what to do, at once; nothing more of the organization's started.
        assert refused.value.status == 429
        assert refused.value.headers == {"Retry-After": str(sandboxed.BUSY_RETRY_SECONDS)}
        assert refused.value.detail == SHARE_USED.format(2)
        assert sandboxed.in_use(hog) == 2
        # Other organizations are served meanwhile, up to the server's cap.
        served = [_backbone(organization, vision) for organization in (first, second)]
        for backbone in served:
            assert backbone.embed([[PHOTO]]).shape == (1, 4)
        assert sandboxed.in_use() == 4
        # Past it, a newcomer takes the place of the child idle for longest.
        assert _backbone(third, vision).embed([[PHOTO]]).shape == (1, 4)
        assert served[0].processes() == []
        assert len(served[1].processes()) == 1
        assert sandboxed.in_use() == 4
    finally:
        gate.opened.set()
    _finish(holders)
    assert sandboxed.in_use(hog) == 2
    assert sandboxed.in_use() == 4
    assert len(_sandbox_children()) == 4


def test_a_server_whose_children_are_all_busy_answers_503_at_once() -> None:
    vision = _vision(max_processes=2, organization_share=0.5)
    gate = _Gate()
    holders = [
        _Embedding(_backbone(uuid.uuid4(), vision, read_model=gate.reader())) for _ in range(2)
    ]
    try:
        gate.wait_for(2)

        with pytest.raises(ImageModelsBusy) as refused:
            _backbone(uuid.uuid4(), vision).embed([[PHOTO]])

        assert type(refused.value) is ImageModelsBusy
        assert refused.value.status == 503
        assert refused.value.headers == {"Retry-After": str(sandboxed.BUSY_RETRY_SECONDS)}
        assert refused.value.detail == SERVER_BUSY
        assert sandboxed.in_use() == 2
    finally:
        gate.opened.set()
    _finish(holders)


class _CountedWaits(threading.Condition):
    """The pools' lock, telling each time a thread starts to wait on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Semaphore(0)

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.release()
        return super().wait(timeout)


def test_a_caller_on_several_threads_waits_for_its_own_children_and_no_one_else_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock = _CountedWaits()
    monkeypatch.setattr(sandboxed, "_lock", lock)
    vision = _vision(processes_per_model=2)
    organization, model_id = uuid.uuid4(), uuid.uuid4()
    gate = _Gate()
    # A batch: one backbone, photos embedded on four threads, two children for its model.
    batch = _backbone(organization, vision, read_model=gate.reader(), model_id=model_id)
    embeddings = [_Embedding(batch), _Embedding(batch)]
    try:
        gate.wait_for(2)
        embeddings += [_Embedding(batch), _Embedding(batch)]
        for _ in range(2):
            assert lock.waiting.acquire(timeout=60)

        # Another caller of the same model (a recognition) holds none of them: it is answered.
        with pytest.raises(ImageModelShareUsed) as refused:
            _backbone(organization, vision, model_id=model_id).embed([[PHOTO]])
        assert refused.value.detail == (
            "custom:tiny may run in 2 processes at once, and all are busy; try again in a few "
            "seconds."
        )
    finally:
        gate.opened.set()

    _finish(embeddings)
    assert len(batch.processes()) == 2
    assert sandboxed.in_use(organization) == 2


def test_a_deleted_models_backbone_starts_nothing_and_its_busy_children_count_until_done() -> None:
    vision = _vision()
    organization, model_id = uuid.uuid4(), uuid.uuid4()
    backbone = _backbone(organization, vision, model_id=model_id)
    assert backbone.embed([[PHOTO]]).shape == (1, 4)
    gate = _Gate()
    again = _backbone(organization, vision, read_model=gate.reader(), model_id=model_id, digest="1")
    busy = _Embedding(again)
    try:
        gate.wait_for(1)
        assert sandboxed.in_use(organization) == 2

        sandboxed.forget(organization, model_id)

        # The idle child stopped; the one starting is still counted.
        assert backbone.processes() == []
        assert sandboxed.in_use(organization) == 1
        with pytest.raises(BackboneUnavailable) as refused:
            backbone.embed([[PHOTO]])
        assert refused.value.detail == "The image model 'custom:tiny' was deleted."
        assert sandboxed.in_use(organization) == 1
    finally:
        gate.opened.set()
    _finish([busy])
    # Its request answered, the deleted model's last child stopped and is no longer counted.
    assert sandboxed.in_use(organization) == 0
    assert _sandbox_children() == []


# Upload checks, through the API.


def _settings_with(settings: Settings, **sandbox: Any) -> Settings:
    vision = settings.vision.model_copy(
        update={"sandbox": SANDBOX.model_copy(update=sandbox), "batch_workers": 2}
    )
    return settings.model_copy(update={"vision": vision})


@contextlib.asynccontextmanager
async def _app(
    settings: Settings, runtime: Runtime, **sandbox: Any
) -> AsyncIterator[tuple[Runtime, AsyncClient]]:
    changed = _settings_with(settings, **sandbox)
    changed_runtime = dataclasses.replace(runtime, settings=changed)
    async with _serving(changed, changed_runtime) as client:
        yield changed_runtime, client


class _HeldChecks:
    """Upload checks seen as they start, on whichever thread and with however many of the
    server's database connections out; the first `held` checks of a model wait at a gate."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, runtime: Runtime, held: dict[str, int] | None = None
    ) -> None:
        held = dict(held or {})
        self.gate = _Gate()
        self.threads: list[str] = []
        self.connections: list[int] = []
        real = sandboxed._start
        pool = runtime.engine.sync_engine.pool

        def start(model: Any, data: bytes) -> Any:
            self.threads.append(threading.current_thread().name)
            self.connections.append(pool.checkedout())  # type: ignore[attr-defined]
            name = model.spec.name.removeprefix("custom:")
            if held.get(name, 0) > 0:
                held[name] -= 1
                self.gate.enter()
            return real(model, data)

        monkeypatch.setattr(sandboxed, "_start", start)

    async def wait_for(self, count: int) -> None:
        await asyncio.to_thread(self.gate.wait_for, count)


async def _post_model(client: AsyncClient, who: Member, name: str) -> Response:
    return await client.post(
        "/api/v1/backbones",
        files={"file": ("model.onnx", attack_models.tiny(), "application/octet-stream")},
        data={"name": name, **TINY_SPEC},
        headers=who.headers,
    )


@pytest.mark.database
async def test_an_upload_is_checked_on_the_sandboxs_threads_without_a_database_connection(
    settings: Settings, committed_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _app(settings, committed_runtime) as (runtime, client):
        owner = await member(runtime, client)
        seen = _HeldChecks(monkeypatch, runtime)
        before = runtime.engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]

        answer = await _post_model(client, owner, "tiny")

        assert answer.status_code == 201, answer.text
        assert seen.connections == [before]
        [thread] = seen.threads
        assert thread.startswith("kai-sandbox")


@pytest.mark.database
async def test_upload_checks_count_against_the_organizations_share_and_the_servers_cap(
    settings: Settings, committed_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One a organization, two in all.
    async with _app(settings, committed_runtime, max_processes=2, organization_share=0.5) as (
        runtime,
        client,
    ):
        first, second, third = [await member(runtime, client) for _ in range(3)]
        checks = _HeldChecks(monkeypatch, runtime, {"held-1": 1, "held-2": 1})
        held = [asyncio.ensure_future(_post_model(client, first, "held-1"))]
        try:
            await checks.wait_for(1)

            again = await _post_model(client, first, "another")

            assert again.status_code == 429, again.text
            assert again.json()["type"].endswith("/image-model-share-used")
            assert again.json()["detail"] == SHARE_USED.format(1)
            assert again.headers["retry-after"] == str(sandboxed.BUSY_RETRY_SECONDS)
            held.append(asyncio.ensure_future(_post_model(client, second, "held-2")))
            await checks.wait_for(1)
            assert sandboxed.in_use() == 2

            late = await _post_model(client, third, "late")

            assert late.status_code == 503, late.text
            assert late.json()["type"].endswith("/image-models-busy")
            assert late.json()["detail"] == SERVER_BUSY
            assert late.headers["retry-after"] == str(sandboxed.BUSY_RETRY_SECONDS)
            # Only the two held checks ever reached a child.
            assert len(checks.threads) == 2
        finally:
            checks.gate.opened.set()
            answers = await asyncio.gather(*held)
        assert [answer.status_code for answer in answers] == [201, 201]
        assert sandboxed.in_use() == 0


@pytest.mark.database
async def test_a_name_taken_while_the_model_was_checked_is_a_conflict(
    settings: Settings, committed_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _app(settings, committed_runtime) as (runtime, client):
        owner = await member(runtime, client)
        checks = _HeldChecks(monkeypatch, runtime, {"twin": 1})
        first = asyncio.ensure_future(_post_model(client, owner, "twin"))
        try:
            await checks.wait_for(1)
            # The same name, checked and recorded while the first upload's check runs.
            second = await _post_model(client, owner, "twin")
            assert second.status_code == 201, second.text
        finally:
            checks.gate.opened.set()
            answer = await first

        assert answer.status_code == 409, answer.text
        assert answer.json()["type"].endswith("/image-model-taken")
        listed = await client.get("/api/v1/backbones", headers=owner.headers)
        assert [entry["name"] for entry in listed.json()["items"]].count("custom:twin") == 1
        assert owner.organization is not None
        stored = [key async for key in runtime.storage.list(f"{owner.organization.id}/")]
        assert len(stored) == 1


@pytest.mark.database
async def test_recognitions_batches_and_trainings_say_when_the_organizations_share_is_busy(
    settings: Settings, committed_runtime: Runtime
) -> None:
    # Two processes an organization.
    async with (
        _app(settings, committed_runtime, max_processes=4, organization_share=0.5) as (
            runtime,
            client,
        ),
        worker_running(runtime),
    ):
        owner = await member(runtime, client)
        answer = await _post_model(client, owner, "tiny")
        assert answer.status_code == 201, answer.text
        await _catalog(client, owner)
        version = await _train(client, owner, backbones=["custom:tiny", "handcrafted"])
        assert version["status"] == "ready", version
        assert owner.organization is not None
        gate = _Gate()
        # Held by another model of the organization's, under the same settings.
        held = _backbone(owner.organization.id, runtime.settings.vision, read_model=gate.reader())
        holders = [_Embedding(held), _Embedding(held)]
        busy = SHARE_USED.format(2)
        try:
            await asyncio.to_thread(gate.wait_for, 2)

            recognized = await client.post(
                "/api/v1/recognitions",
                files={"file": ("brass.jpg", _brass_photo(), "image/jpeg")},
                headers=owner.headers,
            )
            batch = await client.post(
                "/api/v1/recognition-batches",
                files=[("files", ("brass.jpg", _brass_photo(), "image/jpeg"))],
                headers=owner.headers,
            )
            assert batch.status_code == 202, batch.text
            (job,) = await _finished(client, owner, "recognition.recognize_batch")
            # Prepared another way (mirrored too) than the first training's photos, which the
            # feature store holds: the model must embed them again, and is busy.
            training = await client.post(
                "/api/v1/models",
                json={"backbones": ["custom:tiny"], "test_time_augmentation": True},
                headers=owner.headers,
            )
            assert training.status_code == 202, training.text
            await _finished(client, owner, "ml.train_model", 2)
        finally:
            gate.opened.set()
            await asyncio.to_thread(_finish, holders)

        assert recognized.status_code == 429, recognized.text
        assert recognized.json()["type"].endswith("/image-model-share-used")
        assert recognized.json()["detail"] == busy
        assert recognized.headers["retry-after"] == str(sandboxed.BUSY_RETRY_SECONDS)
        assert job["status"] == "succeeded", job
        results = await client.get(
            f"/api/v1/recognition-batches/{batch.json()['id']}/results", headers=owner.headers
        )
        assert [(r["status"], r["error"]) for r in results.json()["items"]] == [("failed", busy)]
        failed = await client.get(f"/api/v1/models/{training.json()['id']}", headers=owner.headers)
        assert (failed.json()["status"], failed.json()["error"]) == ("failed", busy)
        # Once the organization's processes are free, its photos are recognized again.
        again = await client.post(
            "/api/v1/recognitions",
            files={"file": ("brass.jpg", _brass_photo(), "image/jpeg")},
            headers=owner.headers,
        )
        assert again.status_code == 201, again.text
