"""HTTP routes of recognition: recognize a photo, list and read recognitions, their photos,
feedback on them, and the organization's recognition thresholds."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Form, Query, UploadFile, status
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kai.catalog.image_urls import thumbnail_url
from kai.deps import DbSession, RuntimeDep
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.kit import images as imaging
from kai.kit.archives import InflateBudget
from kai.kit.errors import problem_responses
from kai.kit.pagination import Page, PageParams, page_params
from kai.kit.routing import IndexedRouter
from kai.kit.schemas import Instant, RequestModel
from kai.kit.threads import IMAGE_CHECKS
from kai.ml import versions
from kai.recognition import batches, service
from kai.recognition.models import Recognition
from kai.recognition.schemas import (
    BatchRead,
    BatchResultRead,
    FeedbackCreate,
    FeedbackRead,
    ModelVersionRef,
    Prediction,
    RecognitionRead,
    RecognitionSettingsChange,
    RecognitionSettingsRead,
    RecognitionSettingsUpdate,
    SimilarMaterial,
)
from kai.search import visual
from kai.search.schemas import ValueFilter
from kai.search.service import visual_filter

router = IndexedRouter(prefix="/recognitions", tags=["recognitions"], responses=AUTH_RESPONSES)

RecognitionsCreate = Annotated[Actor, Depends(require(Permission.RECOGNITIONS_CREATE))]
RecognitionsRead = Annotated[Actor, Depends(require(Permission.RECOGNITIONS_READ))]
# Running models on photos, and reading a whole batch back: the expensive rate.
Recognize = Annotated[
    Actor, Depends(require(Permission.RECOGNITIONS_CREATE, rate_class="expensive"))
]
BatchResultsRead = Annotated[
    Actor, Depends(require(Permission.RECOGNITIONS_READ, rate_class="expensive"))
]
ModelsDeploy = Annotated[Actor, Depends(require(Permission.MODELS_DEPLOY))]
# A recognition's photo never changes under its id.
IMMUTABLE = "private, max-age=31536000, immutable"


class _OptionsForm(RequestModel):
    top_k: int = Field(default=5, ge=1, le=50, description="Predictions returned.")
    similar_k: int = Field(default=10, ge=0, le=100, description="Similar materials returned.")
    category_id: uuid.UUID | None = Field(
        default=None, description="Similar materials only in this category's subtree."
    )
    filter: list[ValueFilter] | None = Field(
        default=None,
        description="Similar materials only with these property values (`finish:honed`).",
    )
    project_id: uuid.UUID | None = Field(
        default=None,
        description="File the recognitions in this project (404 for one you cannot see).",
    )
    subject: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Who the photo is recognized for, as the client knows them (an end "
        "user's id, say): in a split A/B test each subject always sees the same model "
        "version. Empty: the credential calling.",
    )

    def options(self) -> service.RecognitionOptions:
        return service.RecognitionOptions(
            top_k=self.top_k,
            similar_k=self.similar_k,
            category_id=self.category_id,
            filters=self.filter or (),
            project_id=self.project_id,
            subject=self.subject,
        )


class RecognitionForm(_OptionsForm):
    file: UploadFile = Field(description="JPEG, PNG, WebP or HEIC; checked by content.")


class BatchForm(_OptionsForm):
    files: list[UploadFile] = Field(description="Photos (JPEG, PNG, WebP, HEIC) or zips of photos.")


def _read(recognition: Recognition, numbers: dict[uuid.UUID, int]) -> RecognitionRead:
    version_id = recognition.model_version_id
    return RecognitionRead(
        id=recognition.id,
        created_at=recognition.created_at,
        project_id=recognition.project_id,
        file_name=recognition.file_name,
        width=recognition.width,
        height=recognition.height,
        unknown=recognition.unknown,
        unknown_reason=recognition.unknown_reason,
        label=recognition.label,
        category_id=recognition.category_id,
        confidence=recognition.confidence,
        predictions=[Prediction.model_validate(entry) for entry in recognition.predictions],
        similar=[
            SimilarMaterial(
                material_id=entry["material_id"],
                name=entry["name"],
                code=entry["code"],
                score=entry["score"],
                image_url=thumbnail_url(entry["material_id"], entry["image_id"]),
            )
            for entry in recognition.similar
        ],
        model_version=(
            ModelVersionRef(id=version_id, number=numbers[version_id])
            if version_id is not None and version_id in numbers
            else None
        ),
        timings=recognition.timings,
        image_url=f"/api/v1/recognitions/{recognition.id}/image",
    )


@router.post(
    "",
    summary="Recognize a photo: what material it is, how sure, and similar catalog materials",
    description="With an uploaded backbone, the photo is embedded in one of the organization's "
    "image-model processes: when they are all busy, 429 (503 when the server's are), with "
    "Retry-After.",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(404, 409, 413, 422, 503),
)
async def recognize(
    actor: Recognize,
    session: DbSession,
    runtime: RuntimeDep,
    form: Annotated[RecognitionForm, Form()],
) -> RecognitionRead:
    limits = runtime.image_limits
    data = await form.file.read(limits.max_bytes + 1)
    recognized = await service.recognize(
        session,
        runtime.storage,
        actor=actor,
        data=data,
        file_name=form.file.filename or "",
        options=form.options(),
        settings=runtime.settings,
        limits=limits,
    )
    recognition = recognized.recognition
    numbers = {}
    if recognition.model_version_id is not None and recognized.model_version_number is not None:
        numbers[recognition.model_version_id] = recognized.model_version_number
    return _read(recognition, numbers)


@router.get("", summary="Recognitions, newest first")
async def list_recognitions(
    actor: RecognitionsRead,
    session: DbSession,
    page: Annotated[PageParams, Depends(page_params)],
    label: Annotated[
        str | None,
        Query(
            max_length=200,
            description="This label, whatever its case and accents (`tiles` finds Tiles).",
        ),
    ] = None,
    unknown: bool | None = None,
    model_version_id: uuid.UUID | None = None,
    project_id: Annotated[
        uuid.UUID | None,
        Query(description="Only those filed in this project (none for a project you cannot see)."),
    ] = None,
    since: Annotated[Instant | None, Query(description="Made on or after this instant.")] = None,
    until: Annotated[Instant | None, Query(description="Made before this instant.")] = None,
) -> Page[RecognitionRead]:
    rows, next_cursor = await service.list_recognitions(
        session,
        actor=actor,
        label=label,
        unknown=unknown,
        model_version_id=model_version_id,
        project_id=project_id,
        since=since,
        until=until,
        params=page,
    )
    numbers = await versions.version_numbers(session, actor=actor)
    return Page[RecognitionRead](
        items=[_read(row, numbers) for row in rows], next_cursor=next_cursor
    )


@router.get("/settings", summary="The organization's recognition thresholds")
async def get_settings(actor: RecognitionsRead, session: DbSession) -> RecognitionSettingsRead:
    found = await service.recognition_settings(session, actor=actor)
    return RecognitionSettingsRead.model_validate(found)


@router.put("/settings", summary="Change the organization's recognition thresholds")
async def put_settings(
    body: RecognitionSettingsUpdate, actor: ModelsDeploy, session: DbSession
) -> RecognitionSettingsRead:
    found = await service.update_recognition_settings(
        session,
        actor=actor,
        confidence=body.confidence_threshold,
        near_duplicate=body.near_duplicate_threshold,
    )
    return RecognitionSettingsRead.model_validate(found)


@router.patch("/settings", summary="Change some of the organization's recognition thresholds")
async def patch_settings(
    body: RecognitionSettingsChange, actor: ModelsDeploy, session: DbSession
) -> RecognitionSettingsRead:
    found = await service.update_recognition_settings(
        session,
        actor=actor,
        confidence=body.confidence_threshold,
        near_duplicate=body.near_duplicate_threshold,
    )
    return RecognitionSettingsRead.model_validate(found)


@router.get("/{recognition_id}", summary="A recognition", responses=problem_responses(404))
async def get_recognition(
    recognition_id: uuid.UUID, actor: RecognitionsRead, session: DbSession
) -> RecognitionRead:
    recognition = await service.get_recognition(session, actor=actor, recognition_id=recognition_id)
    return _read(recognition, await versions.version_numbers(session, actor=actor))


@router.get(
    "/{recognition_id}/image",
    summary="The recognized photo (WebP, at most 1024 px, without its metadata)",
    response_class=Response,
    responses={200: {"content": {"image/webp": {}}}, **problem_responses(404)},
)
async def get_image(
    recognition_id: uuid.UUID, actor: RecognitionsRead, session: DbSession, runtime: RuntimeDep
) -> Response:
    recognition = await service.get_recognition(session, actor=actor, recognition_id=recognition_id)
    shown = await service.shown_photo(runtime.storage, recognition, limits=runtime.image_limits)
    return Response(
        shown, media_type=imaging.CONTENT_TYPES["webp"], headers={"Cache-Control": IMMUTABLE}
    )


@router.post(
    "/{recognition_id}/feedback",
    summary="Say whether the answer was right, and if not what the photo is",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(404, 422),
)
async def give_feedback(
    recognition_id: uuid.UUID, body: FeedbackCreate, actor: RecognitionsCreate, session: DbSession
) -> FeedbackRead:
    feedback = await service.give_feedback(
        session,
        actor=actor,
        recognition_id=recognition_id,
        correct=body.correct,
        category_id=body.category_id,
        material_id=body.material_id,
        comment=body.comment,
    )
    return FeedbackRead.model_validate(feedback)


catalog_router = IndexedRouter(tags=["visual similarity"], responses=AUTH_RESPONSES)
# A scan of every pair of the catalog's images.
CatalogScan = Annotated[Actor, Depends(require(Permission.MATERIALS_READ, rate_class="expensive"))]


class NearDuplicateRead(BaseModel):
    """Two images of different materials, each with what a reviewer needs to tell them apart."""

    image_id: uuid.UUID
    material_id: uuid.UUID
    name: str = Field(description="The material's name.")
    code: str = Field(description="The material's code.")
    image_url: str = Field(description="The thumbnail of the material's image in the pair.")
    other_image_id: uuid.UUID
    other_material_id: uuid.UUID
    other_name: str
    other_code: str
    other_image_url: str = Field(description="The thumbnail of the other material's image.")
    similarity: float


def _near_duplicate(pair: visual.NearPair) -> NearDuplicateRead:
    return NearDuplicateRead(
        image_id=pair.image_id,
        material_id=pair.material_id,
        name=pair.name,
        code=pair.code,
        image_url=thumbnail_url(pair.material_id, pair.image_id),
        other_image_id=pair.other_image_id,
        other_material_id=pair.other_material_id,
        other_name=pair.other_name,
        other_code=pair.other_code,
        other_image_url=thumbnail_url(pair.other_material_id, pair.other_image_id),
        similarity=pair.similarity,
    )


@catalog_router.get(
    "/catalog/near-duplicates",
    summary="Images of different materials that look almost the same",
    description="Pairs at least `threshold` alike (cosine), most alike first; the threshold "
    "defaults to the organization's `near_duplicate_threshold`. Exact copies of a file are "
    "refused on upload already; these are the same product photographed or entered twice.",
)
async def near_duplicates(
    actor: CatalogScan,
    session: DbSession,
    page: Annotated[PageParams, Depends(page_params)],
    threshold: Annotated[float | None, Query(ge=0.5, le=1.0)] = None,
) -> Page[NearDuplicateRead]:
    if threshold is None:
        threshold = (
            await service.recognition_settings(session, actor=actor)
        ).near_duplicate_threshold
    pairs, cursor = await visual.near_duplicates(session, threshold=threshold, params=page)
    return Page[NearDuplicateRead](
        items=[_near_duplicate(pair) for pair in pairs], next_cursor=cursor
    )


batches_router = IndexedRouter(
    prefix="/recognition-batches", tags=["recognitions"], responses=AUTH_RESPONSES
)


@batches_router.post(
    "",
    summary="Recognize many photos (files, or zips of them) in a job",
    description="Every file is checked first, by its header (format by content, size): one "
    "that is not a photo refuses the batch (422, naming each), and nothing is kept. A photo "
    "whose pixel data turns out unreadable fails alone when the job decodes it. The results "
    "come per photo at `/{id}/results`.",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(404, 409, 413, 422),
)
async def create_batch(
    actor: Recognize,
    session: DbSession,
    runtime: RuntimeDep,
    form: Annotated[BatchForm, Form()],
) -> BatchRead:
    limits = runtime.image_limits
    uploaded = [
        (upload.filename or f"photo-{index}", await upload.read())
        for index, upload in enumerate(form.files, start=1)
    ]
    # Every zip of the upload inflates under one budget, counted as it inflates, on the
    # image-check threads (not the default executor, which password checks need).
    budget = InflateBudget(runtime.settings.max_inflated_bytes)
    photos = await IMAGE_CHECKS.run(batches.checked_photos, uploaded, limits, budget)
    options = form.options()
    # The filters are checked now, not when the job meets them.
    await visual_filter(
        session, actor=actor, category_id=options.category_id, filters=options.filters
    )
    batch = await batches.create_batch(
        session, runtime.storage, actor=actor, photos=photos, options=options
    )
    return BatchRead.model_validate(batch)


@batches_router.get("", summary="Recognition batches, newest first")
async def list_batches(
    actor: RecognitionsRead,
    session: DbSession,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[BatchRead]:
    rows, next_cursor = await batches.list_batches(session, actor=actor, params=page)
    return Page[BatchRead](
        items=[BatchRead.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@batches_router.get(
    "/{batch_id}", summary="A batch and its progress", responses=problem_responses(404)
)
async def get_batch(batch_id: uuid.UUID, actor: RecognitionsRead, session: DbSession) -> BatchRead:
    return BatchRead.model_validate(
        await batches.get_batch(session, actor=actor, batch_id=batch_id)
    )


@batches_router.get(
    "/{batch_id}/results",
    summary="A result per photo, in upload order: pages of JSON, or one CSV file",
    response_model=Page[BatchResultRead],
    responses={
        200: {"content": {"text/csv": {}}, "description": "A page, or the CSV file."},
        **problem_responses(404),
    },
)
async def batch_results(
    batch_id: uuid.UUID,
    actor: BatchResultsRead,
    session: DbSession,
    page: Annotated[PageParams, Depends(page_params)],
    format: Annotated[
        Literal["json", "csv"],
        Query(description="`csv`: every photo's result in one file (no pages)."),
    ] = "json",
) -> Page[BatchResultRead] | Response:
    if format == "csv":
        rows, _ = await batches.results(session, actor=actor, batch_id=batch_id)
        return Response(
            batches.results_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}.csv"'},
        )
    rows, cursor = await batches.results(session, actor=actor, batch_id=batch_id, params=page)
    return Page[BatchResultRead](
        items=[BatchResultRead.model_validate(row) for row in rows], next_cursor=cursor
    )
