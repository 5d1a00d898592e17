"""All SQL of semantic search: materials whose text embedding is missing or stale, writing
embeddings, and the nearest materials to a query vector."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import Uuid, bindparam, cast, func, null, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, insert

from kai.catalog.models import Category, Material
from kai.search.embeddings import EMBEDDING_DIMENSIONS
from kai.search.models import MaterialTextEmbedding


@dataclass(frozen=True)
class MaterialText:
    """What a material says about itself, and the hash of the document it was read from."""

    material_id: uuid.UUID
    name: str
    description: str
    category_id: uuid.UUID | None
    tags: Sequence[str]
    properties_text: str
    manufacturer: str
    document_hash: str


def _document_hash() -> Any:
    return func.md5(func.coalesce(func.text(Material.search_vector), ""))


class SemanticRepository:
    def __init__(self, session: Any) -> None:
        self.session = session

    async def stale(self, organization_id: uuid.UUID, model: str, limit: int) -> list[MaterialText]:
        """Live materials with no embedding by `model`, or one made from an older document."""
        document_hash = _document_hash()
        statement = (
            select(
                Material.id,
                Material.name,
                Material.description,
                Material.category_id,
                Material.tags,
                Material.properties_text,
                Material.manufacturer,
                document_hash,
            )
            .outerjoin(MaterialTextEmbedding, MaterialTextEmbedding.material_id == Material.id)
            .where(
                Material.organization_id == organization_id,
                Material.deleted_at.is_(None),
                or_(
                    MaterialTextEmbedding.material_id.is_(None),
                    MaterialTextEmbedding.model != model,
                    MaterialTextEmbedding.document_hash != document_hash,
                ),
            )
            .order_by(Material.id)
            .limit(limit)
        )
        return [MaterialText(*row) for row in (await self.session.execute(statement)).all()]

    async def count_stale(self, organization_id: uuid.UUID, model: str) -> int:
        document_hash = _document_hash()
        statement = (
            select(func.count())
            .select_from(Material)
            .outerjoin(MaterialTextEmbedding, MaterialTextEmbedding.material_id == Material.id)
            .where(
                Material.organization_id == organization_id,
                Material.deleted_at.is_(None),
                or_(
                    MaterialTextEmbedding.material_id.is_(None),
                    MaterialTextEmbedding.model != model,
                    MaterialTextEmbedding.document_hash != document_hash,
                ),
            )
        )
        return int(await self.session.scalar(statement) or 0)

    async def category_names(self, organization_id: uuid.UUID) -> dict[uuid.UUID, list[str]]:
        """Each category's names from the root down to itself."""
        rows = (
            await self.session.execute(
                select(Category.id, Category.name, Category.path).where(
                    Category.organization_id == organization_id
                )
            )
        ).all()
        names = {row.id: row.name for row in rows}
        return {
            row.id: [names[ancestor] for ancestor in row.path if ancestor in names] + [row.name]
            for row in rows
        }

    async def save(
        self,
        organization_id: uuid.UUID,
        model: str,
        embedded: Sequence[tuple[MaterialText, Sequence[float]]],
    ) -> None:
        if not embedded:
            return
        statement = insert(MaterialTextEmbedding).values(
            [
                {
                    "material_id": text.material_id,
                    "organization_id": organization_id,
                    "model": model,
                    "document_hash": text.document_hash,
                    "embedding": list(vector),
                }
                for text, vector in embedded
            ]
        )
        statement = statement.on_conflict_do_update(
            index_elements=[MaterialTextEmbedding.material_id],
            set_={
                "model": statement.excluded.model,
                "document_hash": statement.excluded.document_hash,
                "embedding": statement.excluded.embedding,
                "updated_at": func.now(),
            },
        )
        await self.session.execute(statement)

    async def embedded_count(self, organization_id: uuid.UUID, model: str) -> int:
        statement = select(func.count()).where(
            MaterialTextEmbedding.organization_id == organization_id,
            MaterialTextEmbedding.model == model,
        )
        return int(await self.session.scalar(statement) or 0)


def nearest_materials(
    vector: Sequence[float], how_many: int, category_ids: Sequence[uuid.UUID] | None
) -> Any:
    """The organization's live materials nearest in meaning to `vector` (within these
    categories, when given), as a derived table (id, similarity), from the HNSW index (see
    kai_semantic_matches in the migration)."""
    query = bindparam(
        "semantic_query", list(vector), type_=HALFVEC(EMBEDDING_DIMENSIONS), unique=True
    )
    categories = cast(list(category_ids), ARRAY(Uuid())) if category_ids is not None else null()
    return func.kai_semantic_matches(query, how_many, categories).table_valued("id", "similarity")
