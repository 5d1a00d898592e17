"""All SQL of recognition: recognitions, their feedback, and recognition settings."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kai.kit.pagination import PageParams, paginate
from kai.ml.models import LabeledPhoto
from kai.recognition.models import Recognition, RecognitionFeedback, RecognitionSettings


class RecognitionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, recognition: Recognition) -> Recognition:
        self.session.add(recognition)
        await self.session.flush()
        return recognition

    async def get(
        self, organization_id: uuid.UUID, recognition_id: uuid.UUID
    ) -> Recognition | None:
        statement = select(Recognition).where(
            Recognition.organization_id == organization_id, Recognition.id == recognition_id
        )
        found: Recognition | None = await self.session.scalar(statement)
        return found

    async def list_page(
        self,
        organization_id: uuid.UUID,
        *,
        label: str | None,
        unknown: bool | None,
        model_version_id: uuid.UUID | None,
        since: datetime | None,
        until: datetime | None,
        params: PageParams,
    ) -> tuple[list[Recognition], str | None]:
        statement: Select[Recognition] = select(Recognition).where(
            Recognition.organization_id == organization_id
        )
        if label is not None:
            statement = statement.where(Recognition.label == label)
        if unknown is not None:
            statement = statement.where(Recognition.unknown.is_(unknown))
        if model_version_id is not None:
            statement = statement.where(Recognition.model_version_id == model_version_id)
        if since is not None:
            statement = statement.where(Recognition.created_at >= since)
        if until is not None:
            statement = statement.where(Recognition.created_at < until)
        return await paginate(
            self.session,
            statement,
            order_by=[Recognition.created_at, Recognition.id],
            params=params,
        )

    async def feedback(
        self, organization_id: uuid.UUID, recognition_id: uuid.UUID
    ) -> RecognitionFeedback | None:
        statement = select(RecognitionFeedback).where(
            RecognitionFeedback.organization_id == organization_id,
            RecognitionFeedback.recognition_id == recognition_id,
        )
        found: RecognitionFeedback | None = await self.session.scalar(statement)
        return found

    async def save_feedback(self, feedback: RecognitionFeedback) -> RecognitionFeedback:
        """The latest word on a recognition replaces any earlier one."""
        existing = await self.feedback(feedback.organization_id, feedback.recognition_id)
        if existing is not None:
            await self.session.delete(existing)
            await self.session.flush()
        self.session.add(feedback)
        await self.session.flush()
        return feedback

    async def save_labeled_photo(self, photo: LabeledPhoto) -> None:
        """The recognition's photo as labelled data (one per recognition, the latest label)."""
        statement = insert(LabeledPhoto).values(
            id=photo.id,
            organization_id=photo.organization_id,
            image_key=photo.image_key,
            category_id=photo.category_id,
            material_id=photo.material_id,
            source=photo.source,
            recognition_id=photo.recognition_id,
            created_by=photo.created_by,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[LabeledPhoto.recognition_id],
            index_where=LabeledPhoto.recognition_id.is_not(None),
            set_={
                "category_id": statement.excluded.category_id,
                "material_id": statement.excluded.material_id,
                "created_by": statement.excluded.created_by,
            },
        )
        await self.session.execute(statement)

    async def settings(self, organization_id: uuid.UUID) -> RecognitionSettings | None:
        statement = select(RecognitionSettings).where(
            RecognitionSettings.organization_id == organization_id
        )
        found: RecognitionSettings | None = await self.session.scalar(statement)
        return found

    async def save_settings(
        self, organization_id: uuid.UUID, *, confidence: float, near_duplicate: float
    ) -> RecognitionSettings:
        statement = insert(RecognitionSettings).values(
            organization_id=organization_id,
            confidence_threshold=confidence,
            near_duplicate_threshold=near_duplicate,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[RecognitionSettings.organization_id],
            set_={
                "confidence_threshold": statement.excluded.confidence_threshold,
                "near_duplicate_threshold": statement.excluded.near_duplicate_threshold,
            },
        )
        await self.session.execute(statement)
        found = await self.settings(organization_id)
        assert found is not None
        await self.session.refresh(found)
        return found
