"""All SQL of recognition: recognitions, their feedback, recognition settings, and projects."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from kai.catalog.models import Material
from kai.kit.pagination import PageParams, paginate
from kai.recognition.models import (
    Project,
    ProjectMaterial,
    Recognition,
    RecognitionBatch,
    RecognitionFeedback,
    RecognitionSettings,
)


def in_visible_project(
    project_id: InstrumentedAttribute[uuid.UUID | None],
    organization_id: uuid.UUID,
    visible: ColumnElement[bool],
) -> ColumnElement[bool]:
    """Rows in no project, or in one of the projects `visible` lets the actor see."""
    if visible is true():
        return true()
    seen = select(Project.id).where(Project.organization_id == organization_id, visible)
    return or_(project_id.is_(None), project_id.in_(seen))


class RecognitionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, recognition: Recognition) -> Recognition:
        self.session.add(recognition)
        await self.session.flush()
        return recognition

    async def get(
        self,
        organization_id: uuid.UUID,
        recognition_id: uuid.UUID,
        *,
        visible: ColumnElement[bool] | None = None,
    ) -> Recognition | None:
        """The recognition, unless it is filed in a project outside `visible`."""
        statement = select(Recognition).where(
            Recognition.organization_id == organization_id, Recognition.id == recognition_id
        )
        if visible is not None:
            statement = statement.where(
                in_visible_project(Recognition.project_id, organization_id, visible)
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
        project_id: uuid.UUID | None,
        since: datetime | None,
        until: datetime | None,
        visible: ColumnElement[bool],
        params: PageParams,
    ) -> tuple[list[Recognition], str | None]:
        statement: Select[Recognition] = select(Recognition).where(
            Recognition.organization_id == organization_id,
            in_visible_project(Recognition.project_id, organization_id, visible),
        )
        if project_id is not None:
            statement = statement.where(Recognition.project_id == project_id)
        if label is not None:
            # In any case and accents; the folded label's index serves it.
            statement = statement.where(Recognition.label_folded == func.kai_fold(label))
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


class ProjectRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, project: Project) -> Project:
        self.session.add(project)
        await self.session.flush()
        await self.session.refresh(project)
        return project

    async def get(
        self,
        organization_id: uuid.UUID,
        project_id: uuid.UUID,
        *,
        visible: ColumnElement[bool],
        lock: bool = False,
    ) -> Project | None:
        """The project; `lock`: kept from deletion until the transaction ends (for filing
        things in it, whose reference would otherwise fail)."""
        statement = select(Project).where(
            Project.organization_id == organization_id, Project.id == project_id, visible
        )
        if lock:
            statement = statement.with_for_update(read=True, key_share=True)
        found: Project | None = await self.session.scalar(statement)
        return found

    async def has_filed(self, organization_id: uuid.UUID, project_id: uuid.UUID) -> bool:
        """Whether any recognition or batch is filed in the project."""
        for column, table in (
            (Recognition.project_id, Recognition.organization_id),
            (RecognitionBatch.project_id, RecognitionBatch.organization_id),
        ):
            statement = select(column).where(table == organization_id, column == project_id)
            if await self.session.scalar(statement.limit(1)) is not None:
                return True
        return False

    async def list_page(
        self,
        organization_id: uuid.UUID,
        *,
        visible: ColumnElement[bool],
        status: str | None,
        text: str | None,
        team_id: uuid.UUID | None,
        params: PageParams,
    ) -> tuple[list[Project], str | None]:
        statement = select(Project).where(Project.organization_id == organization_id, visible)
        if status is not None:
            statement = statement.where(Project.status == status)
        if text:
            statement = statement.where(
                or_(
                    Project.name.icontains(text, autoescape=True),
                    Project.client.icontains(text, autoescape=True),
                )
            )
        if team_id is not None:
            statement = statement.where(Project.shared_with.contains([team_id]))
        return await paginate(
            self.session, statement, order_by=[Project.created_at, Project.id], params=params
        )

    async def touch(self, project: Project) -> None:
        project.updated_at = func.now()
        await self.session.flush()
        await self.session.refresh(project)

    async def delete(self, project: Project) -> None:
        await self.session.delete(project)
        await self.session.flush()

    async def counts(
        self, organization_id: uuid.UUID, project_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[int, int]]:
        """Recognitions and chosen materials of each project."""
        if not project_ids:
            return {}
        recognitions = await self._counted(
            select(Recognition.project_id, func.count())
            .where(
                Recognition.organization_id == organization_id,
                Recognition.project_id.in_(project_ids),
            )
            .group_by(Recognition.project_id)
        )
        materials = await self._counted(
            select(ProjectMaterial.project_id, func.count())
            .where(
                ProjectMaterial.organization_id == organization_id,
                ProjectMaterial.project_id.in_(project_ids),
            )
            .group_by(ProjectMaterial.project_id)
        )
        return {
            project_id: (recognitions.get(project_id, 0), materials.get(project_id, 0))
            for project_id in project_ids
        }

    async def priced_lines(
        self, organization_id: uuid.UUID, project_ids: list[uuid.UUID]
    ) -> list[tuple[uuid.UUID, Decimal, Decimal, str]]:
        """Each chosen material with a quantity and a catalog price: its project, quantity,
        price and currency."""
        if not project_ids:
            return []
        statement = (
            select(ProjectMaterial.project_id, ProjectMaterial.quantity, Material.price,
                   Material.currency)
            .join(Material, Material.id == ProjectMaterial.material_id)
            .where(
                ProjectMaterial.organization_id == organization_id,
                ProjectMaterial.project_id.in_(project_ids),
                ProjectMaterial.quantity.is_not(None),
                Material.price.is_not(None),
            )
        )  # fmt: skip
        lines = []
        for project_id, quantity, price, currency in await self.session.execute(statement):
            # A price always has its currency (a check on materials says so).
            if quantity is not None and price is not None and currency is not None:
                lines.append((project_id, quantity, price, currency))
        return lines

    async def _counted(self, statement: Select[Any, int]) -> dict[uuid.UUID, int]:
        return dict((await self.session.execute(statement)).all())

    async def file_recognition(
        self, organization_id: uuid.UUID, recognition_id: uuid.UUID, project_id: uuid.UUID | None
    ) -> None:
        await self.session.execute(
            update(Recognition)
            .where(Recognition.organization_id == organization_id, Recognition.id == recognition_id)
            .values(project_id=project_id)
        )

    async def chosen(
        self, organization_id: uuid.UUID, project_id: uuid.UUID, material_id: uuid.UUID
    ) -> ProjectMaterial | None:
        statement = select(ProjectMaterial).where(
            ProjectMaterial.organization_id == organization_id,
            ProjectMaterial.project_id == project_id,
            ProjectMaterial.material_id == material_id,
        )
        found: ProjectMaterial | None = await self.session.scalar(statement)
        return found

    async def choose(
        self,
        organization_id: uuid.UUID,
        project_id: uuid.UUID,
        material_id: uuid.UUID,
        *,
        quantity: Decimal | None,
        unit: str | None,
        note: str,
        recognition_id: uuid.UUID | None,
        added_by: str,
    ) -> ProjectMaterial:
        """Add the material to the project, or change what is said of it there."""
        values: dict[str, Any] = {
            "quantity": quantity,
            "unit": unit,
            "note": note,
            "recognition_id": recognition_id,
        }
        statement = insert(ProjectMaterial).values(
            project_id=project_id,
            material_id=material_id,
            organization_id=organization_id,
            added_by=added_by,
            **values,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[ProjectMaterial.project_id, ProjectMaterial.material_id],
            set_={key: statement.excluded[key] for key in values},
        )
        await self.session.execute(statement)
        found = await self.chosen(organization_id, project_id, material_id)
        assert found is not None
        await self.session.refresh(found)
        return found

    async def unchoose(self, chosen: ProjectMaterial) -> None:
        await self.session.execute(
            delete(ProjectMaterial).where(
                ProjectMaterial.project_id == chosen.project_id,
                ProjectMaterial.material_id == chosen.material_id,
            )
        )

    async def chosen_page(
        self, organization_id: uuid.UUID, project_id: uuid.UUID, params: PageParams
    ) -> tuple[list[tuple[ProjectMaterial, Material]], str | None]:
        """The project's materials, latest chosen first, each with its catalog entry."""
        statement = select(ProjectMaterial).where(
            ProjectMaterial.organization_id == organization_id,
            ProjectMaterial.project_id == project_id,
        )
        rows, next_cursor = await paginate(
            self.session,
            statement,
            order_by=[ProjectMaterial.added_at, ProjectMaterial.material_id],
            params=params,
        )
        materials = {
            material.id: material
            for material in (
                await self.session.scalars(
                    select(Material).where(
                        Material.organization_id == organization_id,
                        Material.id.in_([row.material_id for row in rows]),
                    )
                )
            ).all()
        }
        return [(row, materials[row.material_id]) for row in rows], next_cursor
