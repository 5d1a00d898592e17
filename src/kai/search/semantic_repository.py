"""All SQL of semantic search: materials whose text embedding is missing or stale, writing
embeddings, and the nearest materials to a query vector."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import Uuid, bindparam, cast, func, literal, null, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kai.catalog.models import Category, Material
from kai.search.embeddings import EMBEDDING_DIMENSIONS
from kai.search.models import MaterialTextEmbedding


@dataclass(frozen=True)
class MaterialText:
    """What a material says about itself, as it is embedded, and that text's hash."""

    material_id: uuid.UUID
    text: str
    text_hash: str


def _category_paths(organization_id: uuid.UUID) -> Any:
    """Each category's names from the root down to itself, joined by ' > '."""
    own = aliased(Category, name="own")
    ancestor = aliased(Category, name="ancestor")
    # The category itself is not in its own path: it sorts last.
    depth = func.coalesce(func.array_position(own.path, ancestor.id), 1_000_000)
    return (
        select(
            own.id.label("category_id"),
            func.string_agg(ancestor.name, aggregate_order_by(literal(" > "), depth)).label(
                "names"
            ),
        )
        .join(ancestor, or_(ancestor.id == own.id, ancestor.id == func.any(own.path)))
        .where(own.organization_id == organization_id)
        .group_by(own.id)
        .cte("category_paths")
    )


def _stale(organization_id: uuid.UUID, model: str) -> tuple[Any, Any, list[Any]]:
    """The embedded text of each live material, its hash, and the conditions that find those
    whose embedding is missing, by another model, or made from another text."""
    paths = _category_paths(organization_id)
    # Most telling first: the model reads 256 tokens at most.
    text = func.concat_ws(
        ". ",
        Material.name,
        func.nullif(paths.c.names, ""),
        func.nullif(Material.description, ""),
        func.nullif(func.array_to_string(Material.tags, ", "), ""),
        func.nullif(Material.properties_text, ""),
        func.nullif(Material.manufacturer, ""),
    )
    text_hash = func.md5(text)
    conditions = [
        Material.organization_id == organization_id,
        Material.deleted_at.is_(None),
        or_(
            MaterialTextEmbedding.material_id.is_(None),
            MaterialTextEmbedding.model != model,
            MaterialTextEmbedding.document_hash != text_hash,
        ),
    ]
    joined = (
        select(Material)
        .outerjoin(paths, paths.c.category_id == Material.category_id)
        .outerjoin(MaterialTextEmbedding, MaterialTextEmbedding.material_id == Material.id)
    )
    return joined, (text, text_hash), conditions


class SemanticRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def stale(self, organization_id: uuid.UUID, model: str, limit: int) -> list[MaterialText]:
        """Live materials with no embedding by `model`, or one made from another text."""
        joined, (text, text_hash), conditions = _stale(organization_id, model)
        statement = (
            joined.with_only_columns(Material.id, text, text_hash)
            .where(*conditions)
            .order_by(Material.id)
            .limit(limit)
        )
        return [MaterialText(*row) for row in (await self.session.execute(statement)).all()]

    async def count_stale(self, organization_id: uuid.UUID, model: str) -> int:
        joined, _, conditions = _stale(organization_id, model)
        statement = joined.with_only_columns(func.count()).where(*conditions)
        return int(await self.session.scalar(statement) or 0)

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
                    "document_hash": text.text_hash,
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
