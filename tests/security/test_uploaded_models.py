"""Uploaded image models as an attacker writes them (issue 13, point 2).

Anyone may sign up and so hold `models:deploy` in an organization of their own. Each test
uploads a hostile model through the API (built in tests/security/attack_models.py) and shows
that it is refused or stopped with fixed words, that nothing of the server's files reaches an
answer, a log or storage, and that another organization's requests are answered throughout.
The sandbox runs with small limits here (1 GB, 2 s of processor time a request).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from httpx import ASGITransport, AsyncClient

from kai.app import create_app
from kai.config import ModelSandboxSettings, Settings, VisionSettings
from kai.runtime import Runtime
from kai.vision.backbones import sandboxed
from kai.vision.onnx_check import REFUSALS
from kai.vision.onnx_session import OnnxModelSpec
from tests.conftest import worker_running
from tests.identity.factories import Member, member
from tests.ml.test_image_models import _upload
from tests.recognition.test_recognitions import _brass_photo, _catalog, _finished, _train
from tests.security import attack_models
from tests.vision.textures import jpeg

T = TypeVar("T")

SANDBOX = ModelSandboxSettings(
    memory_mb=1024, cpu_seconds=2.0, wall_seconds=30.0, retry_after_seconds=0.0
)
# What a caller reads when the model does not run (onnxruntime's own words go to the log).
DOES_NOT_RUN = (
    "The model does not run on 32 px RGB images, several at once (a dynamic batch size), "
    "as declared."
)
TOO_MUCH_MEMORY = "The model needs more than 1024 MB of memory."
TOO_MUCH_PROCESSOR = "The model needs more than 2 s of processor time."
# The other organization's requests must keep being answered, each well within this.
PROMPT_SECONDS = 3.0


def _strict(settings: Settings) -> Settings:
    vision = settings.vision.model_copy(update={"sandbox": SANDBOX, "batch_workers": 2})
    return settings.model_copy(update={"vision": vision})


@contextlib.asynccontextmanager
async def _serving(settings: Settings, runtime: Runtime) -> AsyncIterator[AsyncClient]:
    app = create_app(settings, runtime=runtime)
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://kai.test") as client:
        yield client


@pytest.fixture(autouse=True)
def _children_stopped() -> Iterator[None]:
    yield
    sandboxed.stop_all()


@pytest.fixture
async def strict(
    settings: Settings, committed_runtime: Runtime
) -> AsyncIterator[tuple[Runtime, AsyncClient]]:
    """A runtime and client whose uploaded models run under SANDBOX (committing, so that
    requests may run side by side)."""
    strict_settings = _strict(settings)
    strict_runtime = dataclasses.replace(committed_runtime, settings=strict_settings)
    async with _serving(strict_settings, strict_runtime) as client:
        yield strict_runtime, client


@pytest.fixture
def server_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The server's working directory holds `kai-data/secret_key` (as in the embedded run):
    its bytes, which no answer, log or stored object may contain."""
    secret = b"kai-secret-key:" + secrets.token_hex(24).encode()
    (tmp_path / "kai-data").mkdir()
    (tmp_path / "kai-data" / "secret_key").write_bytes(secret)
    monkeypatch.chdir(tmp_path)
    return secret


def _traces(secret: bytes) -> list[str]:
    """The ways the secret's first bytes could be shown: as text, hex, or read as the
    float32 weights or int64 shape a model would have made of them."""
    head = secret[: attack_models.WEIGHT_BYTES]
    return [
        secret.decode(),
        secret.hex(),
        *(str(value) for value in np.frombuffer(head, dtype="<i8").tolist()),
        *(f"{value:.6g}" for value in np.frombuffer(head, dtype="<f4").tolist() if value),
    ]


async def _while_serving(client: AsyncClient, bystander: Member, work: Awaitable[T]) -> T:
    """Do `work` while another organization's member keeps asking: each health check and
    request of theirs must be answered, promptly, for as long as `work` takes."""
    task = asyncio.ensure_future(work)
    answered = 0
    while not task.done():
        began = time.monotonic()
        health = await client.get("/healthz")
        listed = await client.get("/api/v1/backbones", headers=bystander.headers)
        assert health.status_code == 200
        assert listed.status_code == 200, listed.text
        assert time.monotonic() - began < PROMPT_SECONDS
        answered += 1
        await asyncio.sleep(0.05)
    assert answered >= 1
    return await task


async def _nothing_kept(runtime: Runtime, client: AsyncClient, owner: Member) -> None:
    listed = await client.get("/api/v1/backbones", headers=owner.headers)
    assert [entry["name"] for entry in listed.json()["items"]] == [
        "efficientnet-lite0",
        "efficientnet-lite1",
        "efficientnet-lite2",
        "handcrafted",
    ]
    assert owner.organization is not None
    stored = [key async for key in runtime.storage.list(f"{owner.organization.id}/")]
    assert stored == []


@pytest.mark.database
async def test_a_model_whose_weights_name_a_server_file_is_refused_and_nothing_of_it_leaks(
    strict: tuple[Runtime, AsyncClient],
    server_directory: bytes,
    capsys: pytest.CaptureFixture[str],
    logged: Callable[[], list[dict[str, Any]]],
) -> None:
    runtime, client = strict
    owner = await member(runtime, client)
    secret_file = Path.cwd() / "kai-data" / "secret_key"
    attacks = [
        attack_models.external_data("kai-data/secret_key", "initializer"),
        attack_models.external_data(str(secret_file), "initializer"),
        attack_models.external_data(f"../{Path.cwd().name}/kai-data/secret_key", "initializer"),
        attack_models.external_data("kai-data/secret_key", "sparse-initializer"),
        attack_models.external_data("kai-data/secret_key", "constant"),
        attack_models.external_data("kai-data/secret_key", "nested-if"),
        attack_models.external_data("kai-data/secret_key", "function"),
        # The Reshape leak: a target shape read from the file would be printed by the runtime.
        attack_models.reshape_from_file("kai-data/secret_key"),
    ]

    answers = [await _upload(client, owner, attack) for attack in attacks]

    for status, body in answers:
        assert status == 422, body
        assert body["type"].endswith("/invalid-image-model")
        assert body["detail"] == REFUSALS["external-data"]
    printed = capsys.readouterr()
    said = json.dumps(answers) + printed.out + printed.err
    assert not [trace for trace in _traces(server_directory) if trace in said]
    await _nothing_kept(runtime, client, owner)


@pytest.mark.database
async def test_the_runtimes_error_text_goes_to_the_log_and_the_caller_reads_fixed_words(
    strict: tuple[Runtime, AsyncClient], logged: Callable[[], list[dict[str, Any]]]
) -> None:
    runtime, client = strict
    owner = await member(runtime, client)

    answer = await client.post(
        "/api/v1/backbones",
        files={"file": ("model.onnx", attack_models.reshape_to([7654321, 1234567]), "x/y")},
        data={"name": "leaky", "input_side": "32", "mean": "0,0,0", "std": "1,1,1", "scale": "1"},
        headers={**owner.headers, "X-Request-ID": "reshape-leak-1"},
    )

    assert answer.status_code == 422
    assert answer.json()["detail"] == DOES_NOT_RUN
    assert "7654321" not in answer.text
    assert "onnxruntime" not in answer.text.lower()
    (failure,) = [line for line in logged() if line["event"] == "vision.image_model_failed"]
    assert failure["request_id"] == "reshape-leak-1"
    assert "7654321" in failure["runtime_error"]
    await _nothing_kept(runtime, client, owner)


@pytest.mark.database
@pytest.mark.parametrize(
    ("attack", "detail"),
    [
        (attack_models.huge_constant_of_shape, TOO_MUCH_MEMORY),
        (attack_models.processor_hog, TOO_MUCH_PROCESSOR),
        (attack_models.endless_loop, REFUSALS["operator"].format(subject=" (Loop)")),
        (attack_models.custom_operator, REFUSALS["domain"].format(subject=" (com.attacker)")),
    ],
    ids=["constant-of-shape-10e11", "processor-hog", "loop-of-2e62-trips", "custom-domain"],
)
async def test_a_model_that_would_exhaust_the_server_is_refused_while_others_are_served(
    strict: tuple[Runtime, AsyncClient], attack: Any, detail: str
) -> None:
    runtime, client = strict
    owner = await member(runtime, client)
    bystander = await member(runtime, client)
    started = time.monotonic()

    status, body = await _while_serving(client, bystander, _upload(client, owner, attack()))

    assert status == 422, body
    assert body["detail"] == detail
    # Stopped at its limits (2 s of processor time, 30 s of wall time), not let run.
    assert time.monotonic() - started < SANDBOX.wall_seconds
    await _nothing_kept(runtime, client, owner)


@pytest.mark.database
async def test_a_model_that_explodes_on_some_photos_fails_those_with_a_reason_only(
    settings: Settings, committed_runtime: Runtime
) -> None:
    strict_settings = _strict(settings)
    runtime = dataclasses.replace(committed_runtime, settings=strict_settings)
    white = jpeg(np.full((256, 256, 3), 255, dtype=np.uint8))
    async with _serving(strict_settings, runtime) as client, worker_running(runtime):
        owner = await member(runtime, client)
        bystander = await member(runtime, client)
        # Harmless on the blank images of the upload check and on the catalog's photos;
        # asks for 10^11 values on a photo whose every pixel is brighter than 200.
        trap = attack_models.huge_on("ReduceMin", 200.0)
        assert (await _upload(client, owner, trap, name="trap"))[0] == 201
        await _catalog(client, owner)
        version = await _train(client, owner, backbones=["custom:trap", "handcrafted"])
        assert version["status"] == "ready", version

        async def recognize(photo: bytes) -> Any:
            return await client.post(
                "/api/v1/recognitions",
                files={"file": ("photo.jpg", photo, "image/jpeg")},
                headers=owner.headers,
            )

        exploded = await _while_serving(client, bystander, recognize(white))
        assert exploded.status_code == 422, exploded.text
        assert exploded.json()["type"].endswith("/image-model-failed")
        assert exploded.json()["detail"] == f"custom:trap: {TOO_MUCH_MEMORY}"
        # The model's next photo starts a new child.
        recognized = await recognize(_brass_photo())
        assert recognized.status_code == 201, recognized.text
        assert recognized.json()["predictions"][0]["label"] == "Brushed brass"

        started = await client.post(
            "/api/v1/recognition-batches",
            files=[
                ("files", ("white.jpg", white, "image/jpeg")),
                ("files", ("brass.jpg", _brass_photo(), "image/jpeg")),
            ],
            headers=owner.headers,
        )
        assert started.status_code == 202, started.text
        (job,) = await _finished(client, owner, "recognition.recognize_batch")
        assert job["status"] == "succeeded", job
        results = (
            await client.get(
                f"/api/v1/recognition-batches/{started.json()['id']}/results",
                headers=owner.headers,
            )
        ).json()["items"]
        assert [(row["status"], row["error"]) for row in results] == [
            ("failed", f"custom:trap: {TOO_MUCH_MEMORY}"),
            ("recognized", None),
        ]

        # Asks for 10^11 values on any photo that is not black: its training fails, saying why.
        greedy = attack_models.huge_on("ReduceMax", 0.0)
        assert (await _upload(client, owner, greedy, name="greedy"))[0] == 201
        training = await client.post(
            "/api/v1/models", json={"backbones": ["custom:greedy"]}, headers=owner.headers
        )
        assert training.status_code == 202, training.text
        jobs = await _finished(client, owner, "ml.train_model", 2)
        assert jobs[0]["status"] == "failed"
        failed = await client.get(f"/api/v1/models/{training.json()['id']}", headers=owner.headers)
        assert failed.json()["status"] == "failed"
        assert failed.json()["error"] == f"custom:greedy: {TOO_MUCH_MEMORY}"


def test_each_organizations_model_runs_in_children_of_its_own_that_hold_no_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAI_SECRET_KEY", "the server's secret")
    monkeypatch.chdir(tmp_path)
    spec = OnnxModelSpec.from_json(
        {"name": "custom:tiny", "input_side": 32, "mean": [0, 0, 0], "std": [1, 1, 1], "scale": 1}
    )
    data = attack_models.tiny()
    model_id = uuid.uuid4()
    organizations = [uuid.uuid4(), uuid.uuid4()]
    backbones = [
        sandboxed.backbone(
            organization_id=organization_id,
            model_id=model_id,
            spec=spec,
            digest="0" * 64,
            dimension=4,
            read_model=lambda: data,
            settings=VisionSettings(sandbox=SANDBOX),
            max_bytes=1024**2,
        )
        for organization_id in organizations
    ]
    photo = np.full((32, 32, 3), 90, dtype=np.uint8)

    rows = [backbone.embed([[photo]]) for backbone in backbones]

    assert np.allclose(rows[0], rows[1])
    (first,), (second,) = (backbone.processes() for backbone in backbones)
    assert first != second
    for pid in (first, second):
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not [entry for entry in environment if entry.startswith(b"KAI_")]
        working = Path(os.readlink(f"/proc/{pid}/cwd"))
        assert working != tmp_path
        assert list(working.iterdir()) == []
        descriptors = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        assert all(link.startswith("pipe:") or link == "/dev/null" for link in descriptors)
    # A child that died while idle (killed from outside) is replaced on the next photo.
    os.kill(first, signal.SIGKILL)
    os.waitid(os.P_PID, first, os.WEXITED | os.WNOWAIT)
    assert np.allclose(backbones[0].embed([[photo]]), rows[0])
    (replacement,) = backbones[0].processes()
    assert replacement != first
    # A deleted model's children stop; the other organization's stay.
    sandboxed.forget(organizations[0], model_id)
    assert not Path(f"/proc/{replacement}").exists()
    assert Path(f"/proc/{second}").exists()
