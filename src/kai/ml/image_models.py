"""Image models an organization brings: ONNX backbones uploaded with how to feed them, checked
(by `onnx`, then by running them once) in a sandbox child, stored in the organization's
storage, and trained on as `custom:<name>` beside (or instead of) the built-in backbones. The
server never runs an uploaded model itself: its children do (kai.vision.backbones.sandboxed).

An upload is prepared (name, description, size), checked in a child (the request holding no
database connection meanwhile: the endpoint gives it back) and then recorded.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kai.config import Settings
from kai.identity.actor import Actor
from kai.kit.db import new_id
from kai.kit.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable
from kai.kit.jobs.tasks import delete_after_commit
from kai.kit.model_cache import MODELS
from kai.kit.pagination import PageParams
from kai.kit.storage import ObjectStorage
from kai.kit.storage.keys import model_key
from kai.kit.storage.transactional import put_for_transaction
from kai.ml.models import ImageModel
from kai.ml.repository import ImageModelRepository
from kai.vision.backbones import (
    BUILT_IN_BACKBONES,
    USER_PREFIX,
    Backbone,
    BackboneUnavailable,
    OnnxModelSpec,
    efficientnet,
    get_backbone,
    handcrafted,
    sandboxed,
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


def built_in_backbones() -> list[tuple[str, int, int | None]]:
    """Name, input side and (where known without loading) embedding width of each built-in."""
    return [
        *(
            (variant.name, variant.input_side, efficientnet.DIMENSIONS)
            for variant in efficientnet.VARIANTS
        ),
        (handcrafted.NAME, handcrafted.INPUT_SIDE, None),
    ]


@dataclass(frozen=True)
class Upload:
    """A model uploaded under a name, its description checked (the model itself not yet)."""

    name: str
    data: bytes
    spec: OnnxModelSpec


async def prepare_upload(
    session: AsyncSession, *, actor: Actor, name: str, data: bytes, spec: dict[str, Any]
) -> Upload:
    """What is wrong with the upload short of running it: its name taken, its description, its
    size."""
    if await ImageModelRepository(session).by_name(actor.tenant_id, name) is not None:
        raise ImageModelTaken(f"There is an image model called {name!r} already.")
    try:
        checked = OnnxModelSpec.from_json({**spec, "name": CUSTOM_PREFIX + name})
    except (ValueError, TypeError) as exc:
        raise InvalidImageModel(f"The model's description is not valid: {exc}") from None
    if len(data) > MAX_MODEL_BYTES:
        raise PayloadTooLarge(f"A model may be at most {MAX_MODEL_BYTES} bytes.")
    return Upload(name=name, data=data, spec=checked)


async def check_upload(upload: Upload, *, actor: Actor, settings: Settings) -> int:
    """Run the model once in a sandbox child counted as one of the organization's (parsed with
    `onnx`, then run on two blank images; no database needed): its embedding's width, why it
    cannot be used, or ImageModelsBusy at once when no child is free."""
    try:
        dimension = await sandboxed.check(
            upload.data,
            upload.spec,
            organization_id=actor.tenant_id,
            settings=settings.vision,
            max_bytes=MAX_MODEL_BYTES,
        )
    except sandboxed.ImageModelFailed as exc:
        raise InvalidImageModel(exc.detail) from None
    if not 1 <= dimension <= MAX_DIMENSION:
        raise InvalidImageModel(f"The embedding has {dimension} values; at most {MAX_DIMENSION}.")
    return dimension


async def record_upload(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    actor: Actor,
    upload: Upload,
    dimension: int,
) -> ImageModel:
    """Store and record a checked model (ImageModelTaken when its name was taken meanwhile)."""
    organization_id = actor.tenant_id
    data = upload.data
    digest = hashlib.sha256(data).hexdigest()
    # Named by the upload, never reused: the file of a model deleted and uploaded again is
    # removed after the deletion commits, and must not be the new upload's.
    model_id = new_id()
    key = model_key(organization_id, f"backbones/{upload.name}-{model_id}.onnx")
    # The same name uploaded meanwhile: the unique index answers ImageModelTaken.
    model = await ImageModelRepository(session).add(
        ImageModel(
            id=model_id,
            organization_id=organization_id,
            name=upload.name,
            sha256=digest,
            size_bytes=len(data),
            storage_key=key,
            spec={k: v for k, v in upload.spec.to_json().items() if k != "name"},
            dimension=dimension,
            created_by=actor.author,
        )
    )
    await put_for_transaction(session, storage, key, data, content_type="application/octet-stream")
    return model


async def list_models(
    session: AsyncSession, *, actor: Actor, params: PageParams
) -> tuple[list[ImageModel], str | None]:
    """A page of the organization's uploaded models, by name."""
    return await ImageModelRepository(session).list_page(actor.tenant_id, params)


async def delete(
    session: AsyncSession,
    *,
    actor: Actor,
    name: str,
    settings: Settings,
) -> None:
    """Delete a model no ready or training version uses; its file goes once that commits."""
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
    # The file goes once the row's removal has committed: a rollback keeps both.
    await delete_after_commit(session, [model.storage_key], organization_id=actor.tenant_id)
    # Its children stop now; a rollback only means one starts again when next asked.
    MODELS.discard(("uploaded-model", actor.tenant_id, model.id))
    sandboxed.forget(actor.tenant_id, model.id)
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
        if name in BUILT_IN_BACKBONES:
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
            problem = f"one of {', '.join(BUILT_IN_BACKBONES)} or custom:<an uploaded model>"
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
    """The named backbone for the organization: a built-in one loaded once per process, or an
    uploaded model, run in its sandbox children (first copied from storage to the model
    store's `custom/<organization>/` on this server, where children read it when they start)."""
    if not name.startswith(CUSTOM_PREFIX):
        return await asyncio.to_thread(
            get_backbone, name, model_dir=settings.model_dir, threads=settings.vision.threads
        )
    model = await ImageModelRepository(session).by_name(
        organization_id, name.removeprefix(CUSTOM_PREFIX)
    )
    if model is None:
        raise BackboneUnavailable(f"The image model {name!r} was deleted.")
    # Named by the upload's id: a model deleted and uploaded again under its name (the same
    # file, another spec, say) is another file here, and another pool of children.
    path = _local_copy(settings, organization_id, model.id)
    if not path.is_file():
        data = await storage.read(model.storage_key)
        await asyncio.to_thread(_place, path, data, {**model.spec, "name": name})
    # The model's pool of children counts as one entry of the process's model cache: left
    # unused past its bounds, the pool is forgotten and its children stop.
    MODELS.put(
        ("uploaded-model", organization_id, model.id),
        model.id,
        on_evict=lambda model_id: sandboxed.forget(organization_id, model_id),
    )
    return sandboxed.backbone(
        organization_id=organization_id,
        model_id=model.id,
        spec=OnnxModelSpec.from_json({**model.spec, "name": name}),
        digest=model.sha256,
        dimension=model.dimension,
        read_model=lambda: _read_copy(path, model.sha256),
        settings=settings.vision,
        max_bytes=MAX_MODEL_BYTES,
    )


def _read_copy(path: Path, sha256: str) -> bytes:
    """This server's copy of a model, if it is still the upload's bytes."""
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        path.unlink(missing_ok=True)
        raise BackboneUnavailable("This server's copy of the image model changed; try again.")
    return data


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
