"""Image models an organization brings: an ONNX model uploaded, checked by running it, trained
on as a backbone beside the built-in ones, and bad models refused without a trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import pytest
from httpx import AsyncClient

from kai.runtime import Runtime
from tests.identity.factories import Member, member
from tests.kit.deletions import run_queued_deletions
from tests.recognition.test_recognitions import _brass_photo, _catalog, _train
from tests.vision.test_backbones import _tiny_model

pytestmark = pytest.mark.database

TINY_SPEC = {"input_side": "32", "mean": "0,0,0", "std": "1,1,1", "scale": "1"}


def _tiny(tmp_path: Path) -> bytes:
    path = tmp_path / "tiny.onnx"
    _tiny_model(path)
    return path.read_bytes()


def _one_at_a_time(tmp_path: Path) -> bytes:
    """The tiny model with a fixed batch of one, as an export without dynamic axes has."""
    model = onnx.load_from_string(_tiny(tmp_path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 1
    return model.SerializeToString()


async def _upload(
    client: AsyncClient, who: Member, data: bytes, **fields: str
) -> tuple[int, dict[str, Any]]:
    answer = await client.post(
        "/api/v1/backbones",
        files={"file": ("model.onnx", data, "application/octet-stream")},
        data={"name": "tiny", **TINY_SPEC, **fields},
        headers=who.headers,
    )
    body: dict[str, Any] = answer.json()
    return answer.status_code, body


async def test_an_uploaded_model_is_trained_on_and_recognizes(
    committed_runtime: Runtime,
    committed_client: AsyncClient,
    running_worker: None,
    tmp_path: Path,
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)

    status, uploaded = await _upload(client, owner, _tiny(tmp_path))

    assert status == 201, uploaded
    assert uploaded["name"] == "custom:tiny"
    assert uploaded["dimension"] == 4
    assert uploaded["spec"]["input_side"] == 32
    listed = await client.get("/api/v1/backbones", headers=owner.headers)
    assert [entry["name"] for entry in listed.json()["items"]] == [
        "efficientnet-lite0",
        "efficientnet-lite1",
        "efficientnet-lite2",
        "handcrafted",
        "custom:tiny",
    ]
    await _catalog(client, owner)
    version = await _train(client, owner, backbones=["custom:tiny", "handcrafted"])
    assert version["status"] == "ready", version
    assert [backbone["name"] for backbone in version["backbones"]] == [
        "custom:tiny",
        "handcrafted",
    ]
    answered = await client.post(
        "/api/v1/recognitions",
        files={"file": ("brass.jpg", _brass_photo(), "image/jpeg")},
        headers=owner.headers,
    )
    assert answered.status_code == 201, answered.text
    assert answered.json()["predictions"][0]["label"] == "Brushed brass"
    assert "embed.custom:tiny" in answered.json()["timings"]
    # Kept while a version trained on it exists.
    kept = await client.delete("/api/v1/backbones/custom:tiny", headers=owner.headers)
    assert kept.status_code == 409
    assert kept.json()["type"].endswith("image-model-in-use")


async def test_bad_models_and_backbones_are_refused_and_leave_nothing_behind(
    runtime: Runtime, client: AsyncClient, tmp_path: Path
) -> None:
    owner = await member(runtime, client)
    assert owner.organization is not None
    editor = await member(runtime, client, role="editor", organization=owner.organization)
    tiny = _tiny(tmp_path)
    refusals: list[tuple[Member, bytes, dict[str, str], int]] = [
        (owner, b"not a model at all", {}, 422),
        (owner, tiny[: len(tiny) // 2], {}, 422),
        # Declared for 64-pixel images, it only takes 32.
        (owner, tiny, {"input_side": "64"}, 422),
        (owner, tiny, {"layout": "nhwc"}, 422),
        (owner, tiny, {"output": "logits"}, 422),
        (owner, tiny, {"mean": "a,b,c"}, 422),
        (owner, tiny, {"mean": "1.2.3,0,0"}, 422),
        # Exported for one image at a time: it would fail in every training.
        (owner, _one_at_a_time(tmp_path), {}, 422),
        (owner, tiny, {"std": "1,0,1"}, 422),
        (owner, tiny, {"name": "Bad Name"}, 422),
        (owner, tiny, {"input_side": "9000"}, 422),
        # Uploading a model to run on the servers is an admin's decision.
        (editor, tiny, {}, 403),
    ]

    for who, data, fields, expected in refusals:
        status, body = await _upload(client, who, data, **fields)
        assert status == expected, (fields, body)
        assert body["status"] == expected

    assert [
        entry["name"]
        for entry in (await client.get("/api/v1/backbones", headers=owner.headers)).json()["items"]
    ] == ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "handcrafted"]
    prefix = f"{owner.organization.id}/models/"
    assert [stored async for stored in runtime.storage.list(prefix)] == []
    assert (await _upload(client, owner, tiny))[0] == 201
    taken, body = await _upload(client, owner, tiny)
    assert taken == 409
    assert body["type"].endswith("image-model-taken")

    # A training may name built-ins and the organization's uploads, never a server file.
    for backbones in (
        ["onnx:/etc/passwd"],
        ["custom:nope"],
        ["resnet"],
        [],
        ["handcrafted", "handcrafted"],
    ):
        refused = await client.post(
            "/api/v1/models", json={"backbones": backbones}, headers=owner.headers
        )
        assert refused.status_code == 422, (backbones, refused.text)
    versions = await client.get("/api/v1/models", headers=owner.headers)
    assert versions.json() == {"items": [], "next_cursor": None}

    # Not used by any version: it can go, and its file with it.
    gone = await client.delete("/api/v1/backbones/custom:tiny", headers=owner.headers)
    assert gone.status_code == 204
    # Once the deletion has committed, that is (this test's transaction never does).
    assert len([stored async for stored in runtime.storage.list(prefix)]) == 1
    await run_queued_deletions(runtime, owner.organization_id)
    assert [stored async for stored in runtime.storage.list(prefix)] == []
    again = await client.delete("/api/v1/backbones/custom:tiny", headers=owner.headers)
    assert again.status_code == 404
