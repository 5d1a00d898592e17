"""Drift: a window of live photos like those a version was validated on is stable; a window
of blurred, colour-cast photos of the same materials is drift, stored and announced."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from httpx import AsyncClient
from PIL import Image, ImageFilter

from kai.ml import drift
from kai.runtime import Runtime
from tests.identity.factories import Member, member
from tests.recognition.test_recognitions import _catalog, _train
from tests.vision.textures import checks, grain, jpeg, stripes

pytestmark = pytest.mark.database

PER_MATERIAL = 12


def _photos(seed: int) -> list[np.ndarray]:
    """New photos of the three materials the catalog holds (other seeds than its own)."""
    found = []
    for index in range(PER_MATERIAL):
        found.append(
            stripes(
                192,
                period=7 + index % 3,
                angle=0.1 * index,
                colour=(200, 160, 70),
                seed=seed + index,
            )
        )
        found.append(checks(192, cell=14 + index % 4, colour=(60, 90, 190), seed=seed + index))
        found.append(grain(192, blur=5 + index % 3, colour=(150, 150, 145), seed=seed + index))
    return found


def _shifted(pixels: np.ndarray) -> bytes:
    """The photo out of focus under warm light: blurred, and its colours cast."""
    blurred = Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(radius=6))
    cast = np.asarray(blurred, dtype=np.float64) * np.asarray([1.35, 0.85, 0.55])
    out = io.BytesIO()
    Image.fromarray(np.clip(cast, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


async def _recognize_all(client: AsyncClient, owner: Member, photos: list[bytes]) -> None:
    for photo in photos:
        answered = await client.post(
            "/api/v1/recognitions",
            files={"file": ("photo.jpg", photo, "image/jpeg")},
            data={"similar_k": "0"},
            headers=owner.headers,
        )
        assert answered.status_code == 201, answered.text


async def _check(client: AsyncClient, owner: Member) -> dict[str, Any]:
    checked = await client.post("/api/v1/model-drift/check", headers=owner.headers)
    assert checked.status_code == 200, checked.text
    body: dict[str, Any] = checked.json()
    return body


async def test_shifted_photos_raise_drift_and_photos_like_the_training_ones_do_not(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    await _catalog(client, owner)
    await _train(client, owner)

    # Too few recognitions for a window yet.
    empty = await _check(client, owner)
    assert empty["window"] is None
    assert "at least 30" in empty["detail"]

    await _recognize_all(client, owner, [jpeg(pixels) for pixels in _photos(500)])
    alike = await _check(client, owner)
    assert alike["window"] is not None, alike
    assert alike["window"]["recognitions"] == 3 * PER_MATERIAL
    assert alike["window"]["drifted"] is False, alike["window"]["figures"]
    assert alike["detail"] == "No drift."

    await _recognize_all(client, owner, [_shifted(pixels) for pixels in _photos(700)])
    shifted = await _check(client, owner)
    window = shifted["window"]
    assert window is not None
    assert window["recognitions"] == 3 * PER_MATERIAL  # only those since the last window
    assert window["drifted"] is True, window["figures"]
    assert "appearance" in window["figures"]["reasons"]
    assert shifted["detail"].startswith("Drift: ")

    # Over time: both windows, newest first; and the drift is announced.
    listed = (await client.get("/api/v1/model-drift", headers=owner.headers)).json()["items"]
    assert [item["drifted"] for item in listed] == [True, False]
    events = (await client.get("/api/v1/model-events", headers=owner.headers)).json()["items"]
    assert events[0]["kind"] == "drift.detected"
    assert events[0]["data"]["reasons"] == window["figures"]["reasons"]


def test_the_population_stability_index_reads_as_documented() -> None:
    even = np.asarray([25.0, 25, 25, 25])
    assert drift.psi(even, even) == pytest.approx(0.0)
    assert drift.psi(even, np.asarray([26.0, 24, 25, 25])) < 0.1
    assert drift.psi(even, np.asarray([70.0, 10, 10, 10])) > drift.PSI_THRESHOLD
