"""Image models an organization brings: ONNX backbones uploaded with how to feed them, checked
by running them once, stored in the organization's storage, and trained on as
`custom:<name>` beside (or instead of) the built-in backbones.

Backbone names a training may ask for: the built-ins, the organization's own `custom:<name>`,
and, from the command line only, `onnx:<file>` (a file on the server's disk).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from kai.config import Settings
from kai.identity.actor import Actor
from kai.kit.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable
from kai.kit.storage import ObjectStorage
from kai.kit.storage.keys import model_key
from kai.ml.models import ImageModel
from kai.ml.repository import ImageModelRepository
from kai.search.models import VISUAL_DIMENSIONS
from kai.vision.backbones import (
    DEFAULT_BACKBONES,
    USER_PREFIX,
    Backbone,
    BackboneUnavailable,
    OnnxBackbone,
    OnnxModelSpec,
    efficientnet,
    get_backbone,
    handcrafted,
)
from kai.vision.backbones.onnx import spec_path

CUSTOM_PREFIX = "custom:"
# What an uploaded model's embedding may be: wide enough for any common backbone.
MAX_DIMENSION = 8192
# A ResNet-152 is 240 MB; past the request limit (KAI_MAX_BODY_BYTES) raise that too.
MAX_MODEL_BYTES = 512 * 1024**2


class InvalidImageModel(Unprocessable):
    type, title = "invalid-image-model", "The model cannot be used"


class ImageModelTaken(Conflict):
    type, title = "image-model-taken", "An image model has this name"
    constraints = ("uq_image_models_name",)


class ImageModelInUse(Conflict):
    type, title = "image-model-in-use", "The image model is in use"


class ImageModelNotFound(NotFound):
    type, title = "image-model-not-found", "No such image model"


def _check_runs(data: bytes, spec: OnnxModelSpec) -> int:
    """Load the model from its bytes (so it cannot reach for files beside it) and embed one
    blank image: its embedding's width, or why it cannot be used."""
    with tempfile.TemporaryDirectory(prefix="kai-model-check-") as scratch:
        path = Path(scratch) / "model.onnx"
        path.write_bytes(data)
        try:
            backbone = OnnxBackbone(path, spec, threads=1, from_bytes=True)
            dimension = backbone.dimension
            # Photos are embedded several at a time: a model exported for one image at a
            # time (a fixed batch of 1) would load and run here and fail in every training.
            blank = np.zeros((spec.input_side, spec.input_side, 3), dtype=np.uint8)
            backbone.embed([[blank], [blank]])
        except BackboneUnavailable as exc:
            raise InvalidImageModel(exc.detail or exc.title) from None
        except Exception as exc:  # onnxruntime's own errors: a shape or type it refuses
            raise InvalidImageModel(
                f"The model does not run on {spec.input_side} px RGB images, several at once "
                f"(a dynamic batch size), as declared: {exc}"
            ) from None
    if not 1 <= dimension <= MAX_DIMENSION:
        raise InvalidImageModel(f"The embedding has {dimension} values; at most {MAX_DIMENSION}.")
    return dimension


def built_in_backbones() -> list[tuple[str, int, int | None]]:
    """Name, input side and (where known without loading) embedding width of each built-in."""
    return [
        (efficientnet.NAME, efficientnet.SPEC.input_side, VISUAL_DIMENSIONS),
        (handcrafted.NAME, handcrafted.INPUT_SIDE, None),
    ]


async def upload(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    actor: Actor,
    name: str,
    data: bytes,
    spec: dict[str, Any],
) -> ImageModel:
    """Check, store and record a model; nothing is kept when it cannot be used."""
    organization_id = actor.tenant_id
    repository = ImageModelRepository(session)
    if await repository.by_name(organization_id, name) is not None:
        raise ImageModelTaken(f"There is an image model called {name!r} already.")
    try:
        checked = OnnxModelSpec.from_json({**spec, "name": CUSTOM_PREFIX + name})
    except (ValueError, TypeError) as exc:
        raise InvalidImageModel(f"The model's description is not valid: {exc}") from None
    if len(data) > MAX_MODEL_BYTES:
        raise PayloadTooLarge(f"A model may be at most {MAX_MODEL_BYTES} bytes.")
    dimension = await asyncio.to_thread(_check_runs, data, checked)
    digest = hashlib.sha256(data).hexdigest()
    key = model_key(organization_id, f"backbones/{name}-{digest[:12]}.onnx")
    # The same name uploaded at the same moment: the unique index answers ImageModelTaken.
    model = await repository.add(
        ImageModel(
            organization_id=organization_id,
            name=name,
            sha256=digest,
            size_bytes=len(data),
            storage_key=key,
            spec={k: v for k, v in checked.to_json().items() if k != "name"},
            dimension=dimension,
            created_by=actor.author,
        )
    )
    await storage.put(key, data, content_type="application/octet-stream")
    return model


async def list_models(session: AsyncSession, *, actor: Actor) -> Sequence[ImageModel]:
    return await ImageModelRepository(session).all(actor.tenant_id)


async def delete(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    actor: Actor,
    name: str,
    settings: Settings,
) -> None:
    """Delete a model no ready or training version uses."""
    repository = ImageModelRepository(session)
    model = await repository.by_name(actor.tenant_id, name)
    if model is None:
        raise ImageModelNotFound(f"No image model called {name!r} in this organization.")
    users = await repository.versions_using(actor.tenant_id, CUSTOM_PREFIX + name)
    if users:
        numbers = ", ".join(str(number) for number in users)
        raise ImageModelInUse(
            f"Model versions {numbers} were trained on {name!r}: it is kept while they are."
        )
    await repository.delete(model)
    await storage.delete(model.storage_key)
    # This server's copy too (others keep theirs, unused: no version can name it now).
    local = _local_copy(settings, actor.tenant_id, model.id)
    for stale in (local, spec_path(local)):
        stale.unlink(missing_ok=True)


async def check_backbone_names(
    session: AsyncSession, *, actor: Actor, names: Sequence[str]
) -> None:
    """Refuse a training asking for a backbone it cannot have."""
    problems = []
    for index, name in enumerate(names):
        if name in DEFAULT_BACKBONES:
            continue
        if name.startswith(CUSTOM_PREFIX):
            found = await ImageModelRepository(session).by_name(
                actor.tenant_id, name.removeprefix(CUSTOM_PREFIX)
            )
            if found is not None:
                continue
            problem = "no such image model in this organization"
        elif name.startswith(USER_PREFIX) and actor.kind == "operator":
            continue  # `kai train`: the operator names a file on the server's own disk
        else:
            problem = f"one of {', '.join(DEFAULT_BACKBONES)} or custom:<an uploaded model>"
        problems.append({"loc": ["body", "backbones", index], "msg": problem, "type": "value"})
    if problems:
        raise InvalidImageModel("A backbone asked for is not available.", errors=problems)


async def load_backbone(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    organization_id: uuid.UUID,
    name: str,
    settings: Settings,
) -> Backbone:
    """The named backbone for the organization, loaded once per process; an uploaded model is
    first copied from storage to the model store's `custom/<organization>/` on this server."""
    threads = settings.vision.threads
    if not name.startswith(CUSTOM_PREFIX):
        return await asyncio.to_thread(
            get_backbone, name, model_dir=settings.model_dir, threads=threads
        )
    model = await ImageModelRepository(session).by_name(
        organization_id, name.removeprefix(CUSTOM_PREFIX)
    )
    if model is None:
        raise BackboneUnavailable(f"The image model {name!r} was deleted.")
    # Named by the upload's id: a model deleted and uploaded again under its name (the same
    # file, another spec, say) is another file here, and another backbone in the cache.
    path = _local_copy(settings, organization_id, model.id)
    if not path.is_file():
        data = await storage.read(model.storage_key)
        await asyncio.to_thread(_place, path, data, {**model.spec, "name": name})
    return await asyncio.to_thread(
        get_backbone, USER_PREFIX + str(path), model_dir=settings.model_dir, threads=threads
    )


def _local_copy(settings: Settings, organization_id: uuid.UUID, model_id: uuid.UUID) -> Path:
    return settings.model_dir / "custom" / str(organization_id) / f"{model_id}.onnx"


def _place(path: Path, data: bytes, spec: dict[str, Any]) -> None:
    """Write the model and its spec beside it, each whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, content in ((spec_path(path), json.dumps(spec).encode()), (path, data)):
        handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
            os.replace(scratch, target)
        finally:
            Path(scratch).unlink(missing_ok=True)
