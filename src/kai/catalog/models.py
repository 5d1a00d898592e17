"""Tables of the catalog: categories with their property schemas, materials, their versions and
images, and each organization's catalog settings. All are tenant tables under row-level
security.

`materials.search_vector` and `materials.name_folded` are kept by a trigger (see the catalog
migration): whatever writes a material, its full-text document stays current.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    Uuid,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REGCONFIG, TSVECTOR
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from kai.kit.db import Base, TimestampedMixin, new_id


class Xid8(UserDefinedType[str]):
    """PostgreSQL's 64-bit transaction id (`xid8`), read as its text."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "XID8"


# So that reading the schema back (the migrations' test) knows the type too.
ischema_names["xid8"] = Xid8


TENANT_TABLES = (
    "catalog_settings",
    "categories",
    "category_tree_versions",
    "materials",
    "material_names",
    "material_versions",
    "material_images",
)


class MaterialStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    DISCONTINUED = "discontinued"


class ImageStatus(StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class CatalogSettings(Base):
    """How an organization's catalog is searched."""

    __tablename__ = "catalog_settings"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    # The text-search configuration that stems this catalog's words ('english', 'german'...).
    search_language: Mapped[str] = mapped_column(REGCONFIG, server_default=text("'english'"))


class Category(TimestampedMixin, Base):
    __tablename__ = "categories"
    __table_args__ = (
        # Siblings have distinct names; top-level categories are siblings of one another.
        Index(
            "uq_categories_sibling_name",
            "organization_id",
            text("coalesce(parent_id, '00000000-0000-0000-0000-000000000000'::uuid)"),
            text("lower(name)"),
            unique=True,
        ),
        Index("ix_categories_path", "path", postgresql_using="gin"),
        Index("ix_categories_parent", "organization_id", "parent_id", "position"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("categories.id", ondelete="RESTRICT")
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    # Order among siblings.
    position: Mapped[int] = mapped_column(server_default=text("0"))
    # Ancestors' ids, root first (empty at the top): a subtree is `id = X OR path @> {X}`.
    path: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid()), server_default=text("'{}'"))
    # This category's own property definitions; descendants inherit them.
    properties: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )


class CategoryTreeVersion(Base):
    """Where an organization's category tree stands: a new number from a sequence on every
    change to its categories, kept by a trigger (see the search-speed migration), never
    written by the application. Processes cache the tree per version."""

    __tablename__ = "category_tree_versions"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(BigInteger)


class Material(TimestampedMixin, Base):
    __tablename__ = "materials"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'active', 'discontinued')", name="status_known"),
        CheckConstraint("(price IS NULL) = (currency IS NULL)", name="price_has_currency"),
        CheckConstraint("price IS NULL OR price >= 0", name="price_not_negative"),
        # A code names one live material; a deleted one keeps its code until it is restored.
        Index(
            "uq_materials_org_code",
            "organization_id",
            text("lower(code)"),
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_materials_org_created", "organization_id", "created_at", "id"),
        # Browsing by name, the catalog's default order.
        Index(
            "ix_materials_org_lower_name",
            "organization_id",
            text("lower(name)"),
            "id",
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_materials_category", "organization_id", "category_id"),
        # The rows written since a transaction: what a facet index reads to catch up.
        Index("ix_materials_changes", "organization_id", "changed_xid"),
        # One live material of a suggested name (see MaterialName).
        Index(
            "ix_materials_org_name",
            "organization_id",
            "name_folded",
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_materials_search", "search_vector", postgresql_using="gin"),
        # GiST, not GIN: suggestions ask for the nearest names (`<->>`), which only GiST orders.
        Index(
            "ix_materials_name_trgm",
            "name_folded",
            postgresql_using="gist",
            postgresql_ops={"name_folded": "gist_trgm_ops"},
        ),
        Index("ix_materials_tags", "tags", postgresql_using="gin"),
        Index(
            "ix_materials_properties",
            "properties",
            postgresql_using="gin",
            postgresql_ops={"properties": "jsonb_path_ops"},
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    category_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("categories.id", ondelete="RESTRICT")
    )
    name: Mapped[str] = mapped_column(String(300))
    code: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    # Canonical values (metric units) validated against the category's property schema.
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    manufacturer: Mapped[str] = mapped_column(String(200), server_default=text("''"))
    supplier: Mapped[str] = mapped_column(String(200), server_default=text("''"))
    price: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    currency: Mapped[str | None] = mapped_column(String(3))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(50)), server_default=text("'{}'"))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'draft'"))
    # Increments with every change; the ETag clients send back in If-Match.
    version: Mapped[int] = mapped_column(server_default=text("1"))
    deleted_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(String(100))
    updated_by: Mapped[str | None] = mapped_column(String(100))
    # Words of the properties for the full-text index (the trigger cannot read the schema).
    properties_text: Mapped[str] = mapped_column(Text, server_default=text("''"))
    # Kept by the trigger kai_material_search_document; the database's alone, never read into
    # a Material (each page of search results would carry every tsvector): reading it raises.
    search_vector: Mapped[str | None] = mapped_column(
        TSVECTOR, deferred=True, deferred_raiseload=True
    )
    # The name without accents, lower-cased: what suggestions match by trigram similarity.
    name_folded: Mapped[str | None] = mapped_column(
        Text, Computed("kai_fold((name)::text)", persisted=True)
    )
    # The transaction that last wrote it (set on every update by the trigger
    # kai_material_changed): what the facet index reads to catch up (kai.search.facet_index).
    changed_xid: Mapped[str] = mapped_column(
        Xid8(), server_default=text("pg_current_xact_id()"), deferred=True
    )


class MaterialName(Base):
    """A distinct name among an organization's live materials, and how many bear it: what
    suggestions rank (thousands of materials share a name). Kept by statement-level triggers
    on materials (see the search-at-scale migration), never written by the application."""

    __tablename__ = "material_names"
    __table_args__ = (
        # The organization in the index too (btree_gist), and a trigram signature long
        # enough to prune: the nearest names come from a short index scan.
        Index(
            "ix_material_names_trgm",
            "organization_id",
            "name_folded",
            postgresql_using="gist",
            postgresql_ops={"name_folded": "gist_trgm_ops(siglen=256)"},
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    name_folded: Mapped[str] = mapped_column(Text, primary_key=True)
    materials: Mapped[int]


class MaterialVersion(Base):
    """One change of a material: who, when, and each field's old and new value."""

    __tablename__ = "material_versions"
    __table_args__ = (
        Index("uq_material_versions_material_version", "material_id", "version", unique=True),
        CheckConstraint(
            "action IN ('created', 'updated', 'deleted', 'restored', 'imported')",
            name="action_known",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    material_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("materials.id", ondelete="CASCADE"))
    version: Mapped[int]
    action: Mapped[str] = mapped_column(String(20))
    # {field: {"old": ..., "new": ...}}
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The earlier version whose values this one brought back, when it is a restore.
    restored_from: Mapped[int | None]
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class MaterialImage(Base):
    __tablename__ = "material_images"
    __table_args__ = (
        # The same bytes are stored once per organization.
        Index("uq_material_images_org_sha256", "organization_id", "sha256", unique=True),
        Index("ix_material_images_material", "material_id", "position"),
        Index(
            "uq_material_images_primary",
            "material_id",
            unique=True,
            postgresql_where=text("is_primary"),
        ),
        CheckConstraint("status IN ('processing', 'ready', 'failed')", name="status_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    material_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("materials.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    format: Mapped[str] = mapped_column(String(10))
    content_type: Mapped[str] = mapped_column(String(50))
    width: Mapped[int]
    height: Mapped[int]
    size_bytes: Mapped[int]
    position: Mapped[int] = mapped_column(server_default=text("0"))
    is_primary: Mapped[bool] = mapped_column(server_default=text("false"))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'processing'"))
    error: Mapped[str | None] = mapped_column(Text)
    original_key: Mapped[str] = mapped_column(String(1024))
    processed_key: Mapped[str | None] = mapped_column(String(1024))
    thumbnail_key: Mapped[str | None] = mapped_column(String(1024))
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


# The order in which a material's ready images are candidates to show it by in a list.
SHOWN_FIRST = (
    MaterialImage.is_primary.desc(),
    MaterialImage.position,
    MaterialImage.created_at,
    MaterialImage.id,
)


def shown_image() -> Any:
    """The image a list shows the row of `Material` a statement selects by (its primary image
    once ready, else its first ready one: `ImageRepository.shown_of`'s choice), as a column of
    that statement: a page of materials and their pictures in one round trip."""
    return (
        select(MaterialImage.id)
        .where(
            MaterialImage.organization_id == Material.organization_id,
            MaterialImage.material_id == Material.id,
            MaterialImage.status == ImageStatus.READY.value,
        )
        .order_by(*SHOWN_FIRST)
        .limit(1)
        .scalar_subquery()
        .label("shown_image")
    )


class MaterialRow(NamedTuple):
    """A material as a list shows it, read as a plain row (`ROW_COLUMNS`): a page of search
    results makes no ORM object of each material."""

    id: uuid.UUID
    category_id: uuid.UUID | None
    name: str
    code: str
    description: str
    properties: dict[str, Any]
    manufacturer: str
    supplier: str
    price: Decimal | None
    currency: str | None
    tags: list[str]
    status: str
    version: int
    deleted_at: datetime | None
    created_by: str | None
    updated_by: str | None
    created_at: datetime
    updated_at: datetime


# The columns of a `MaterialRow`, in its order.
ROW_COLUMNS = tuple(getattr(Material, name) for name in MaterialRow._fields)
