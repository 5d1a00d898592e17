"""HTTP routes of visual similarity: reverse image search and "more like this material"."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import Depends, Form, Query, UploadFile
from pydantic import BaseModel, Field

from kai.catalog.image_urls import thumbnail_url
from kai.catalog.materials import get_material
from kai.deps import DbSession, RuntimeDep
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.kit.errors import Conflict, problem_responses
from kai.kit.routing import IndexedRouter
from kai.kit.schemas import RequestModel
from kai.search import visual
from kai.search.schemas import ValueFilter
from kai.search.service import visual_filter
from kai.vision.backbones import get_backbone
from kai.vision.backbones.efficientnet import NAME as DEFAULT_BACKBONE

router = IndexedRouter(tags=["visual similarity"], responses=AUTH_RESPONSES)

MaterialsRead = Annotated[Actor, Depends(require(Permission.MATERIALS_READ))]
# Decoding and embedding a photo costs what a recognition does.
ImageSearch = Annotated[Actor, Depends(require(Permission.MATERIALS_READ, rate_class="expensive"))]


class MaterialHasNoImage(Conflict):
    type, title = "material-has-no-image", "The material has no image to compare yet"


class ImageSearchForm(RequestModel):
    file: UploadFile = Field(description="JPEG, PNG, WebP or HEIC; checked by content.")
    k: int = Field(default=10, ge=1, le=100, description="Materials returned.")
    category_id: uuid.UUID | None = Field(default=None, description="Within this subtree.")
    filter: list[ValueFilter] | None = Field(
        default=None, description="Property values: `finish:honed`."
    )


class LookAlike(BaseModel):
    material_id: uuid.UUID
    name: str
    code: str
    score: float = Field(description="Cosine similarity of the images, -1 to 1.")
    image_url: str = Field(description="The thumbnail of the material's most similar image.")


class LookAlikes(BaseModel):
    """The `k` most alike, best first: a ranking, whole in one answer, not a page."""

    items: list[LookAlike]
    timings: dict[str, float] = Field(default_factory=dict, description="Milliseconds per step.")


def _look_alike(found: visual.SimilarMaterial) -> LookAlike:
    return LookAlike(
        material_id=found.material_id,
        name=found.name,
        code=found.code,
        score=found.score,
        image_url=thumbnail_url(found.material_id, found.image_id),
    )


@router.post(
    "/search/images",
    summary="Reverse image search: the materials that look most like a photo",
    description="Needs no trained model. The photo is checked as any upload is, and not kept.",
    responses=problem_responses(413, 422),
)
async def search_by_image(
    actor: ImageSearch,
    session: DbSession,
    runtime: RuntimeDep,
    form: Annotated[ImageSearchForm, Form()],
) -> LookAlikes:
    limits = runtime.image_limits
    data = await form.file.read(limits.max_bytes + 1)
    subtree, properties = await visual_filter(
        session, actor=actor, category_id=form.category_id, filters=form.filter or ()
    )
    settings = runtime.settings
    backbone = await asyncio.to_thread(
        get_backbone,
        DEFAULT_BACKBONE,
        model_dir=settings.model_dir,
        threads=settings.vision.threads,
    )
    found = await visual.similar_to_photo(
        session,
        data=data,
        backbone=backbone,
        how_many=form.k,
        limits=limits,
        category_ids=subtree,
        properties=properties,
    )
    return LookAlikes(items=[_look_alike(item) for item in found.similar], timings=found.timings)


@router.get(
    "/materials/{material_id}/similar",
    summary="More like this: the materials that look most like this one",
    responses=problem_responses(404, 409),
)
async def more_like_this(
    material_id: uuid.UUID,
    actor: MaterialsRead,
    session: DbSession,
    k: Annotated[
        int,
        Query(
            ge=1,
            le=100,
            description="How many of the most alike materials: a ranking, not a page (no cursor).",
        ),
    ] = 10,
    category_id: Annotated[uuid.UUID | None, Query(description="Within this subtree.")] = None,
) -> LookAlikes:
    await get_material(session, actor=actor, material_id=material_id)
    subtree, _ = await visual_filter(session, actor=actor, category_id=category_id, filters=())
    found = await visual.more_like_material(
        session,
        organization_id=actor.tenant_id,
        material_id=material_id,
        how_many=k,
        category_ids=subtree,
    )
    if found is None:
        raise MaterialHasNoImage(
            "None of this material's images is ready for comparison yet: upload one, or wait "
            "for its processing to finish."
        )
    return LookAlikes(items=[_look_alike(item) for item in found])
