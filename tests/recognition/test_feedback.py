"""Feedback on a recognition as a person gives it: "right", "wrong, it is this", or just "it is
this"; never a contradiction that would teach the next training something false."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient, Response

from kai.identity.actor import Actor
from kai.identity.permissions import BUILT_IN_ROLES
from kai.kit.db import act_for
from kai.ml import training
from kai.recognition.models import Recognition
from kai.runtime import Runtime
from tests.catalog.factories import create_category, create_material
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database


def _actor(owner: Member) -> Actor:
    return Actor(
        "user", owner.organization_id, BUILT_IN_ROLES["owner"], user_id=owner.user.id, role="owner"
    )


async def _recognized(
    runtime: Runtime,
    owner: Member,
    *,
    label: str | None,
    category_id: str | None,
    model_version_id: uuid.UUID | None = None,
) -> str:
    """A recognition as the recognizer stores it: KAI answered `label` (None: unknown)."""
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        recognition = Recognition(
            organization_id=owner.organization_id,
            model_version_id=model_version_id,
            image_key=f"organizations/{owner.organization_id}/uploads/{uuid.uuid4()}.png",
            sha256="0" * 64,
            content_type="image/png",
            width=64,
            height=64,
            label=label,
            category_id=uuid.UUID(category_id) if category_id else None,
            confidence=None if label is None else 0.9,
            unknown=label is None,
            unknown_reason="low_confidence" if label is None else None,
            predictions=[],
            similar=[],
            timings={},
        )
        session.add(recognition)
    return str(recognition.id)


async def _learned(runtime: Runtime, owner: Member, **options: Any) -> list[str]:
    """The labels the next training would give the photos people labelled in feedback."""
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        sources = await training.training_sources(session, organization_id=owner.organization_id)
    examples = training.label_examples(sources, training.TrainingOptions(**options))
    return [example.label for example in examples if example.source == "feedback"]


async def _feedback(
    client: AsyncClient, owner: Member, recognition_id: str, body: dict[str, Any]
) -> Response:
    return await client.post(
        f"/api/v1/recognitions/{recognition_id}/feedback", json=body, headers=owner.headers
    )


@pytest.fixture
async def owner(runtime: Runtime, client: AsyncClient) -> Member:
    return await member(runtime, client)


async def test_feedback_that_contradicts_itself_is_refused_and_teaches_nothing(
    runtime: Runtime, client: AsyncClient, owner: Member
) -> None:
    tiles = await create_category(client, owner, "Tiles")
    porcelain = await create_category(client, owner, "Porcelain", parent_id=tiles["id"])
    stone = await create_category(client, owner, "Stone")
    grey = await create_material(client, owner, category_id=porcelain["id"], name="Grey")
    said_tiles = await _recognized(runtime, owner, label="Tiles", category_id=tiles["id"])

    refused = [
        # "Right", and it is stone: which of the two?
        {"correct": True, "category_id": stone["id"]},
        # "Wrong", and it is what KAI said.
        {"correct": False, "category_id": tiles["id"]},
        {"correct": False, "material_id": grey["id"]},
        # A material of another category than the one named.
        {"category_id": stone["id"], "material_id": grey["id"]},
        # Nothing said at all.
        {},
        {"correct": False},
    ]
    for body in refused:
        answer = await _feedback(client, owner, said_tiles, body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"

    assert await _learned(runtime, owner) == []
    contradiction = (await _feedback(client, owner, said_tiles, refused[0])).json()
    assert contradiction["detail"] == (
        "KAI answered Tiles, and the category Stone is not that: send correct false, or leave"
        " correct out."
    )
    assert [error["loc"] for error in contradiction["errors"]] == [["body", "correct"]]


async def test_naming_what_the_photo_is_says_whether_the_answer_was_right(
    runtime: Runtime, client: AsyncClient, owner: Member
) -> None:
    tiles = await create_category(client, owner, "Tiles")
    porcelain = await create_category(client, owner, "Porcelain", parent_id=tiles["id"])
    stone = await create_category(client, owner, "Stone")
    grey = await create_material(client, owner, category_id=porcelain["id"], name="Grey")
    said_tiles = await _recognized(runtime, owner, label="Tiles", category_id=tiles["id"])

    # What it is, alone: the right answer is this, and KAI's was not.
    wrong = await _feedback(client, owner, said_tiles, {"category_id": stone["id"]})
    assert wrong.status_code == 201, wrong.text
    assert (wrong.json()["correct"], wrong.json()["category_id"]) == (False, stone["id"])
    assert await _learned(runtime, owner) == ["Stone"]

    # Right, and more precisely porcelain: the latest word replaces the earlier one.
    precise = await _feedback(
        client, owner, said_tiles, {"correct": True, "category_id": porcelain["id"]}
    )
    assert precise.status_code == 201, precise.text
    assert precise.json()["correct"] is True
    assert await _learned(runtime, owner) == ["Porcelain"]
    assert await _learned(runtime, owner, category_level=1) == ["Tiles"]

    # A material of what KAI said, alone: right, and the photo is that material.
    material = await _feedback(client, owner, said_tiles, {"material_id": grey["id"]})
    assert material.json()["correct"] is True
    assert await _learned(runtime, owner) == ["Porcelain"]
    assert await _learned(runtime, owner, label_by="material") == [f"Grey ({grey['code']})"]

    # "Right", naming nothing: what KAI said.
    confirmed = await _feedback(client, owner, said_tiles, {"correct": True})
    assert confirmed.json()["correct"] is True
    assert await _learned(runtime, owner) == ["Tiles"]

    # KAI did not know: whatever is named, its answer was not right.
    unsure = await _recognized(runtime, owner, label=None, category_id=None)
    named = await _feedback(client, owner, unsure, {"category_id": tiles["id"]})
    assert named.json()["correct"] is False


async def test_with_labels_by_material_right_means_the_material_kai_answered(
    runtime: Runtime, client: AsyncClient, owner: Member
) -> None:
    porcelain = await create_category(client, owner, "Porcelain")
    grey = await create_material(client, owner, category_id=porcelain["id"], name="Grey")
    white = await create_material(client, owner, category_id=porcelain["id"], name="White")
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        version = await training.new_version(
            session, actor=_actor(owner), options=training.TrainingOptions(label_by="material")
        )
    said_grey = await _recognized(
        runtime,
        owner,
        label=f"Grey ({grey['code']})",
        category_id=porcelain["id"],
        model_version_id=version.id,
    )

    # Of the category KAI's material is in, but another material.
    other = await _feedback(client, owner, said_grey, {"correct": True, "material_id": white["id"]})
    assert other.status_code == 422, other.text
    assert other.json()["detail"].startswith(f"KAI answered Grey ({grey['code']}), and the")

    named = await _feedback(client, owner, said_grey, {"material_id": white["id"]})
    assert named.json()["correct"] is False
    same = await _feedback(client, owner, said_grey, {"material_id": grey["id"]})
    assert same.json()["correct"] is True
    assert await _learned(runtime, owner, label_by="material") == [f"Grey ({grey['code']})"]
