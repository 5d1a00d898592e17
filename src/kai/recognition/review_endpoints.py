"""HTTP routes of the review queue: the recognitions most worth a person's label, ranked so
that near-identical photos do not crowd it. A label is given as feedback on the recognition
(`POST /api/v1/recognitions/{id}/feedback`), which takes it out of the queue."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, Query, status
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kai.deps import DbSession
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.kit.errors import NotFound, problem_responses
from kai.kit.routing import IndexedRouter
from kai.ml import review, versions
from kai.recognition import service
from kai.recognition.endpoints import _read
from kai.recognition.schemas import RecognitionRead

router = IndexedRouter(prefix="/review-queue", tags=["review"], responses=AUTH_RESPONSES)

Reviewers = Annotated[Actor, Depends(require(Permission.RECOGNITIONS_READ))]
Labellers = Annotated[Actor, Depends(require(Permission.RECOGNITIONS_CREATE))]


class ReviewNotFound(NotFound):
    type, title = "review-item-not-found", "No such recognition in the review queue"


class ReviewItemRead(BaseModel):
    recognition: RecognitionRead
    reason: Literal["unknown", "low_margin", "disagreement"] = Field(
        description="unknown: KAI did not know; low_margin: its two best answers were close; "
        "disagreement: in a shadow A/B test the challenger said something else."
    )
    margin: float | None = Field(description="The best answer's confidence less the second's.")
    queued_at: datetime


class ReviewQueueRead(BaseModel):
    """The best few of the queue, ranked: not a list paged through (the ranking changes with
    every label), but what to review next."""

    queue: list[ReviewItemRead] = Field(description="In review order.")
    pending: int = Field(description="Recognitions waiting for a label in all.")


@router.get("", summary="The recognitions most worth a label, near-identical photos spread out")
async def review_queue(
    actor: Reviewers,
    session: DbSession,
    top: Annotated[
        int, Query(ge=1, le=100, description="How many of the best to answer with.")
    ] = 20,
) -> ReviewQueueRead:
    ranked, pending = await review.queue(session, organization_id=actor.tenant_id, limit=top)
    numbers = await versions.version_numbers(session, actor=actor)
    items = []
    for item in ranked:
        try:
            recognition = await service.get_recognition(
                session, actor=actor, recognition_id=item.recognition_id
            )
        except service.RecognitionNotFound:
            continue  # filed in a project this person does not see
        items.append(
            ReviewItemRead(
                recognition=_read(recognition, numbers),
                reason=item.reason,
                margin=item.margin,
                queued_at=item.created_at,
            )
        )
    return ReviewQueueRead(queue=items, pending=pending)


@router.post(
    "/{recognition_id}/skip",
    summary="Take a recognition out of the queue without labelling it",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def skip(recognition_id: uuid.UUID, actor: Labellers, session: DbSession) -> Response:
    await service.get_recognition(session, actor=actor, recognition_id=recognition_id)
    found = await review.resolve(
        session,
        organization_id=actor.tenant_id,
        recognition_id=recognition_id,
        status="skipped",
        by=actor.author,
    )
    if found is None:
        raise ReviewNotFound(f"Recognition {recognition_id} is not in the review queue.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
