"""All SQL of visual similarity: catalog images whose visual embedding is missing or stale,
writing embeddings, and the materials whose images look most like a photo."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import Double, Uuid, bindparam, cast, column, func, null, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kai.catalog.models import ImageStatus, Material, MaterialImage
from kai.kit.pagination import PageParams, after_clause, decode_keyset, encode_cursor
from kai.search.models import VISUAL_DIMENSIONS, ImageEmbedding, ImageFeatures


@dataclass(frozen=True)
class CatalogImage:
    """A ready catalog image to embed: the processed derivative when there is one."""

    image_id: uuid.UUID
    material_id: uuid.UUID
    key: str


@dataclass(frozen=True)
class VisualMatch:
    material_id: uuid.UUID
    image_id: uuid.UUID
    similarity: float
    name: str
    code: str


@dataclass(frozen=True)
class NearPair:
    image_id: uuid.UUID
    material_id: uuid.UUID
    other_image_id: uuid.UUID
    other_material_id: uuid.UUID
    similarity: float
    name: str
    code: str
    other_name: str
    other_code: str


class VisualRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def organizations_with_stale_images(self, backbone: str) -> list[uuid.UUID]:
        """Every organization with a ready image that has no embedding by `backbone`."""
        found = await self.session.scalars(
            select(func.kai_organizations_with_stale_images(backbone))
        )
        return sorted(found.all())

    async def stale(
        self, organization_id: uuid.UUID, backbone: str, limit: int
    ) -> list[CatalogImage]:
        """Ready images of live materials with no embedding by `backbone`."""
        statement = (
            select(
                MaterialImage.id,
                MaterialImage.material_id,
                func.coalesce(MaterialImage.processed_key, MaterialImage.original_key),
            )
            .join(Material, Material.id == MaterialImage.material_id)
            .outerjoin(ImageEmbedding, ImageEmbedding.image_id == MaterialImage.id)
            .where(
                MaterialImage.organization_id == organization_id,
                MaterialImage.status == ImageStatus.READY.value,
                Material.deleted_at.is_(None),
                or_(ImageEmbedding.image_id.is_(None), ImageEmbedding.backbone != backbone),
            )
            .order_by(MaterialImage.id)
            .limit(limit)
        )
        return [CatalogImage(*row) for row in (await self.session.execute(statement)).all()]

    async def save(
        self,
        organization_id: uuid.UUID,
        backbone: str,
        embedded: Sequence[tuple[CatalogImage, Sequence[float]]],
    ) -> None:
        if not embedded:
            return
        statement = insert(ImageEmbedding).values(
            [
                {
                    "image_id": image.image_id,
                    "organization_id": organization_id,
                    "material_id": image.material_id,
                    "backbone": backbone,
                    "embedding": list(vector),
                }
                for image, vector in embedded
            ]
        )
        statement = statement.on_conflict_do_update(
            index_elements=[ImageEmbedding.image_id],
            set_={
                "backbone": statement.excluded.backbone,
                "embedding": statement.excluded.embedding,
                "updated_at": func.now(),
            },
        )
        await self.session.execute(statement)

    async def nearest(
        self,
        vector: Sequence[float],
        how_many: int,
        *,
        category_ids: Sequence[uuid.UUID] | None = None,
        properties: dict[str, Any] | None = None,
        excluded: uuid.UUID | None = None,
    ) -> list[VisualMatch]:
        """The live materials whose best image is nearest to `vector`, one entry a material,
        from the HNSW index past row-level security (see kai_visual_matches)."""
        query = bindparam("visual_query", list(vector), type_=HALFVEC(VISUAL_DIMENSIONS))
        categories = cast(list(category_ids), ARRAY(Uuid())) if category_ids is not None else null()
        wanted = cast(properties, JSONB) if properties else null()
        matches = func.kai_visual_matches(
            query, how_many, categories, wanted, excluded
        ).table_valued("material_id", "image_id", "similarity", name="matches")
        statement = (
            select(
                matches.c.material_id,
                matches.c.image_id,
                matches.c.similarity,
                Material.name,
                Material.code,
            )
            .select_from(matches)
            .join(Material, Material.id == matches.c.material_id)
            .order_by(matches.c.similarity.desc())
        )
        return [
            VisualMatch(row[0], row[1], float(row[2]), row[3], row[4])
            for row in (await self.session.execute(statement)).all()
        ]

    async def nearest_each(
        self,
        vectors: Sequence[Sequence[float]],
        how_many: int,
        *,
        category_ids: Sequence[uuid.UUID] | None = None,
        properties: dict[str, Any] | None = None,
    ) -> list[list[VisualMatch]]:
        """`nearest` for many vectors in one round trip (a batch's photos): for each, in order,
        its materials best first."""
        if not vectors:
            return []
        statement = text(
            """
            SELECT query.position, matches.material_id, matches.image_id, matches.similarity,
                   materials.name, materials.code
            FROM unnest(CAST(:vectors AS text[])) WITH ORDINALITY AS query(vector, position)
            CROSS JOIN LATERAL kai_visual_matches(
                CAST(query.vector AS halfvec), :how_many,
                CAST(:categories AS uuid[]), CAST(:properties AS jsonb), NULL
            ) AS matches
            JOIN materials ON materials.id = matches.material_id
            ORDER BY query.position, matches.similarity DESC
            """
        )
        rows = await self.session.execute(
            statement,
            {
                "vectors": ["[" + ",".join(map(str, vector)) + "]" for vector in vectors],
                "how_many": how_many,
                "categories": list(category_ids) if category_ids is not None else None,
                "properties": json.dumps(properties) if properties else None,
            },
        )
        found: list[list[VisualMatch]] = [[] for _ in vectors]
        for position, material_id, image_id, similarity, name, code in rows.all():
            found[position - 1].append(
                VisualMatch(material_id, image_id, float(similarity), name, code)
            )
        return found

    async def embedding_of_material(
        self, organization_id: uuid.UUID, material_id: uuid.UUID
    ) -> list[float] | None:
        """The material's primary image's embedding (else its first embedded image's)."""
        statement = (
            select(ImageEmbedding.embedding)
            .join(MaterialImage, MaterialImage.id == ImageEmbedding.image_id)
            .where(
                ImageEmbedding.organization_id == organization_id,
                ImageEmbedding.material_id == material_id,
            )
            .order_by(MaterialImage.is_primary.desc(), MaterialImage.position)
            .limit(1)
        )
        found = await self.session.scalar(statement)
        return None if found is None else [float(value) for value in found]

    async def near_duplicates(
        self, threshold: float, params: PageParams
    ) -> tuple[list[NearPair], str | None]:
        """A page of the pairs of the organization's images of different materials at least
        `threshold` alike, most alike first, with each material's name and code, from the HNSW
        index past row-level security (see kai_visual_near_duplicates, asked for every pair:
        a NULL limit is none)."""
        pairs = func.kai_visual_near_duplicates(threshold, null()).table_valued(
            column("image_id", Uuid),
            column("material_id", Uuid),
            column("other_image_id", Uuid),
            column("other_material_id", Uuid),
            column("similarity", Double),
        )
        # A pair is listed once, in either direction: its key does not depend on which.
        order = (
            pairs.c.similarity,
            func.least(pairs.c.image_id, pairs.c.other_image_id, type_=Uuid),
            func.greatest(pairs.c.image_id, pairs.c.other_image_id, type_=Uuid),
        )
        one, other = aliased(Material), aliased(Material)
        statement = (
            select(
                pairs.c.image_id,
                pairs.c.material_id,
                pairs.c.other_image_id,
                pairs.c.other_material_id,
                pairs.c.similarity,
                one.name,
                one.code,
                other.name,
                other.code,
            )
            .select_from(pairs)
            .join(one, one.id == pairs.c.material_id)
            .join(other, other.id == pairs.c.other_material_id)
        )
        if params.cursor:
            after = decode_keyset(params.cursor, order)
            statement = statement.where(after_clause(order, after, descending=True))
        statement = statement.order_by(*(key.desc() for key in order)).limit(params.limit + 1)
        rows = [
            NearPair(row[0], row[1], row[2], row[3], float(row[4]), row[5], row[6], row[7], row[8])
            for row in (await self.session.execute(statement)).all()
        ]
        if len(rows) <= params.limit:
            return rows, None
        rows = rows[: params.limit]
        last = rows[-1]
        pair = sorted((last.image_id, last.other_image_id))
        return rows, encode_cursor([last.similarity, *pair])


class FeatureRepository:
    """The feature store's rows (`kai.search.features`)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def read(
        self, organization_id: uuid.UUID, features: str, keys: Sequence[str]
    ) -> list[tuple[str, bytes]]:
        rows = await self.session.execute(
            select(ImageFeatures.image_key, ImageFeatures.vector).where(
                ImageFeatures.organization_id == organization_id,
                ImageFeatures.features_of == features,
                ImageFeatures.image_key.in_(list(keys)),
            )
        )
        return [(key, vector) for key, vector in rows]

    async def save(self, organization_id: uuid.UUID, vectors: dict[tuple[str, str], bytes]) -> None:
        """Rows by (features, image key)."""
        await self.session.execute(
            insert(ImageFeatures)
            .values(
                [
                    {
                        "organization_id": organization_id,
                        "features_of": features,
                        "image_key": key,
                        "vector": vector,
                    }
                    for (features, key), vector in vectors.items()
                ]
            )
            .on_conflict_do_nothing()
        )
