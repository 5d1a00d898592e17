"""All SQL of model training: model versions, and the photos a training learns from."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog.models import Category, ImageStatus, Material, MaterialImage
from kai.kit.pagination import PageParams, paginate
from kai.ml.models import (
    DriftWindow,
    ExperimentObservation,
    ImageModel,
    LabeledPhoto,
    ModelEvent,
    ModelExperiment,
    ModelSettings,
    ModelVersion,
    ReviewItem,
    ServedPrediction,
)


@dataclass(frozen=True)
class CatalogPhoto:
    """A ready catalog image of a live material, with what labels it can carry."""

    image_id: uuid.UUID
    key: str
    material_id: uuid.UUID
    material_name: str
    material_code: str
    category_id: uuid.UUID | None


@dataclass(frozen=True)
class LabeledExample:
    """A photo labelled in feedback, with its material's name and category when it names one."""

    id: uuid.UUID
    image_key: str
    category_id: uuid.UUID | None
    material_id: uuid.UUID | None
    material_label: str | None


class ModelVersionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def next_number(self, organization_id: uuid.UUID) -> int:
        statement = select(func.coalesce(func.max(ModelVersion.number), 0)).where(
            ModelVersion.organization_id == organization_id
        )
        return int(await self.session.scalar(statement) or 0) + 1

    async def add(self, version: ModelVersion) -> ModelVersion:
        self.session.add(version)
        await self.session.flush()
        return version

    async def get(
        self, organization_id: uuid.UUID, version_id: uuid.UUID, *, for_update: bool = False
    ) -> ModelVersion | None:
        statement = select(ModelVersion).where(
            ModelVersion.organization_id == organization_id, ModelVersion.id == version_id
        )
        if for_update:
            statement = statement.with_for_update()
        found: ModelVersion | None = await self.session.scalar(statement)
        return found

    async def untracked(self, organization_id: uuid.UUID) -> list[ModelVersion]:
        """Ready versions not yet recorded in MLflow, oldest first."""
        statement = (
            select(ModelVersion)
            .where(
                ModelVersion.organization_id == organization_id,
                ModelVersion.status == "ready",
                ModelVersion.mlflow_run_id.is_(None),
            )
            .order_by(ModelVersion.number)
        )
        return list((await self.session.scalars(statement)).all())

    async def active(self, organization_id: uuid.UUID) -> ModelVersion | None:
        statement = select(ModelVersion).where(
            ModelVersion.organization_id == organization_id, ModelVersion.active.is_(True)
        )
        found: ModelVersion | None = await self.session.scalar(statement)
        return found

    async def active_and_test(
        self, organization_id: uuid.UUID
    ) -> tuple[ModelVersion | None, ModelExperiment | None]:
        """The active version and the organization's running A/B test, in one statement: what
        every recognition reads first."""
        statement = (
            select(ModelVersion, ModelExperiment)
            .outerjoin(
                ModelExperiment,
                and_(
                    ModelExperiment.organization_id == ModelVersion.organization_id,
                    ModelExperiment.status == "running",
                ),
            )
            .where(ModelVersion.organization_id == organization_id, ModelVersion.active.is_(True))
        )
        found = (await self.session.execute(statement)).first()
        if found is None:
            return None, None
        return found[0], found[1]

    async def list_page(
        self, organization_id: uuid.UUID, params: PageParams
    ) -> tuple[list[ModelVersion], str | None]:
        """Newest first."""
        statement = select(ModelVersion).where(ModelVersion.organization_id == organization_id)
        return await paginate(
            self.session, statement, order_by=(ModelVersion.number,), params=params
        )

    async def numbers(self, organization_id: uuid.UUID) -> dict[uuid.UUID, int]:
        """Each version's number by its id (what people call a version), nothing else."""
        statement = select(ModelVersion.id, ModelVersion.number).where(
            ModelVersion.organization_id == organization_id
        )
        return {row.id: row.number for row in (await self.session.execute(statement)).all()}

    async def activate(self, organization_id: uuid.UUID, version_id: uuid.UUID) -> None:
        """Make one version the active one (the previous active one is retired first: at most
        one may be active, as the partial unique index insists)."""
        await self.session.execute(
            update(ModelVersion)
            .where(ModelVersion.organization_id == organization_id, ModelVersion.active.is_(True))
            .values(active=False)
        )
        await self.session.execute(
            update(ModelVersion)
            .where(ModelVersion.organization_id == organization_id, ModelVersion.id == version_id)
            .values(active=True)
        )

    async def catalog_photos(self, organization_id: uuid.UUID) -> list[CatalogPhoto]:
        """Every ready image of a live material (the processed derivative when there is one)."""
        statement = (
            select(
                MaterialImage.id,
                func.coalesce(MaterialImage.processed_key, MaterialImage.original_key),
                Material.id,
                Material.name,
                Material.code,
                Material.category_id,
            )
            .join(Material, Material.id == MaterialImage.material_id)
            .where(
                MaterialImage.organization_id == organization_id,
                MaterialImage.status == ImageStatus.READY.value,
                Material.deleted_at.is_(None),
            )
            .order_by(MaterialImage.id)
        )
        return [CatalogPhoto(*row) for row in (await self.session.execute(statement)).all()]

    async def categories(self, organization_id: uuid.UUID) -> dict[uuid.UUID, Category]:
        statement = select(Category).where(Category.organization_id == organization_id)
        return {category.id: category for category in (await self.session.scalars(statement))}

    async def labeled_photos(self, organization_id: uuid.UUID) -> list[LabeledExample]:
        """Photos labelled in feedback; a photo that names a material takes its category too."""
        material_label = func.concat(Material.name, " (", Material.code, ")")
        statement = (
            select(
                LabeledPhoto.id,
                LabeledPhoto.image_key,
                func.coalesce(LabeledPhoto.category_id, Material.category_id),
                LabeledPhoto.material_id,
                func.nullif(material_label, " ()"),
            )
            .outerjoin(
                Material,
                (Material.id == LabeledPhoto.material_id) & Material.deleted_at.is_(None),
            )
            .where(LabeledPhoto.organization_id == organization_id)
            .order_by(LabeledPhoto.id)
        )
        return [LabeledExample(*row) for row in (await self.session.execute(statement)).all()]

    async def forget_labeled_photo(
        self, organization_id: uuid.UUID, recognition_id: uuid.UUID
    ) -> None:
        await self.session.execute(
            delete(LabeledPhoto).where(
                LabeledPhoto.organization_id == organization_id,
                LabeledPhoto.recognition_id == recognition_id,
            )
        )

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


class ImageModelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, model: ImageModel) -> ImageModel:
        self.session.add(model)
        await self.session.flush()
        await self.session.refresh(model)
        return model

    async def by_name(self, organization_id: uuid.UUID, name: str) -> ImageModel | None:
        statement = select(ImageModel).where(
            ImageModel.organization_id == organization_id, ImageModel.name == name
        )
        found: ImageModel | None = await self.session.scalar(statement)
        return found

    async def list_page(
        self, organization_id: uuid.UUID, params: PageParams
    ) -> tuple[list[ImageModel], str | None]:
        """By name."""
        statement = select(ImageModel).where(ImageModel.organization_id == organization_id)
        return await paginate(
            self.session, statement, order_by=(ImageModel.name,), params=params, descending=False
        )

    async def versions_using(self, organization_id: uuid.UUID, backbone: str) -> list[int]:
        """Numbers of the ready or training versions whose ensemble has `backbone`: asked for
        in its options, or (a fine-tuned model) put there by its training."""
        statement = (
            select(ModelVersion.number)
            .where(
                ModelVersion.organization_id == organization_id,
                ModelVersion.status.in_(("ready", "training")),
                or_(
                    ModelVersion.options["backbones"].contains([backbone]),
                    ModelVersion.backbones.contains([{"name": backbone}]),
                ),
            )
            .order_by(ModelVersion.number)
        )
        return list((await self.session.scalars(statement)).all())

    async def delete(self, model: ImageModel) -> None:
        await self.session.delete(model)
        await self.session.flush()


class ExperimentRepository:
    """A/B tests, their observations, and the events of an organization's models."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, experiment: ModelExperiment) -> ModelExperiment:
        self.session.add(experiment)
        await self.session.flush()
        return experiment

    async def get(
        self, organization_id: uuid.UUID, experiment_id: uuid.UUID
    ) -> ModelExperiment | None:
        found: ModelExperiment | None = await self.session.scalar(
            select(ModelExperiment).where(
                ModelExperiment.organization_id == organization_id,
                ModelExperiment.id == experiment_id,
            )
        )
        return found

    async def organizations_running(self) -> list[uuid.UUID]:
        """Every organization with a test running (across tenants: an owner's function)."""
        found = await self.session.scalars(
            select(func.kai_organizations_with_running_experiments())
        )
        return sorted(found.all())

    async def running(self, organization_id: uuid.UUID) -> ModelExperiment | None:
        found: ModelExperiment | None = await self.session.scalar(
            select(ModelExperiment).where(
                ModelExperiment.organization_id == organization_id,
                ModelExperiment.status == "running",
            )
        )
        return found

    async def list_page(
        self, organization_id: uuid.UUID, params: PageParams
    ) -> tuple[list[ModelExperiment], str | None]:
        """Oldest first, by id (time-ordered)."""
        statement = select(ModelExperiment).where(
            ModelExperiment.organization_id == organization_id
        )
        return await paginate(
            self.session, statement, order_by=(ModelExperiment.id,), params=params
        )

    async def observation(
        self, organization_id: uuid.UUID, recognition_id: uuid.UUID
    ) -> ExperimentObservation | None:
        found: ExperimentObservation | None = await self.session.scalar(
            select(ExperimentObservation).where(
                ExperimentObservation.organization_id == organization_id,
                ExperimentObservation.recognition_id == recognition_id,
            )
        )
        return found

    async def figures(self, experiment_id: uuid.UUID, mode: str) -> dict[str, dict[str, Any]]:
        """Per variant: recognitions, unknown share, mean confidence, median latency, answers
        judged by feedback and those right (in shadow mode the challenger's are the shadow
        answers, with their agreement with the champion's)."""
        observed = ExperimentObservation
        where = observed.experiment_id == experiment_id
        latency = func.percentile_cont(0.5).within_group(observed.latency_ms)

        def share(condition: Any) -> Any:
            return func.avg(case((condition, 1.0), else_=0.0))

        shown = select(
            observed.variant,
            func.count(),
            share(observed.unknown),
            func.avg(observed.confidence),
            latency,
            func.count(observed.correct),
            func.count().filter(observed.correct.is_(True)),
        ).where(where)
        found = {name: _no_figures() for name in ("champion", "challenger")}
        for variant, count, unknown, confidence, median, judged, right in (
            await self.session.execute(shown.group_by(observed.variant))
        ).all():
            found[variant] = _figures(count, unknown, confidence, median, judged, right)
        if mode == "shadow":
            row = (
                await self.session.execute(
                    select(
                        func.count(),
                        share(observed.shadow_unknown.is_(True)),
                        func.avg(observed.shadow_confidence),
                        latency,
                        func.count(observed.shadow_correct),
                        func.count().filter(observed.shadow_correct.is_(True)),
                        share(observed.shadow_label == observed.label),
                    ).where(where)
                )
            ).one()
            found["challenger"] = {
                **_figures(*row[:6]),
                "agreement": None if not row[0] else round(float(row[6]), 4),
            }
        return found

    async def events(
        self, organization_id: uuid.UUID, params: PageParams
    ) -> tuple[list[ModelEvent], str | None]:
        """Oldest first, by id (time-ordered)."""
        statement = select(ModelEvent).where(ModelEvent.organization_id == organization_id)
        return await paginate(self.session, statement, order_by=(ModelEvent.id,), params=params)


def _no_figures() -> dict[str, Any]:
    return _figures(0, None, None, None, 0, 0)


def _figures(
    count: int, unknown: Any, confidence: Any, median: Any, judged: int, right: int
) -> dict[str, Any]:
    return {
        "recognitions": int(count),
        "unknown_share": None if unknown is None else round(float(unknown), 4),
        "mean_confidence": None if confidence is None else round(float(confidence), 4),
        "median_latency_ms": None if median is None else round(float(median), 2),
        "judged": int(judged),
        "right": int(right),
        "accuracy": round(int(right) / int(judged), 4) if judged else None,
    }


class DriftRepository:
    """What versions answered live, and the drift windows measured on it."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def organizations_serving(self, since: datetime) -> list[uuid.UUID]:
        """Every organization with a recognition since then (across tenants)."""
        found = await self.session.scalars(select(func.kai_organizations_serving_since(since)))
        return sorted(found.all())

    async def last_end(self, organization_id: uuid.UUID, version_id: uuid.UUID) -> datetime | None:
        found: datetime | None = await self.session.scalar(
            select(func.max(DriftWindow.ended_at)).where(
                DriftWindow.organization_id == organization_id,
                DriftWindow.model_version_id == version_id,
            )
        )
        return found

    async def served(
        self,
        organization_id: uuid.UUID,
        version_id: uuid.UUID,
        *,
        since: datetime | None,
        limit: int,
    ) -> list[ServedPrediction]:
        """The version's answers after `since`, oldest first, at most `limit`."""
        statement = select(ServedPrediction).where(
            ServedPrediction.organization_id == organization_id,
            ServedPrediction.model_version_id == version_id,
        )
        if since is not None:
            statement = statement.where(ServedPrediction.created_at > since)
        statement = statement.order_by(ServedPrediction.created_at).limit(limit)
        return list((await self.session.scalars(statement)).all())

    async def add(self, window: DriftWindow) -> DriftWindow:
        self.session.add(window)
        await self.session.flush()
        return window

    async def list_page(
        self, organization_id: uuid.UUID, params: PageParams
    ) -> tuple[list[DriftWindow], str | None]:
        """Newest first."""
        statement = select(DriftWindow).where(DriftWindow.organization_id == organization_id)
        return await paginate(self.session, statement, order_by=(DriftWindow.id,), params=params)


class ReviewRepository:
    """The review queue, and the organization's rules for challengers."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, organization_id: uuid.UUID, recognition_id: uuid.UUID) -> ReviewItem | None:
        found: ReviewItem | None = await self.session.scalar(
            select(ReviewItem).where(
                ReviewItem.organization_id == organization_id,
                ReviewItem.recognition_id == recognition_id,
            )
        )
        return found

    async def pending(self, organization_id: uuid.UUID, *, limit: int) -> list[ReviewItem]:
        """The newest pending items, at most `limit`."""
        statement = (
            select(ReviewItem)
            .where(ReviewItem.organization_id == organization_id, ReviewItem.status == "pending")
            .order_by(ReviewItem.created_at.desc())
            .limit(limit)
        )
        return list((await self.session.scalars(statement)).all())

    async def count_pending(self, organization_id: uuid.UUID) -> int:
        found = await self.session.scalar(
            select(func.count()).where(
                ReviewItem.organization_id == organization_id, ReviewItem.status == "pending"
            )
        )
        return int(found or 0)

    async def settings(self, organization_id: uuid.UUID) -> ModelSettings | None:
        found: ModelSettings | None = await self.session.get(ModelSettings, organization_id)
        return found

    async def labels_since(self, organization_id: uuid.UUID, since: datetime | None) -> int:
        """Photos labelled in feedback since then (all, with None)."""
        statement = select(func.count()).where(LabeledPhoto.organization_id == organization_id)
        if since is not None:
            statement = statement.where(LabeledPhoto.created_at > since)
        return int(await self.session.scalar(statement) or 0)

    async def training(self, organization_id: uuid.UUID) -> bool:
        """Whether a version of the organization is being trained now."""
        found = await self.session.scalar(
            select(func.count()).where(
                ModelVersion.organization_id == organization_id,
                ModelVersion.status == "training",
            )
        )
        return bool(found)

    async def newest_version_at(self, organization_id: uuid.UUID) -> datetime | None:
        found: datetime | None = await self.session.scalar(
            select(func.max(ModelVersion.created_at)).where(
                ModelVersion.organization_id == organization_id
            )
        )
        return found
