"""The review queue: what is worth a person's label is queued and shown with near-identical
photos spread out; a label given takes it out and becomes training data; and the
organization's rules train a challenger on enough new labels and test it by themselves."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import numpy as np
import pytest
from httpx import AsyncClient

from kai.ml import review
from kai.ml.models import ReviewItem
from kai.runtime import Runtime
from kai.vision import non_materials
from tests.identity.factories import member
from tests.recognition.test_recognitions import _catalog, _finished, _train

pytestmark = pytest.mark.database


def _item(key: str, reason: str = "unknown") -> ReviewItem:
    return ReviewItem(
        recognition_id=uuid.uuid4(), image_key=key, features_of="f", reason=reason, margin=None
    )


def test_what_is_worth_a_look_is_queued_and_what_is_sure_is_not() -> None:
    sure = [{"label": "Oak", "confidence": 0.9}, {"label": "Ash", "confidence": 0.05}]
    close = [{"label": "Oak", "confidence": 0.48}, {"label": "Ash", "confidence": 0.4}]
    assert review.reason_for(unknown=False, predictions=sure, shadow=None, label="Oak") is None
    assert review.reason_for(unknown=False, predictions=close, shadow=None, label="Oak") == (
        "low_margin"
    )
    assert review.reason_for(unknown=True, predictions=sure, shadow=None, label=None) == "unknown"
    other = {"label": "Ash", "unknown": False}
    assert review.reason_for(unknown=False, predictions=sure, shadow=other, label="Oak") == (
        "disagreement"
    )


def test_near_identical_photos_do_not_crowd_the_top_of_the_queue() -> None:
    # Three shots of one tile, and one other photo, all equally worth a look.
    tile = np.asarray([1.0, 0.0, 0.0])
    vectors = {
        "a": tile,
        "b": tile + np.asarray([0.0, 0.01, 0.0]),
        "c": tile + np.asarray([0.0, 0.0, 0.01]),
        "other": np.asarray([0.0, 1.0, 0.0]),
    }
    items = [_item(key) for key in ("a", "b", "c", "other")]
    ranked = [item.image_key for item in review.rank(items, vectors)]
    assert ranked[:2] == ["a", "other"]
    assert sorted(ranked[2:]) == ["b", "c"]
    # A more pressing reason still comes first.
    pressing = [_item("a"), _item("b", "disagreement")]
    assert [item.image_key for item in review.rank(pressing, vectors)] == ["b", "a"]


async def test_labels_from_the_queue_train_and_test_a_challenger_by_the_organizations_rules(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    materials = await _catalog(client, owner)
    first = await _train(client, owner)
    rules = await client.patch(
        "/api/v1/model-settings",
        json={"retrain_after_labels": 2, "test_challenger": True},
        headers=owner.headers,
    )
    assert rules.status_code == 200, rules.text
    assert rules.json() == {
        "retrain_after_labels": 2,
        "retrain_on_drift": False,
        "test_challenger": True,
        "auto_promote": False,
    }

    # Noise and flat colours: KAI does not know them.
    unknown_ids = []
    for _, pixels in non_materials.non_materials(1, seed=5)[:3]:
        answered = await client.post(
            "/api/v1/recognitions",
            files={"file": ("odd.png", non_materials.png(pixels), "image/png")},
            headers=owner.headers,
        )
        assert answered.status_code == 201, answered.text
        assert answered.json()["unknown"] is True
        unknown_ids.append(answered.json()["id"])
    queue = (await client.get("/api/v1/review-queue", headers=owner.headers)).json()
    assert queue["pending"] == 3
    assert {item["recognition"]["id"] for item in queue["queue"]} == set(unknown_ids)
    assert {item["reason"] for item in queue["queue"]} == {"unknown"}

    # Two labelled (as feedback), one skipped: the queue is empty.
    category = materials["grey_terrazzo0"]["category"]["id"]
    for recognition_id in unknown_ids[:2]:
        said = await client.post(
            f"/api/v1/recognitions/{recognition_id}/feedback",
            json={"category_id": category},
            headers=owner.headers,
        )
        assert said.status_code == 201, said.text
    skipped = await client.post(
        f"/api/v1/review-queue/{unknown_ids[2]}/skip", headers=owner.headers
    )
    assert skipped.status_code == 204
    again = await client.post(f"/api/v1/review-queue/{uuid.uuid4()}/skip", headers=owner.headers)
    assert again.status_code == 404
    assert (await client.get("/api/v1/review-queue", headers=owner.headers)).json() == {
        "queue": [],
        "pending": 0,
    }

    # Two new labels: the rules trained a challenger, never activated, and started its test.
    (trained, *_) = await _finished(client, owner, "ml.train_model", 2)
    assert trained["status"] == "succeeded", trained
    versions = (await client.get("/api/v1/models", headers=owner.headers)).json()["items"]
    challenger = next(version for version in versions if version["number"] == 2)
    assert challenger["active"] is False
    assert challenger["options"]["challenger"] is True
    assert challenger["metrics"]["validation"]["photos"] == 18 + 2
    tests = await _running_test(client, owner)
    assert tests["challenger_version_id"] == challenger["id"]
    assert tests["champion_version_id"] == first["id"]
    assert tests["auto_promote"] is False
    kinds = [
        event["kind"]
        for event in (await client.get("/api/v1/model-events", headers=owner.headers)).json()[
            "items"
        ]
    ]
    assert kinds == ["experiment.started", "model.challenger_queued"]


async def _running_test(client: AsyncClient, owner: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = (await client.get("/api/v1/model-experiments", headers=owner.headers)).json()
        running = [test for test in listed["items"] if test["status"] == "running"]
        if running:
            found: dict[str, Any] = running[0]
            return found
        await asyncio.sleep(0.25)
    raise AssertionError("no A/B test started")
