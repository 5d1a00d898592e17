"""All SQL of the catalog. Every query names the organization; row-level security is the
second wall."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, any_, bindparam, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog.errors import CodeTaken
from kai.catalog.models import (
    SHOWN_FIRST,
    CatalogSettings,
    Category,
    CategoryTreeVersion,
    ImageStatus,
    Material,
    MaterialImage,
    MaterialVersion,
)
from kai.kit.errors import conflict_for
from kai.kit.json import dumps
from kai.kit.pagination import PageParams, paginate

# Materials whose search documents one statement rewrites.
REINDEX_CHUNK = 2000


class CategoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self, organization_id: uuid.UUID) -> list[Category]:
        """The whole tree, parents before children, siblings in order."""
        statement = (
            select(Category)
            .where(Category.organization_id == organization_id)
            .order_by(func.cardinality(Category.path), Category.position, func.lower(Category.name))
            # Paths change by bulk updates (moves): never trust the identity map's copies.
            .execution_options(populate_existing=True)
        )
        return list((await self.session.scalars(statement)).all())

    async def tree_version(self, organization_id: uuid.UUID) -> int | None:
        """Where the category tree stands (a new number on every change); None: no tree yet."""
        statement = select(CategoryTreeVersion.version).where(
            CategoryTreeVersion.organization_id == organization_id
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get(
        self, organization_id: uuid.UUID, category_id: uuid.UUID, *, for_update: bool = False
    ) -> Category | None:
        statement = select(Category).where(
            Category.organization_id == organization_id, Category.id == category_id
        )
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def many(
        self, organization_id: uuid.UUID, category_ids: Sequence[uuid.UUID]
    ) -> list[Category]:
        statement = select(Category).where(
            Category.organization_id == organization_id, Category.id.in_(category_ids)
        )
        return list((await self.session.scalars(statement)).all())

    async def add(self, category: Category) -> Category:
        self.session.add(category)
        await self.session.flush()
        await self.session.refresh(category)
        return category

    async def next_position(self, organization_id: uuid.UUID, parent_id: uuid.UUID | None) -> int:
        statement = select(func.coalesce(func.max(Category.position) + 1, 0)).where(
            Category.organization_id == organization_id,
            Category.parent_id.is_(None) if parent_id is None else Category.parent_id == parent_id,
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def descendants(
        self, organization_id: uuid.UUID, category_id: uuid.UUID
    ) -> list[Category]:
        statement = select(Category).where(
            Category.organization_id == organization_id, any_(Category.path) == category_id
        )
        return list((await self.session.scalars(statement)).all())

    async def subtree_ids(
        self, organization_id: uuid.UUID, category_id: uuid.UUID
    ) -> list[uuid.UUID]:
        statement = select(Category.id).where(
            Category.organization_id == organization_id,
            or_(Category.id == category_id, any_(Category.path) == category_id),
        )
        return list((await self.session.scalars(statement)).all())

    async def move_subtree(
        self, organization_id: uuid.UUID, category_id: uuid.UUID, new_path: list[uuid.UUID]
    ) -> None:
        """Give the category the ancestors `new_path`, and its descendants theirs through it."""
        await self.session.execute(
            update(Category)
            .where(Category.organization_id == organization_id, Category.id == category_id)
            .values(path=new_path)
            .execution_options(synchronize_session=False)
        )
        # A descendant's path runs through the moved category: keep the part from it down.
        await self.session.execute(
            text(
                "UPDATE categories"
                " SET path = CAST(:new_path AS uuid[])"
                "     || path[array_position(path, CAST(:moved AS uuid)):]"
                " WHERE organization_id = :organization AND CAST(:moved AS uuid) = ANY (path)"
            ),
            {"new_path": new_path, "moved": category_id, "organization": organization_id},
        )

    async def has_children(self, organization_id: uuid.UUID, category_id: uuid.UUID) -> bool:
        statement = select(func.count()).where(
            Category.organization_id == organization_id, Category.parent_id == category_id
        )
        return bool((await self.session.execute(statement)).scalar_one())

    async def delete(self, category: Category) -> None:
        await self.session.delete(category)
        await self.session.flush()


@dataclass(frozen=True)
class MaterialFilters:
    category_ids: Sequence[uuid.UUID] | None = None
    status: str | None = None
    tag: str | None = None
    include_deleted: bool = False
    # The trash: the deleted materials alone.
    deleted_only: bool = False


# The category words once per category and the language once, not once per row as the
# trigger would: the document itself from the function the trigger uses.
_INSERT_MATERIALS = text(
    """
    WITH given AS MATERIALIZED (
        SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS incoming (
            id uuid, organization_id uuid, category_id uuid, name text, code text,
            description text, properties jsonb, properties_text text, manufacturer text,
            supplier text, price numeric, currency text, tags text[], status text,
            version integer, created_by text, updated_by text)
    ), words AS MATERIALIZED (
        SELECT category_id, kai_category_words(category_id) AS words
          FROM (SELECT DISTINCT category_id FROM given WHERE category_id IS NOT NULL) AS used
    ), language AS MATERIALIZED (
        SELECT kai_search_language(CAST(:organization AS uuid)) AS config
    )
    INSERT INTO materials (
        id, organization_id, category_id, name, code, description, properties,
        properties_text, manufacturer, supplier, price, currency, tags, status, version,
        created_by, updated_by, search_vector)
    SELECT given.id, given.organization_id, given.category_id, given.name, given.code,
           given.description, given.properties, given.properties_text, given.manufacturer,
           given.supplier, given.price, given.currency, given.tags, given.status,
           given.version, given.created_by, given.updated_by,
           kai_material_document(
               language.config, words.words, given.name, given.code, given.description,
               given.tags, given.properties_text, given.manufacturer, given.supplier)
      FROM given
     CROSS JOIN language
      LEFT JOIN words ON words.category_id = given.category_id
    """
)
_INSERT_VERSIONS = text(
    """
    INSERT INTO material_versions
        (id, organization_id, material_id, version, action, changes, actor_type, actor_id)
    SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS incoming (
        id uuid, organization_id uuid, material_id uuid, version integer, action text,
        changes jsonb, actor_type text, actor_id text)
    """
)


class MaterialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self,
        organization_id: uuid.UUID,
        material_id: uuid.UUID,
        *,
        include_deleted: bool = False,
        for_update: bool = False,
    ) -> Material | None:
        statement = select(Material).where(
            Material.organization_id == organization_id, Material.id == material_id
        )
        if not include_deleted:
            statement = statement.where(Material.deleted_at.is_(None))
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def add(self, material: Material) -> Material:
        self.session.add(material)
        await self.session.flush()
        await self.session.refresh(material)
        return material

    async def refresh(self, material: Material) -> Material:
        await self.session.flush()
        await self.session.refresh(material)
        return material

    async def insert_many(
        self,
        organization_id: uuid.UUID,
        materials: Sequence[Mapping[str, Any]],
        versions: Sequence[Mapping[str, Any]],
    ) -> None:
        """New materials (columns, ids set) and their versions, in two statements.

        The rows travel as one JSON document each. Their search documents are computed here
        with the function the trigger uses, the category words once per category rather than
        once per row; the trigger keeps a document that comes with a new row.
        """
        if not materials:
            return
        try:
            await self.session.execute(
                _INSERT_MATERIALS,
                {"organization": organization_id, "rows": dumps(list(materials)).decode()},
            )
        except IntegrityError as exc:
            # Imports report it as the batch's problem rather than as an HTTP answer.
            if isinstance(conflict_for(exc), CodeTaken):
                raise CodeTaken("Another material took one of these codes meanwhile.") from exc
            raise
        await self.session.execute(_INSERT_VERSIONS, {"rows": dumps(list(versions)).decode()})

    async def code_taken(
        self, organization_id: uuid.UUID, code: str, *, other_than: uuid.UUID | None = None
    ) -> bool:
        statement = select(func.count()).where(
            Material.organization_id == organization_id,
            # lower() on both sides, as the unique index compares: Python's folds more.
            func.lower(Material.code) == func.lower(code),
            Material.deleted_at.is_(None),
        )
        if other_than is not None:
            statement = statement.where(Material.id != other_than)
        return bool((await self.session.execute(statement)).scalar_one())

    async def live_by_codes(
        self, organization_id: uuid.UUID, codes: Sequence[str]
    ) -> dict[str, Material]:
        """Live materials with these codes, by lower-cased code."""
        if not codes:
            return {}
        # One array parameter, not thousands of bound values to render and parse: the codes
        # of a 100,000-row file that are all new take 0.2 s instead of 1.7 s. They are
        # lower-cased by PostgreSQL, as the unique index compares them (Python's lower() folds
        # "É" where the C locale's does not: such a code was taken for new, then refused).
        given = bindparam("codes", sorted(set(codes)), type_=ARRAY(String))
        statement = select(Material).where(
            Material.organization_id == organization_id,
            Material.deleted_at.is_(None),
            func.lower(Material.code).in_(select(func.lower(func.unnest(given)))),
        )
        return {
            material.code.lower(): material for material in await self.session.scalars(statement)
        }

    async def count_in_categories(
        self, organization_id: uuid.UUID, category_ids: Sequence[uuid.UUID]
    ) -> int:
        """Materials filed under these categories, deleted ones included (they may return)."""
        statement = select(func.count()).where(
            Material.organization_id == organization_id, Material.category_id.in_(category_ids)
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def deleted_in_category(
        self, organization_id: uuid.UUID, category_id: uuid.UUID, *, for_update: bool = False
    ) -> list[Material]:
        statement = select(Material).where(
            Material.organization_id == organization_id,
            Material.category_id == category_id,
            Material.deleted_at.is_not(None),
        )
        if for_update:
            statement = statement.with_for_update()
        return list((await self.session.scalars(statement)).all())

    async def delete_rows(
        self, organization_id: uuid.UUID, material_ids: Sequence[uuid.UUID]
    ) -> None:
        """Remove materials for good (what references them goes or lets go by its keys)."""
        await self.session.execute(
            delete(Material)
            .where(Material.organization_id == organization_id, Material.id.in_(material_ids))
            .execution_options(synchronize_session=False)
        )
        await self.session.flush()

    async def count_deleted_in_categories(
        self, organization_id: uuid.UUID, category_ids: Sequence[uuid.UUID]
    ) -> int:
        statement = select(func.count()).where(
            Material.organization_id == organization_id,
            Material.category_id.in_(category_ids),
            Material.deleted_at.is_not(None),
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def stored_properties(
        self,
        organization_id: uuid.UUID,
        category_id: uuid.UUID,
        keys: Sequence[str],
        *,
        every_material: bool,
    ) -> list[tuple[uuid.UUID, dict[str, Any]]]:
        """The live materials of a category and their stored values of `keys`: those holding
        any of them, or every one when `every_material` (a key that became required)."""
        pairs = [part for key in keys for part in (key, Material.properties[key])]
        picked = func.jsonb_strip_nulls(func.jsonb_build_object(*pairs))
        statement = select(Material.id, picked).where(
            Material.organization_id == organization_id,
            Material.category_id == category_id,
            Material.deleted_at.is_(None),
        )
        if not every_material:
            statement = statement.where(
                Material.properties.has_any(bindparam("keys", list(keys), type_=ARRAY(String)))
            )
        return [(row[0], dict(row[1])) for row in await self.session.execute(statement)]

    async def live_ids(
        self, organization_id: uuid.UUID, material_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Which of these ids are live materials of the organization."""
        statement = select(Material.id).where(
            Material.organization_id == organization_id,
            Material.id.in_(list(material_ids)),
            Material.deleted_at.is_(None),
        )
        return set((await self.session.scalars(statement)).all())

    async def list_page(
        self, organization_id: uuid.UUID, filters: MaterialFilters, params: PageParams
    ) -> tuple[list[Material], str | None]:
        statement = select(Material).where(Material.organization_id == organization_id)
        if filters.deleted_only:
            statement = statement.where(Material.deleted_at.is_not(None))
        elif not filters.include_deleted:
            statement = statement.where(Material.deleted_at.is_(None))
        if filters.category_ids is not None:
            statement = statement.where(Material.category_id.in_(filters.category_ids))
        if filters.status is not None:
            statement = statement.where(Material.status == filters.status)
        if filters.tag is not None:
            statement = statement.where(any_(Material.tags) == filters.tag)
        return await paginate(
            self.session,
            statement,
            order_by=[Material.created_at, Material.id],
            params=params,
        )

    async def add_version(self, version: MaterialVersion) -> None:
        self.session.add(version)
        await self.session.flush()

    async def versions_page(
        self, organization_id: uuid.UUID, material_id: uuid.UUID, params: PageParams
    ) -> tuple[list[MaterialVersion], str | None]:
        statement = select(MaterialVersion).where(
            MaterialVersion.organization_id == organization_id,
            MaterialVersion.material_id == material_id,
        )
        return await paginate(
            self.session, statement, order_by=[MaterialVersion.version], params=params
        )

    async def versions_since(
        self, organization_id: uuid.UUID, material_id: uuid.UUID, version: int
    ) -> list[MaterialVersion]:
        """The material's versions from `version` on, newest first."""
        statement = (
            select(MaterialVersion)
            .where(
                MaterialVersion.organization_id == organization_id,
                MaterialVersion.material_id == material_id,
                MaterialVersion.version >= version,
            )
            .order_by(MaterialVersion.version.desc())
        )
        return list(await self.session.scalars(statement))

    async def currency_changes(
        self, organization_id: uuid.UUID, material_id: uuid.UUID
    ) -> list[tuple[int, str | None]]:
        """Each version that changed a material's currency, oldest first, with the new one."""
        new_currency = MaterialVersion.changes["currency"]["new"].astext
        statement = (
            select(MaterialVersion.version, new_currency)
            .where(
                MaterialVersion.organization_id == organization_id,
                MaterialVersion.material_id == material_id,
                MaterialVersion.changes.has_key("currency"),
            )
            .order_by(MaterialVersion.version)
        )
        return [(version, currency) for version, currency in await self.session.execute(statement)]


class ImageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, image: MaterialImage) -> MaterialImage:
        self.session.add(image)
        await self.session.flush()
        await self.session.refresh(image)
        return image

    async def get(
        self,
        organization_id: uuid.UUID,
        image_id: uuid.UUID,
        *,
        material_id: uuid.UUID | None = None,
        for_update: bool = False,
    ) -> MaterialImage | None:
        statement = select(MaterialImage).where(
            MaterialImage.organization_id == organization_id, MaterialImage.id == image_id
        )
        if material_id is not None:
            statement = statement.where(MaterialImage.material_id == material_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def by_sha256(self, organization_id: uuid.UUID, sha256: str) -> MaterialImage | None:
        statement = select(MaterialImage).where(
            MaterialImage.organization_id == organization_id, MaterialImage.sha256 == sha256
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def of_material(
        self, organization_id: uuid.UUID, material_id: uuid.UUID
    ) -> list[MaterialImage]:
        statement = (
            select(MaterialImage)
            .where(
                MaterialImage.organization_id == organization_id,
                MaterialImage.material_id == material_id,
            )
            .order_by(MaterialImage.position, MaterialImage.created_at, MaterialImage.id)
        )
        return list((await self.session.scalars(statement)).all())

    async def page_of_material(
        self, organization_id: uuid.UUID, material_id: uuid.UUID, params: PageParams
    ) -> tuple[list[MaterialImage], str | None]:
        statement = select(MaterialImage).where(
            MaterialImage.organization_id == organization_id,
            MaterialImage.material_id == material_id,
        )
        return await paginate(
            self.session,
            statement,
            order_by=[MaterialImage.position, MaterialImage.created_at, MaterialImage.id],
            params=params,
            descending=False,
        )

    async def of_materials(
        self, organization_id: uuid.UUID, material_ids: Sequence[uuid.UUID]
    ) -> list[MaterialImage]:
        statement = select(MaterialImage).where(
            MaterialImage.organization_id == organization_id,
            MaterialImage.material_id.in_(material_ids),
        )
        return list((await self.session.scalars(statement)).all())

    async def primary_of(
        self, organization_id: uuid.UUID, material_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, MaterialImage]:
        statement = select(MaterialImage).where(
            MaterialImage.organization_id == organization_id,
            MaterialImage.material_id.in_(material_ids),
            MaterialImage.is_primary,
        )
        return {image.material_id: image for image in (await self.session.scalars(statement))}

    async def shown_of(
        self, organization_id: uuid.UUID, material_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, uuid.UUID]:
        """The image each material is shown by in a list: its primary image once ready,
        otherwise its first ready one. By material id; none for a material without one."""
        if not material_ids:
            return {}
        statement = (
            select(MaterialImage.material_id, MaterialImage.id)
            .where(
                MaterialImage.organization_id == organization_id,
                MaterialImage.material_id.in_(material_ids),
                MaterialImage.status == ImageStatus.READY.value,
            )
            .ext(distinct_on(MaterialImage.material_id))
            .order_by(MaterialImage.material_id, *SHOWN_FIRST)
        )
        rows = await self.session.execute(statement)
        return {row[0]: row[1] for row in rows}

    async def clear_primary(self, organization_id: uuid.UUID, material_id: uuid.UUID) -> None:
        await self.session.execute(
            update(MaterialImage)
            .where(
                MaterialImage.organization_id == organization_id,
                MaterialImage.material_id == material_id,
                MaterialImage.is_primary,
            )
            .values(is_primary=False)
            .execution_options(synchronize_session=False)
        )
        await self.session.flush()

    async def delete(self, image: MaterialImage) -> None:
        await self.session.delete(image)
        await self.session.flush()


class SettingsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, organization_id: uuid.UUID) -> CatalogSettings | None:
        return await self.session.get(CatalogSettings, organization_id)

    async def set_language(self, organization_id: uuid.UUID, language: str) -> None:
        statement = insert(CatalogSettings).values(
            organization_id=organization_id, search_language=language
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[CatalogSettings.organization_id],
                set_={"search_language": statement.excluded.search_language},
            )
        )

    async def languages(self) -> list[str]:
        """The server's text-search configurations (`english`, `german`, `simple`...)."""
        rows = await self.session.execute(
            text(
                "SELECT cfgname FROM pg_ts_config"
                " WHERE cfgnamespace = 'pg_catalog'::regnamespace ORDER BY cfgname"
            )
        )
        return [str(row[0]) for row in rows]

    async def reindex_materials(
        self,
        organization_id: uuid.UUID,
        *,
        category_ids: Sequence[uuid.UUID] | None = None,
        chunk: int = REINDEX_CHUNK,
    ) -> int:
        """Rewrite the full-text documents of the organization's materials (the trigger reads
        the language and the category names), of those in `category_ids` only if given. A
        chunk a statement, in order of id: no statement runs into the statement timeout,
        however large the catalog."""
        rewritten = 0
        after: uuid.UUID | None = None
        while True:
            chosen = (
                select(Material.id)
                .where(Material.organization_id == organization_id)
                .order_by(Material.id)
                .limit(chunk)
            )
            if category_ids is not None:
                chosen = chosen.where(Material.category_id.in_(list(category_ids)))
            if after is not None:
                chosen = chosen.where(Material.id > after)
            ids = (
                await self.session.scalars(
                    update(Material)
                    .where(Material.id.in_(chosen.scalar_subquery()))
                    .values(category_id=Material.category_id)
                    .returning(Material.id)
                    .execution_options(synchronize_session=False)
                )
            ).all()
            rewritten += len(ids)
            if len(ids) < chunk:
                return rewritten
            after = max(ids)
