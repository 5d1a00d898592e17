"""HTTP routes of material images: upload, list, order, primary, delete, and the derivatives."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, Form, Request, UploadFile, status
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from kai.catalog import image_urls, images
from kai.catalog.models import MaterialImage
from kai.deps import DbSession, RuntimeDep
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.kit.errors import problem_responses
from kai.kit.pagination import Page, PageParams, page_params
from kai.kit.routing import IndexedRouter
from kai.kit.schemas import RequestModel

router = IndexedRouter(
    prefix="/materials/{material_id}/images", tags=["images"], responses=AUTH_RESPONSES
)

MaterialsRead = Annotated[Actor, Depends(require(Permission.MATERIALS_READ))]
MaterialsWrite = Annotated[Actor, Depends(require(Permission.MATERIALS_WRITE))]
# Every upload is checked, stored and processed in a job: the expensive rate.
ImageUpload = Annotated[Actor, Depends(require(Permission.MATERIALS_WRITE, rate_class="expensive"))]
# Derivatives never change under an image id: a browser may keep them as long as it likes.
IMMUTABLE = "private, max-age=31536000, immutable"


class ImageUrls(BaseModel):
    processed: str
    thumbnail: str


class ImageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    material_id: uuid.UUID
    status: Literal["processing", "ready", "failed"]
    error: str | None
    file_name: str
    format: str
    content_type: str = Field(description="Of the original, as uploaded.")
    width: int = Field(description="After the photo's orientation is applied.")
    height: int
    size_bytes: int
    sha256: str
    position: int
    is_primary: bool
    urls: ImageUrls
    created_at: datetime


class ImageUploadForm(RequestModel):
    file: UploadFile = Field(description="The image; its content decides its type.")
    is_primary: bool | None = None


class ImageUpdate(RequestModel):
    is_primary: bool | None = None
    position: Annotated[int, Field(ge=0, le=10_000)] | None = None


def _read(image: MaterialImage) -> ImageRead:
    return ImageRead.model_validate(
        {
            **{
                column: getattr(image, column)
                for column in ImageRead.model_fields
                if column != "urls"
            },
            "urls": ImageUrls(
                processed=image_urls.derivative_url(image.material_id, image.id, "processed"),
                thumbnail=image_urls.thumbnail_url(image.material_id, image.id),
            ),
        }
    )


@router.post(
    "",
    summary="Upload an image (JPEG, PNG, WebP or HEIC)",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(404, 409, 413, 422),
)
async def upload_image(
    material_id: uuid.UUID,
    actor: ImageUpload,
    session: DbSession,
    runtime: RuntimeDep,
    form: Annotated[ImageUploadForm, Form()],
) -> ImageRead:
    limits = runtime.image_limits
    file = form.file
    data = await file.read(limits.max_bytes + 1)
    image = await images.upload_image(
        session,
        runtime.storage,
        actor=actor,
        material_id=material_id,
        data=data,
        file_name=file.filename or "",
        primary=form.is_primary,
        limits=limits,
    )
    return _read(image)


@router.get("", summary="Images of a material, in order", responses=problem_responses(404))
async def list_images(
    material_id: uuid.UUID,
    actor: MaterialsRead,
    session: DbSession,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[ImageRead]:
    rows, cursor = await images.list_images(
        session, actor=actor, material_id=material_id, params=page
    )
    return Page[ImageRead](items=[_read(image) for image in rows], next_cursor=cursor)


@router.patch("/{image_id}", summary="Make primary or reorder", responses=problem_responses(404))
async def update_image(
    material_id: uuid.UUID,
    image_id: uuid.UUID,
    body: ImageUpdate,
    actor: MaterialsWrite,
    session: DbSession,
) -> ImageRead:
    image = await images.update_image(
        session,
        actor=actor,
        material_id=material_id,
        image_id=image_id,
        primary=body.is_primary,
        position=body.position,
    )
    return _read(image)


@router.delete(
    "/{image_id}",
    summary="Delete an image and its files",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def delete_image(
    material_id: uuid.UUID,
    image_id: uuid.UUID,
    actor: MaterialsWrite,
    session: DbSession,
) -> None:
    await images.delete_image(session, actor=actor, material_id=material_id, image_id=image_id)


@router.get(
    "/{image_id}/{variant}",
    summary="The processed image (1024 px) or thumbnail (256 px), WebP without metadata",
    response_class=Response,
    responses={
        200: {"content": {"image/webp": {}}, "description": "The image."},
        304: {"description": "Not modified."},
        **problem_responses(404, 409),
    },
)
async def image_file(
    material_id: uuid.UUID,
    image_id: uuid.UUID,
    variant: Literal["processed", "thumbnail"],
    request: Request,
    actor: MaterialsRead,
    session: DbSession,
    runtime: RuntimeDep,
) -> Response:
    served = await images.served_image(
        session, actor=actor, material_id=material_id, image_id=image_id, variant=variant
    )
    headers = {"ETag": served.etag, "Cache-Control": IMMUTABLE}
    if request.headers.get("if-none-match") == served.etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    stat = await runtime.storage.stat(served.key)
    chunks = runtime.storage.open(served.key)

    async def body() -> AsyncIterator[bytes]:
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                yield chunk

    return StreamingResponse(
        body(),
        media_type=served.content_type,
        headers={**headers, "Content-Length": str(stat.size)},
    )
