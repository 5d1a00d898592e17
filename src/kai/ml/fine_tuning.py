"""Fine-tuning as a training option: an EfficientNet-Lite network fine-tuned on the
organization's labelled photos (in a child process, `kai.vision.fine_tune`: PyTorch, on the GPU
when there is one), exported to ONNX checked against PyTorch, and kept as one of the
organization's image models (`custom:fine-tuned-v<N>`, origin "fine-tuned"). The version being
trained then stands on it like on any backbone, and later trainings may name it too.

A training run that is repeated (a stalled job handed to another worker) finds the model its
first run recorded and fine-tunes nothing again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import Field
from sqlalchemy.exc import IntegrityError

from kai.kit.db import new_id
from kai.kit.errors import KaiError
from kai.kit.schemas import RequestModel
from kai.kit.storage import ObjectStorage
from kai.kit.storage.keys import model_key
from kai.kit.storage.transactional import put_for_transaction
from kai.ml.models import ImageModel, ModelVersion
from kai.ml.repository import ImageModelRepository
from kai.vision.backbones import efficientnet

log = structlog.get_logger(__name__)

PREFIX = "fine-tuned-v"
# Past this a fine-tuning is stopped and the training fails (a CPU takes minutes for a few
# hundred photos; a catalog of thousands on a slow machine, an hour or two).
TIMEOUT_S = 4 * 3600
# How much of a child's failure is kept as the training's error.
ERROR_CHARS = 1500

Networks = Literal["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]
Progress = Callable[[int, int | None], Awaitable[None]]


class FineTuningFailed(KaiError):
    status, type, title = 503, "fine-tuning-failed", "The image model could not be fine-tuned"


class FineTuning(RequestModel):
    """Fine-tune an image network on the organization's photos before training the heads."""

    network: Networks = Field(
        default="efficientnet-lite0",
        description="The ImageNet network to start from. The fine-tuned one takes its place "
        "among the version's backbones (or joins them first when they do not name it).",
    )
    epochs: int = Field(
        default=8,
        ge=1,
        le=50,
        description="Passes over the photos, each photo cropped, mirrored and recoloured anew.",
    )
    holdout: float = Field(
        default=0.2,
        ge=0,
        le=0.5,
        description="The share of each label's photos never fine-tuned on, where the report's "
        "held-out accuracy is measured.",
    )


@dataclass(frozen=True)
class Photo:
    key: str
    label: str


def model_name(version: ModelVersion) -> str:
    return f"{PREFIX}{version.number}"


def backbones_with(names: Sequence[str], network: str, tuned: str) -> list[str]:
    """The version's backbones with the fine-tuned model in the network's place (or first)."""
    if network in names:
        return [tuned if name == network else name for name in names]
    return [tuned, *names]


async def fine_tuned_model(
    sessions: Callable[[], Any],
    storage: ObjectStorage,
    *,
    version: ModelVersion,
    options: FineTuning,
    photos: Sequence[Photo],
    progress: Progress | None = None,
) -> ImageModel:
    """The model this version's training fine-tuned: made now (minutes to hours, no
    transaction open meanwhile), or found where an earlier run of the same training made it."""
    organization_id = version.organization_id
    name = model_name(version)
    async with sessions() as session:
        found = await ImageModelRepository(session).by_name(organization_id, name)
    if found is not None:
        return found
    with tempfile.TemporaryDirectory(prefix="kai-fine-tune-") as scratch:
        folder = Path(scratch)
        listed = []
        for index, photo in enumerate(photos):
            try:
                data = await storage.read(photo.key)
            except (KaiError, OSError) as exc:
                log.warning("ml.fine_tune_photo_unread", key=photo.key, error=str(exc)[:200])
                continue
            path = folder / f"{index}.photo"
            await asyncio.to_thread(path.write_bytes, data)
            listed.append({"path": str(path), "label": photo.label})
        manifest = folder / "manifest.json"
        manifest.write_text(
            json.dumps(
                {
                    "network": options.network,
                    "epochs": options.epochs,
                    "holdout": options.holdout,
                    "seed": 0,
                    "photos": listed,
                }
            )
        )
        target = folder / "model.onnx"
        report = await _run_child(manifest, target, progress=progress)
        data = await asyncio.to_thread(target.read_bytes)
    report["model_version_id"] = str(version.id)
    report["model_version"] = version.number
    model_id = new_id()
    key = model_key(organization_id, f"backbones/{name}-{model_id}.onnx")
    spec = efficientnet.BY_NAME[options.network].spec.to_json()
    try:
        async with sessions() as session:
            model = await ImageModelRepository(session).add(
                ImageModel(
                    id=model_id,
                    organization_id=organization_id,
                    name=name,
                    sha256=hashlib.sha256(data).hexdigest(),
                    size_bytes=len(data),
                    storage_key=key,
                    spec={k: v for k, v in spec.items() if k != "name"},
                    dimension=efficientnet.DIMENSIONS,
                    origin="fine-tuned",
                    details=report,
                    created_by=version.created_by,
                )
            )
            await put_for_transaction(
                session, storage, key, data, content_type="application/octet-stream"
            )
    except IntegrityError:
        # Another run of this training recorded its model first: that one is the version's.
        async with sessions() as session:
            found = await ImageModelRepository(session).by_name(organization_id, name)
        if found is None:
            raise
        return found
    log.info(
        "ml.fine_tuned",
        model=name,
        network=options.network,
        photos=report.get("photos"),
        held_out_accuracy=report.get("held_out_accuracy"),
        seconds=report.get("training_seconds"),
    )
    return model


async def _run_child(manifest: Path, target: Path, *, progress: Progress | None) -> dict[str, Any]:
    """Run `kai.vision.fine_tune` and read its report; its progress lines go to `progress`."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kai.vision.fine_tune",
        str(manifest),
        str(target),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    assert child.stderr is not None
    errors = asyncio.ensure_future(child.stderr.read())
    report: dict[str, Any] | None = None

    async def read() -> None:
        nonlocal report
        assert child.stdout is not None
        async for line in child.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "report" in message:
                report = message["report"]
            elif "progress" in message and progress is not None:
                await progress(int(message["progress"]), int(message["of"]))

    try:
        await asyncio.wait_for(read(), timeout=TIMEOUT_S)
        await child.wait()
    except BaseException:
        if child.returncode is None:
            child.kill()
            await child.wait()
        raise
    finally:
        stderr = (await errors).decode(errors="replace")
    if child.returncode != 0 or report is None or not await asyncio.to_thread(target.is_file):
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"the child exited with {child.returncode}"
        raise FineTuningFailed(f"Fine-tuning failed: {reason[:ERROR_CHARS]}")
    return report
