"""Tables of search: each material's text embedding (semantic search) and each catalog image's
visual embedding (visual similarity)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from kai.kit.db import Base
from kai.search.embeddings import EMBEDDING_DIMENSIONS
from kai.vision.backbones import efficientnet

# The default image backbone's embedding width.
VISUAL_DIMENSIONS = efficientnet.DIMENSIONS


class MaterialTextEmbedding(Base):
    """What a material's text means, as a vector, and the hash of the text it was made from.

    `document_hash` is the MD5 of the text embedded (name, category path, description, tags,
    property words, maker): whatever changes that text (an edit, a category renamed) makes
    the embedding stale, and nothing else does (a new price, another search language).
    """

    __tablename__ = "material_text_embeddings"
    __table_args__ = (
        Index(
            "ix_material_text_embeddings_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_ops={"embedding": "halfvec_cosine_ops"},
        ),
    )

    material_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("materials.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    model: Mapped[str] = mapped_column(String(100))
    document_hash: Mapped[str] = mapped_column(String(32))
    embedding: Mapped[list[float]] = mapped_column(HALFVEC(EMBEDDING_DIMENSIONS))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class MaterialMeaningVersion(Base):
    """Where an organization's text embeddings stand: a new number from a sequence on every
    statement that writes or removes some, kept by triggers (see the meaning-versions
    migration), never written by the application. Answers by meaning are kept under it."""

    __tablename__ = "material_meaning_versions"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(BigInteger)


class ImageEmbedding(Base):
    """What a catalog image looks like to the default backbone, for visual similarity.

    `backbone` is the fingerprint of the backbone that made the vector: when the default
    backbone changes, every row of another fingerprint is stale and is embedded again.
    """

    __tablename__ = "image_embeddings"
    __table_args__ = (
        # Denser than pgvector's default graph (m 16, ef_construction 64): catalogs are full of
        # close variants (one product shot many ways), among which a sparse graph left some
        # searches in the wrong neighbourhood (benchmarks/README.md).
        Index(
            "ix_image_embeddings_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_ops={"embedding": "halfvec_cosine_ops"},
            postgresql_with={"m": 24, "ef_construction": 128},
        ),
        Index("ix_image_embeddings_material", "material_id"),
    )

    image_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("material_images.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    material_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("materials.id", ondelete="CASCADE"))
    backbone: Mapped[str] = mapped_column(String(200))
    embedding: Mapped[list[float]] = mapped_column(HALFVEC(VISUAL_DIMENSIONS))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class SearchWord(Base):
    """A word of an organization's catalog (folded, unstemmed) and how many live materials and
    categories hold it: what a misspelt search word is corrected towards. Kept by
    statement-level triggers on materials and categories (see the search-vocabulary
    migration), never written by the application."""

    __tablename__ = "search_words"
    __table_args__ = (
        # The organization in the index too (btree_gist): the nearest words of one catalog
        # come from a short index scan.
        Index(
            "ix_search_words_trgm",
            "organization_id",
            "word",
            postgresql_using="gist",
            postgresql_ops={"word": "gist_trgm_ops"},
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    word: Mapped[str] = mapped_column(Text, primary_key=True)
    uses: Mapped[int]


class ImageFeatures(Base):
    """The feature store: what a stored photo looks like to one backbone, prepared one way.

    `features_of` names the backbone's fingerprint and the photo's preparation (colour
    corrections, mirroring): an embedding is only reused where both are the same. Training,
    recognitions and the catalog's visual index write what they compute and read what is
    here, so a photo is embedded once per backbone and preparation. Vectors are float32
    bytes: exact, and the store is read by key, never searched.
    """

    __tablename__ = "image_features"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    features_of: Mapped[str] = mapped_column(String(200), primary_key=True)
    image_key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
