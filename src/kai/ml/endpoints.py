"""HTTP routes of model training: train a version, list and read versions, activate one; and
the image models (backbones) an organization uploads to train on."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Form, Path, UploadFile, status
from pydantic import Field

from kai.deps import DbSession, RuntimeDep
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.kit.db import release_connection
from kai.kit.errors import problem_responses
from kai.kit.pagination import Page, PageParams, page_params, paginate_chained
from kai.kit.routing import IndexedRouter
from kai.kit.schemas import RequestModel
from kai.ml import image_models, training, versions
from kai.ml.models import ImageModel
from kai.ml.schemas import ImageModelRead, ModelVersionRead
from kai.ml.training import TrainingOptions

router = IndexedRouter(prefix="/models", tags=["models"], responses=AUTH_RESPONSES)

ModelsRead = Annotated[Actor, Depends(require(Permission.MODELS_READ))]
# Training runs for minutes on every photo of the catalog: the expensive rate.
ModelsTrain = Annotated[Actor, Depends(require(Permission.MODELS_TRAIN, rate_class="expensive"))]
ModelsDeploy = Annotated[Actor, Depends(require(Permission.MODELS_DEPLOY))]
# An uploaded model is checked by running it, in a child process.
ModelUpload = Annotated[Actor, Depends(require(Permission.MODELS_DEPLOY, rate_class="expensive"))]


@router.post(
    "",
    summary="Train a new model version on the catalog's photos and the feedback so far",
    status_code=status.HTTP_202_ACCEPTED,
)
async def train(
    actor: ModelsTrain, session: DbSession, body: TrainingOptions | None = None
) -> ModelVersionRead:
    version = await training.start_training(session, actor=actor, options=body or TrainingOptions())
    return ModelVersionRead.model_validate(version)


@router.get("", summary="The organization's model versions, newest first")
async def list_versions(
    actor: ModelsRead, session: DbSession, page: Annotated[PageParams, Depends(page_params)]
) -> Page[ModelVersionRead]:
    found, cursor = await versions.list_versions(session, actor=actor, params=page)
    return Page[ModelVersionRead](
        items=[ModelVersionRead.model_validate(version) for version in found],
        next_cursor=cursor,
    )


@router.get("/{version_id}", summary="A model version", responses=problem_responses(404))
async def get_version(
    version_id: uuid.UUID, actor: ModelsRead, session: DbSession
) -> ModelVersionRead:
    version = await versions.get_version(session, actor=actor, version_id=version_id)
    return ModelVersionRead.model_validate(version)


@router.post(
    "/{version_id}/activate",
    summary="Make a ready version the one recognitions use",
    responses=problem_responses(404, 409),
)
async def activate(
    version_id: uuid.UUID, actor: ModelsDeploy, session: DbSession
) -> ModelVersionRead:
    version = await versions.activate_version(session, actor=actor, version_id=version_id)
    return ModelVersionRead.model_validate(version)


backbones_router = IndexedRouter(prefix="/backbones", tags=["models"], responses=AUTH_RESPONSES)
Triple = Annotated[str, Field(pattern=r"^\s*[0-9.eE+-]+\s*,\s*[0-9.eE+-]+\s*,\s*[0-9.eE+-]+\s*$")]


class BackboneForm(RequestModel):
    file: UploadFile = Field(description="The .onnx file (weights inside it).")
    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]{0,58}$",
        description="Lower-case letters, digits and dashes; trained on as `custom:<name>`.",
    )
    input_side: int = Field(ge=16, le=2048, description="Square input, pixels.")
    mean: Triple = "0.485,0.456,0.406"
    std: Triple = "0.229,0.224,0.225"
    scale: float = Field(
        default=1 / 255, gt=0, le=1, description="Pixels times this first: 1/255 for 0..1."
    )
    layout: Literal["nchw", "nhwc"] = "nchw"
    input: str | None = Field(default=None, max_length=200)
    output: str | None = Field(default=None, max_length=200)


def _triple(text: str, field: str) -> list[float]:
    try:
        return [float(value) for value in text.split(",")]
    except ValueError:
        raise image_models.InvalidImageModel(
            f"{field} needs three numbers, comma-separated: {text!r}",
            errors=[{"loc": ["body", field], "msg": "three numbers", "type": "value"}],
        ) from None


def _uploaded(model: ImageModel) -> ImageModelRead:
    return ImageModelRead(
        name=image_models.CUSTOM_PREFIX + model.name,
        kind="fine-tuned" if model.origin == "fine-tuned" else "uploaded",
        input_side=int(model.spec["input_side"]),
        dimension=model.dimension,
        sha256=model.sha256,
        size_bytes=model.size_bytes,
        spec=model.spec,
        fine_tuning=model.details,
        created_by=model.created_by,
        created_at=model.created_at,
    )


_BUILT_IN_BACKBONES = tuple(
    ImageModelRead(name=name, kind="built-in", input_side=side, dimension=dimension)
    for name, side, dimension in image_models.built_in_backbones()
)


@backbones_router.get(
    "",
    summary="The backbones a training may use: built in and uploaded",
    description="The built-in backbones first, then the uploaded ones by name.",
)
async def list_backbones(
    actor: ModelsRead, session: DbSession, page: Annotated[PageParams, Depends(page_params)]
) -> Page[ImageModelRead]:
    async def uploaded(params: PageParams) -> tuple[list[ImageModelRead], str | None]:
        rows, cursor = await image_models.list_models(session, actor=actor, params=params)
        return [_uploaded(model) for model in rows], cursor

    items, cursor = await paginate_chained(
        _BUILT_IN_BACKBONES, key=lambda backbone: backbone.name, then=uploaded, params=page
    )
    return Page[ImageModelRead](items=items, next_cursor=cursor)


@backbones_router.post(
    "",
    summary="Upload an ONNX image model to train on as a backbone",
    description="The model is run once on a blank image of the declared size before it is "
    "kept: one that does not load or run so is refused (422) and nothing is stored. Its "
    "output is a feature map (averaged over positions) or a vector per image. The check takes "
    "one of the organization's image-model processes: when they are all busy, 429 (503 when "
    "the server's are), with Retry-After.",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(409, 413, 422, 429, 503),
)
async def upload_backbone(
    actor: ModelUpload,
    session: DbSession,
    runtime: RuntimeDep,
    form: Annotated[BackboneForm, Form()],
) -> ImageModelRead:
    data = await form.file.read(image_models.MAX_MODEL_BYTES + 1)
    upload = await image_models.prepare_upload(
        session,
        actor=actor,
        name=form.name,
        data=data,
        spec={
            "input_side": form.input_side,
            "mean": _triple(form.mean, "mean"),
            "std": _triple(form.std, "std"),
            "scale": form.scale,
            "layout": form.layout,
            "input": form.input,
            "output": form.output,
        },
    )
    # The check runs the model in a child for up to a minute: the request's database
    # connection goes back to the pool meanwhile, and the model is recorded in a new
    # transaction (where a name taken meanwhile is still a 409, by the unique index).
    await release_connection(session)
    dimension = await image_models.check_upload(upload, actor=actor, settings=runtime.settings)
    model = await image_models.record_upload(
        session, runtime.storage, actor=actor, upload=upload, dimension=dimension
    )
    return _uploaded(model)


@backbones_router.delete(
    "/{name}",
    summary="Delete an uploaded model no model version was trained on",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 409),
)
async def delete_backbone(
    name: Annotated[str, Path(pattern=r"^custom:[a-z0-9][a-z0-9-]{0,58}$")],
    actor: ModelsDeploy,
    session: DbSession,
    runtime: RuntimeDep,
) -> None:
    await image_models.delete(
        session,
        actor=actor,
        name=name.removeprefix(image_models.CUSTOM_PREFIX),
        settings=runtime.settings,
    )
