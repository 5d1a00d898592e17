"""Semantic and hybrid search at scale, over a catalog kept by `benchmarks.catalog`.

    .venv/bin/python -m benchmarks.catalog --data-dir DIR          # once: the catalog
    .venv/bin/python -m benchmarks.semantic --data-dir DIR [--queries 300] [--seed 7]

First embeds every material whose text embedding is missing or stale, with the function the
`search.embed_materials` job runs (throughput recorded; embeddings are kept in DIR, so a
later run measures at once). Then, in-process (service layer and its database round trips,
no HTTP): hybrid searches with facets, as the search benchmark sends them, with query texts
never seen before (the query's embedding computed each time) and then the same texts again
(remembered embeddings); semantic-only searches; and the recall of the HNSW index against
an exact scan for the query vectors. Results go to `benchmarks/results/semantic.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from benchmarks.catalog import _category_ids, _ids, _summary

WANTS = [
    "warm grey stone",
    "white marble look",
    "dark wood",
    "rough outdoor paving",
    "soft textured fabric",
    "brushed metal",
    "glossy wall tiles",
    "hard-wearing flooring",
    "light oak planks",
    "polished black stone",
    "frost-proof tiles",
    "rustic terracotta",
    "sound-absorbing floor",
    "mirror-like glass",
    "patinated copper",
    "beige natural stone",
]
PLACES = ["for a bathroom floor", "for a kitchen splashback", "for a hotel lobby",
          "around a swimming pool", "on a terrace", "for a shower wall", "in a busy office",
          "for a living room", "on a facade", "for a hallway", "in a restaurant",
          "for a spa", "for stairs", "in a kids' room", "for a shop floor", "in a wine cellar",
          "for garden paths", "in a yoga studio", "for a reception desk"]  # fmt: skip


def query_texts(count: int, rng: random.Random) -> list[str]:
    """`count` distinct, natural queries (what someone types when the words are unknown)."""
    pairs = [(want, place) for want in WANTS for place in PLACES]
    rng.shuffle(pairs)
    if count > len(pairs):
        raise SystemExit(f"at most {len(pairs)} distinct queries")
    return [f"{want} {place}" for want, place in pairs[:count]]


async def run(options: argparse.Namespace) -> dict[str, Any]:
    from kai.config import Settings
    from kai.identity.actor import Actor
    from kai.kit.db import act_for, create_engine
    from kai.runtime import Runtime, attach_database
    from kai.search import semantic
    from kai.search.semantic_repository import SemanticRepository

    loaded = options.data_dir / "loaded"
    if not loaded.exists():
        raise SystemExit(f"no catalog in {options.data_dir}: run benchmarks.catalog first")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=options.data_dir / "kai-data", log_level="warning"
    )
    urls, server = await asyncio.to_thread(attach_database, settings, migrate=True)
    runtime = Runtime.create(settings, urls.app, embedded=server)
    actor = Actor(**json.loads(loaded.read_text(), object_hook=_ids))
    organization_id = actor.organization_id
    results: dict[str, Any] = {}
    embedder = semantic.query_embeddings().embedder
    try:
        async with runtime.session_factory.begin() as session:
            await act_for(session, organization_id=organization_id)
            stale = await SemanticRepository(session).count_stale(organization_id, embedder.name)
        started, embedded = time.perf_counter(), 0
        while True:
            async with runtime.session_factory.begin() as session:
                await act_for(session, organization_id=organization_id)
                done = await semantic.refresh_embeddings(
                    session, organization_id=organization_id, embedder=embedder, batch=1000
                )
            embedded += done["embedded"]
            if embedded:
                rate = embedded / (time.perf_counter() - started)
                print(f"  embedded {embedded}/{stale} ({rate:.1f}/s)", flush=True)
            if not done["follow_up"]:
                break
        if embedded:
            seconds = time.perf_counter() - started
            results["embedding"] = {
                "materials": embedded,
                "seconds": round(seconds, 1),
                "per_second": round(embedded / seconds, 1),
            }
            owner = create_engine(urls.owner, settings.database, as_app=False)
            async with owner.begin() as connection:
                await connection.execute(text("ANALYZE material_text_embeddings"))
            await owner.dispose()
        async with runtime.session_factory.begin() as session:
            await act_for(session, organization_id=organization_id)
            results["embedded_materials"] = await SemanticRepository(session).embedded_count(
                organization_id, embedder.name
            )
        await measure(options, runtime, actor, results)
    finally:
        await runtime.close()
        if server is not None:
            server.release()
    return results


async def measure(
    options: argparse.Namespace, runtime: Any, actor: Any, results: dict[str, Any]
) -> None:
    from kai.kit.db import act_for
    from kai.search import semantic
    from kai.search import service as search
    from kai.search.semantic_repository import nearest_materials

    rng = random.Random(options.seed)  # noqa: S311 - reproducible queries, not secrets
    texts = query_texts(options.queries, rng)
    categories = await _category_ids(runtime, actor)

    def request(index: int, query: str, mode: str) -> search.SearchRequest:
        filters: list[str] = []
        category_id = None
        if index % 3 == 1:
            filters = [rng.choice(["thickness>=10", "frost_resistant:true", "colour:white"])]
        if index % 4 == 2:
            category_id = rng.choice(categories)
        return search.SearchRequest(
            text=query, mode=mode, sort="relevance", category_id=category_id,  # type: ignore[arg-type]
            filters=filters, facets=True, limit=20, units="metric",
        )  # fmt: skip

    async def timed(request: search.SearchRequest) -> float:
        async with runtime.session_factory.begin() as session:
            await act_for(session, organization_id=actor.organization_id)
            begun = time.perf_counter()
            await search.search(session, actor=actor, request=request)
            return (time.perf_counter() - begun) * 1000

    # Warm-up on queries not measured: the model's first call, plans, the pool.
    for index, query in enumerate(["stone tiles", "oak floor", "glass", "metal panels"]):
        await timed(request(index, query, "hybrid"))
    requests = [request(index, query, "hybrid") for index, query in enumerate(texts)]
    results["hybrid_new_queries_ms"] = _summary([await timed(r) for r in requests])
    results["hybrid_repeated_queries_ms"] = _summary([await timed(r) for r in requests])
    semantic_only = [request(index, query, "semantic") for index, query in enumerate(texts)]
    results["semantic_repeated_queries_ms"] = _summary([await timed(r) for r in semantic_only])

    # Recall@10 of the index against an exact scan, for the same query vectors.
    found = exact = 0
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=actor.organization_id)
        for query in texts[:50]:
            vector = await semantic.query_embeddings().embed(query)
            nearest = nearest_materials(vector, 10, None)
            by_index = {row[0] for row in await session.execute(nearest.select())}
            scan = await session.execute(
                text(
                    "SELECT material_id FROM material_text_embeddings"
                    " ORDER BY embedding <=> CAST(:v AS halfvec) LIMIT 10"
                ),
                {"v": str(vector)},
            )
            truth = {row[0] for row in scan}
            found += len(by_index & truth)
            exact += len(truth)
    results["semantic_recall_at_10"] = round(found / exact, 4) if exact else None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.semantic", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "semantic.json"
    )
    options = parser.parse_args()
    results = asyncio.run(run(options))
    print(json.dumps(results, indent=2))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
