"""Visual similarity at scale: recall@10 of the HNSW index against exact search, and queries a
second, at 100,000 catalog image vectors.

    .venv/bin/python -m benchmarks.similarity [--vectors 100000] [--queries 300]

A fresh embedded PostgreSQL; one organization with 25,000 materials of four images each, in
eight categories. The vectors are EfficientNet-Lite0 embeddings of the shared development
photos (when `../shared/datasets` is there; random unit vectors otherwise) each perturbed into
many catalog images: the catalog is a set of close variants of real textures, the hard case
for an approximate index (many near ties). Loaded with COPY, the HNSW index then built as the
migration defines it. Queries are new perturbations, answered by `kai_visual_matches` (one
entry per material, as recognitions ask) in one session, one after another: one PostgreSQL
backend, so one core. Exact answers are computed in NumPy from the same half-precision
vectors. Also measured: queries within one category (an eighth of the catalog), which the
iterative index scan must serve without losing recall. Results go to
`benchmarks/results/similarity.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DATASETS = REPO_ROOT.parent / "shared" / "datasets"
RESULTS = Path(__file__).resolve().parent / "results" / "similarity.json"
DIMENSIONS = 1280
IMAGES_PER_MATERIAL = 4
CATEGORIES = 8
K = 10
# As the migration builds the index (a denser graph than pgvector's default m = 16,
# ef_construction = 64: with that, catalogs of many close variants left some queries in the
# wrong neighbourhood).
INDEX_OPTIONS = "m = 24, ef_construction = 128"
# Per-component spread of a catalog image around its source photo's embedding.
NOISE = 0.012


def _seeds(model_dir: Path, rng: np.random.Generator) -> np.ndarray:
    """Unit embeddings of the development photos, or random non-negative unit vectors."""
    photos = sorted(path for path in DATASETS.rglob("*.jpg")) if DATASETS.is_dir() else []
    if not photos:
        rows = np.abs(rng.normal(0, 1, (800, DIMENSIONS)))
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)
    from kai.vision.backbones import get_backbone
    from kai.vision.preprocessing import prepare_image

    backbone = get_backbone("efficientnet-lite0", model_dir=model_dir)
    views = [prepare_image(path.read_bytes(), side=224).views for path in photos]
    return np.concatenate([backbone.embed(views[i : i + 32]) for i in range(0, len(views), 32)])


def _variants(seeds: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    picked = seeds[rng.integers(0, len(seeds), count)]
    rows = np.clip(picked + rng.normal(0, NOISE, picked.shape), 0, None)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    # Stored as halfvec: exact search compares the same rounded numbers.
    return rows.astype(np.float16).astype(np.float32)


def _exact(
    vectors: np.ndarray, materials: np.ndarray, query: np.ndarray, allowed: np.ndarray | None
) -> list[int]:
    """The K materials whose best image is nearest to `query` (cosine)."""
    scores = vectors @ query / np.linalg.norm(vectors, axis=1)
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    best: dict[int, float] = {}
    for index in np.argsort(-scores)[: K * IMAGES_PER_MATERIAL * 4]:
        material = int(materials[index])
        if material not in best:
            best[material] = float(scores[index])
        if len(best) == K:
            break
    return list(best)


async def run(options: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    from pgvector import HalfVector
    from pgvector.psycopg import register_vector_async
    from psycopg import AsyncConnection
    from sqlalchemy import text

    from kai.config import Settings
    from kai.identity import admin
    from kai.kit.db import create_engine, libpq_url
    from kai.runtime import Runtime, attach_database

    rng = np.random.default_rng(options.seed)
    settings = Settings(_env_file=None, data_dir=data_dir, log_level="warning")  # type: ignore[call-arg]
    urls, server = await asyncio.to_thread(attach_database, settings, migrate=True)
    runtime = Runtime.create(settings, urls.app, embedded=server)
    results: dict[str, Any] = {"vectors": options.vectors, "dimensions": DIMENSIONS}
    try:
        created = await admin.create_user(
            runtime, email="bench@quarry.example", organization_slug="bench", role="owner",
            name="Bench", password="benchmark porphyry 1911",  # noqa: S106 - a throwaway account
        )  # fmt: skip
        organization = created.organization_id
        started = time.perf_counter()
        seeds = _seeds(settings.model_dir, rng)
        results["seed_photos"] = len(seeds)
        vectors = _variants(seeds, options.vectors, rng)
        results["vectors_seconds"] = round(time.perf_counter() - started, 1)
        materials_count = options.vectors // IMAGES_PER_MATERIAL
        material_of = np.arange(options.vectors) // IMAGES_PER_MATERIAL
        category_of_material = np.arange(materials_count) % CATEGORIES

        owner = create_engine(urls.owner, settings.database, as_app=False)
        material_ids = [uuid.uuid4() for _ in range(materials_count)]
        category_ids = [uuid.uuid4() for _ in range(CATEGORIES)]
        image_ids = [uuid.uuid4() for _ in range(options.vectors)]
        started = time.perf_counter()
        async with owner.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO categories (id, organization_id, name)"
                    " SELECT unnest(CAST(:ids AS uuid[])), :org,"
                    " 'Family ' || generate_series(1, :n)"
                ),
                {"ids": category_ids, "org": organization, "n": CATEGORIES},
            )
            await connection.execute(
                text(
                    "INSERT INTO materials (id, organization_id, category_id, name, code)"
                    " SELECT m.id, :org, (CAST(:categories AS uuid[]))[1 + (m.n - 1) % :families],"
                    " 'Material ' || m.n, 'M-' || m.n"
                    " FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS m(id, n)"
                ),
                {
                    "ids": material_ids, "org": organization, "categories": category_ids,
                    "families": CATEGORIES,
                },
            )  # fmt: skip
            await connection.execute(
                text(
                    "INSERT INTO material_images (id, organization_id, material_id, sha256,"
                    " format, content_type, width, height, size_bytes, status, original_key)"
                    " SELECT i.id, :org, (CAST(:materials AS uuid[]))[1 + (i.n - 1) / :per],"
                    " md5(i.id::text) || md5(i.n::text), 'jpeg', 'image/jpeg', 1, 1, 1, 'ready',"
                    " 'bench/' || i.id"
                    " FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS i(id, n)"
                ),
                {"ids": image_ids, "org": organization, "materials": material_ids,
                 "per": IMAGES_PER_MATERIAL},
            )  # fmt: skip
            await connection.execute(text("DROP INDEX ix_image_embeddings_hnsw"))
        raw = await AsyncConnection.connect(libpq_url(urls.owner))
        await register_vector_async(raw)
        async with (
            raw.cursor() as cursor,
            cursor.copy(
                "COPY image_embeddings"
                " (image_id, organization_id, material_id, backbone, embedding)"
                " FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["uuid", "uuid", "uuid", "varchar", "halfvec"])
            for index, vector in enumerate(vectors):
                await copy.write_row(
                    (image_ids[index], organization, material_ids[material_of[index]],
                     "bench", HalfVector(vector))
                )  # fmt: skip
        await raw.commit()
        results["load_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        await raw.execute("SET maintenance_work_mem = '2GB'")
        await raw.execute(
            "CREATE INDEX ix_image_embeddings_hnsw ON image_embeddings"
            f" USING hnsw (embedding halfvec_cosine_ops) WITH ({INDEX_OPTIONS})"
        )
        await raw.execute("ANALYZE")
        await raw.commit()
        results["index_build_seconds"] = round(time.perf_counter() - started, 1)
        await raw.close()
        await owner.dispose()

        queries = _variants(seeds, options.queries, rng)
        family = category_ids[0]
        in_family = category_of_material[material_of] == 0
        app = await AsyncConnection.connect(libpq_url(urls.app), autocommit=False)
        await register_vector_async(app)
        await app.execute(
            "SELECT set_config('kai.organization_id', %s, false)", (str(organization),)
        )
        position = {material_id: index for index, material_id in enumerate(material_ids)}

        async def nearest(query: np.ndarray, categories: list[uuid.UUID] | None) -> list[int]:
            cursor = await app.execute(
                "SELECT material_id FROM kai_visual_matches(%s, %s, %s)",
                (HalfVector(query), K, categories),
            )
            return [position[row[0]] for row in await cursor.fetchall()]

        if options.explain:
            # The plan the index function runs, as PostgreSQL's auto_explain logs it.
            probe = await AsyncConnection.connect(libpq_url(urls.owner), autocommit=True)
            await register_vector_async(probe)
            await probe.execute(
                "SELECT set_config('kai.organization_id', %s, false)", (str(organization),)
            )
            body = (
                "SELECT best.material_id, best.image_id, 1 - best.distance FROM ("
                " SELECT DISTINCT ON (nearest.material_id) nearest.material_id,"
                " nearest.image_id, nearest.distance FROM ("
                " SELECT e.material_id, e.image_id, e.embedding <=> $1 AS distance"
                " FROM image_embeddings e JOIN materials m ON m.id = e.material_id"
                " WHERE e.organization_id = kai_current_org() AND m.deleted_at IS NULL"
                " AND ($3 IS NULL OR m.category_id = ANY ($3))"
                " AND ($4 IS NULL OR m.properties @> $4) AND ($5 IS NULL OR m.id <> $5)"
                " ORDER BY e.embedding <=> $1 LIMIT $2 * 4) nearest"
                " ORDER BY nearest.material_id, nearest.distance) best"
                " ORDER BY best.distance LIMIT $2"
            )
            await probe.execute(
                f"PREPARE probe(halfvec({DIMENSIONS}), integer, uuid[], jsonb, uuid) AS {body}"
            )
            await probe.execute("SET hnsw.iterative_scan = 'relaxed_order'")
            for mode in ("force_generic_plan", "force_custom_plan"):
                await probe.execute(f"SET plan_cache_mode = {mode}")
                literal = "[" + ",".join(f"{value:.6f}" for value in queries[0]) + "]"
                cursor = await probe.execute(
                    f"EXPLAIN (ANALYZE, COSTS OFF) EXECUTE probe('{literal}', {K}, NULL, NULL,"
                    " NULL)"
                )
                print(mode)
                for (line,) in await cursor.fetchall():
                    print("   ", line[:160])
            await probe.close()
        for name, categories, allowed in (
            ("whole catalog", None, None),
            ("one category (an eighth)", [family], in_family),
        ):
            for query in queries[:10]:  # warm-up
                await nearest(query, categories)
            recalls = []
            started = time.perf_counter()
            found = [await nearest(query, categories) for query in queries]
            elapsed = time.perf_counter() - started
            for query, answer in zip(queries, found, strict=True):
                exact = _exact(vectors, material_of, query, allowed)
                recalls.append(len(set(answer) & set(exact)) / K)
            results[name] = {
                "queries": len(queries),
                "recall_at_10": round(float(np.mean(recalls)), 4),
                "recall_at_10_min": round(float(np.min(recalls)), 2),
                "queries_per_second": round(len(queries) / elapsed, 1),
                "mean_ms": round(elapsed * 1000 / len(queries), 2),
            }
            print(name, json.dumps(results[name]), flush=True)
        await app.close()
    finally:
        await runtime.close()
        if server is not None:
            server.release()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.similarity", description=__doc__)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--explain", action="store_true", help="Print the plan of one query.")
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="kai-bench-similarity-"))
    scratch.chmod(0o755)
    try:
        results = asyncio.run(run(options, scratch / "kai-data"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(results, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
