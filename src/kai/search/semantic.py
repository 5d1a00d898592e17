"""Semantic search: what each material's text means, kept current, and what a query means.

A material's embedding is made from its name, category path, description, tags, property
words and maker, by a job (`search.embed_materials`) that the catalog queues whenever it
writes materials. The job embeds whatever is missing or stale (its text changed, or the
model did) and hands the rest to a follow-up job, so it is idempotent and a burst of edits
costs one run.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog.events import materials_text_changed
from kai.search.embeddings import TextEmbedder, default_embedder
from kai.search.semantic_repository import SemanticRepository

log = structlog.get_logger(__name__)

# Texts embedded per model call: large enough to batch well, small enough to report progress.
CHUNK = 64
QUERY_CACHE_SIZE = 2048

Progress = Callable[[int, int | None], Awaitable[None]]


class ModelUnavailable(RuntimeError):
    """The sentence-embedding model cannot be loaded (its package is not installed)."""


async def refresh_embeddings(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    embedder: TextEmbedder,
    batch: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Embed up to `batch` of the organization's materials whose embedding is missing or
    stale; queue a follow-up job when more remain."""
    repository = SemanticRepository(session)
    stale = await repository.stale(organization_id, embedder.name, batch)
    if not stale:
        return {"embedded": 0, "follow_up": False}
    done = 0
    for start in range(0, len(stale), CHUNK):
        chunk = stale[start : start + CHUNK]
        texts = [text.text for text in chunk]
        # The model is CPU-bound: off the event loop, so the worker keeps heart-beating.
        vectors = await asyncio.to_thread(embedder.embed, texts)
        await repository.save(
            organization_id, embedder.name, list(zip(chunk, vectors.tolist(), strict=True))
        )
        done += len(chunk)
        if progress is not None:
            await progress(done, len(stale))
    follow_up = len(stale) == batch
    if follow_up:
        await materials_text_changed(session, organization_id=organization_id)
    return {"embedded": done, "follow_up": follow_up}


class QueryEmbeddings:
    """Embeddings of search queries, remembered: people page, refine and repeat searches, and
    a query costs the model ~10 ms."""

    def __init__(
        self,
        size: int = QUERY_CACHE_SIZE,
        loader: Callable[[], TextEmbedder] = default_embedder,
    ) -> None:
        self._embedder: TextEmbedder | None = None
        self._loader = loader
        self._size = size
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def embedder(self) -> TextEmbedder:
        if self._embedder is None:
            try:
                self._embedder = self._loader()
            except RuntimeError as exc:
                raise ModelUnavailable(str(exc)) from exc
        return self._embedder

    def warm(self) -> None:
        """Load the model now (blocking), so the first search does not wait for it."""
        try:
            self._embed_one("warm up")
        except ModelUnavailable as exc:
            log.warning("search.model_unavailable", error=str(exc))

    async def embed(self, query: str) -> list[float]:
        key = " ".join(query.lower().split())
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        vector = await asyncio.to_thread(self._embed_one, key)
        with self._lock:
            self._cache[key] = vector
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return vector

    def _embed_one(self, text: str) -> list[float]:
        vector: list[float] = self.embedder.embed([text])[0].tolist()
        return vector


_QUERIES = QueryEmbeddings()


def query_embeddings() -> QueryEmbeddings:
    """The process's query-embedding cache (the model is loaded on first use)."""
    return _QUERIES
