"""Catalog benchmarks at scale: a generated catalog of 100,000 materials in a taxonomy of a
few hundred categories, imported from CSV, then searched with facets and autocompleted.

    .venv/bin/python -m benchmarks.catalog [--materials 100000] [--queries 300] [--seed 7]

Everything runs in this process against a fresh embedded PostgreSQL (the same code an import
job and the search endpoint run, without the HTTP layer), and is removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import text

FAMILIES: dict[str, dict[str, Any]] = {
    "Stone": {
        "kinds": ["Marble", "Granite", "Limestone", "Travertine", "Slate", "Quartzite", "Onyx",
                  "Sandstone"],
        "finishes": ["polished", "honed", "brushed", "tumbled", "flamed", "leathered"],
        "names": ["Bianco Carrara", "Calacatta Oro", "Nero Marquina", "Crema Marfil",
                  "Emperador Dark", "Kashmir White", "Absolute Black", "Jura Beige",
                  "Silver Travertine", "Welsh Blue", "Verde Guatemala", "Rosa Portogallo"],
    },
    "Ceramics": {
        "kinds": ["Porcelain", "Glazed ceramic", "Terracotta", "Zellige", "Encaustic",
                  "Quarry tile"],
        "finishes": ["matt", "glossy", "satin", "structured", "lappato"],
        "names": ["Urban Concrete", "Nordic Oak Look", "Cotto Antico", "Atlas Marble Look",
                  "Metro White", "Hexagon Sage", "Terrazzo Fino", "Industrial Grey"],
    },
    "Wood": {
        "kinds": ["Oak", "Walnut", "Ash", "Maple", "Teak", "Bamboo", "Larch"],
        "finishes": ["oiled", "lacquered", "brushed", "smoked", "raw"],
        "names": ["Rustic", "Select", "Natural", "Country", "Prime", "Character", "Nordic"],
    },
    "Metal": {
        "kinds": ["Stainless steel", "Brass", "Copper", "Aluminium", "Corten steel", "Zinc"],
        "finishes": ["brushed", "polished", "patinated", "perforated", "powder coated"],
        "names": ["Satin", "Mirror", "Aged", "Industrial", "Architectural"],
    },
    "Glass": {
        "kinds": ["Float glass", "Frosted glass", "Glass mosaic", "Back-painted glass"],
        "finishes": ["clear", "satin", "textured", "mirrored"],
        "names": ["Crystal", "Opal", "Smoke", "Aqua", "Amber"],
    },
    "Textiles": {
        "kinds": ["Wool carpet", "Linen", "Velvet", "Jute", "Felt", "Leather"],
        "finishes": ["woven", "tufted", "knitted", "printed", "embossed"],
        "names": ["Heritage", "Coastal", "Loft", "Meadow", "Atelier", "Boucle"],
    },
    "Concrete": {
        "kinds": ["Polished concrete", "Microcement", "Precast panel", "Terrazzo"],
        "finishes": ["smooth", "sandblasted", "acid etched", "sealed"],
        "names": ["Grigio", "Ash", "Charcoal", "Sand", "Pebble"],
    },
    "Resilient": {
        "kinds": ["Vinyl plank", "Linoleum", "Rubber", "Cork"],
        "finishes": ["embossed", "smooth", "textured"],
        "names": ["Harbour", "Studio", "Comfort", "Active", "Quiet Step"],
    },
}  # fmt: skip
FORMATS = ["Floor tile", "Wall tile", "Slab", "Mosaic", "Outdoor paver"]
COLOURS = ["white", "grey", "black", "beige", "brown", "green", "blue", "red", "cream", "gold"]
ROOMS = ["bathroom", "kitchen", "living room", "terrace", "hallway", "shower", "pool surround",
         "facade", "hotel lobby", "office"]  # fmt: skip
TRAITS = ["soft veining", "bold veining", "fine grain", "subtle movement", "warm undertones",
          "cool undertones", "a uniform tone", "natural variation", "a rustic character",
          "a contemporary look", "crisp edges", "a rectified edge"]  # fmt: skip
SIZES = [(600, 600), (300, 600), (600, 1200), (200, 200), (750, 1500), (100, 300), (1200, 2400)]
BENCH_PASSWORD = "benchmark porphyry 1911"  # noqa: S105 - a throwaway account of the run
QUERIES = [
    "carrara", "white marble", "grey porcelain floor", "honed limestone", "oak",
    '"floor tile"', "travertine -tumbled", "slate outdoor", "warm beige tiles",
    "black granite kitchen", "brushed brass", "terrazzo or microcement", "nero marquina",
    "glossy wall tile", "wool carpet", "zellige", "cork", "bathroom", "pool", "facade panel",
]  # fmt: skip
# Words of QUERIES' kind, misspelt: the main search corrects them to the catalog's own words.
MISSPELT = ["marbel", "carara", "calacata", "travertien", "limestnoe", "porcelian", "terazzo",
            "brss", "bathrom", "kitchn", "white marbel bathrom", "oak flor"]  # fmt: skip
TYPED = ["car", "marb", "gran", "trav", "oak p", "porc", "calac", "nero m", "marbel",
         "granit", "travertin", "slat", "terazzo", "brss", "ST-MAR-00"]  # fmt: skip


def schema(family: str) -> list[dict[str, Any]]:
    finishes = FAMILIES[family]["finishes"]
    return [
        {"key": "thickness", "label": "Thickness", "type": "number", "unit": "mm",
         "minimum": 1, "maximum": 200, "required": True},
        {"key": "finish", "label": "Finish", "type": "enum", "options": finishes},
        {"key": "colour", "label": "Colour", "type": "enum", "options": COLOURS},
        {"key": "frost_resistant", "label": "Frost resistant", "type": "boolean"},
        {"key": "size", "label": "Size", "type": "dimensions", "unit": "mm"},
        {"key": "water_absorption", "label": "Water absorption", "type": "number", "unit": "%",
         "minimum": 0, "maximum": 100},
    ]  # fmt: skip


# The most rows one import file may hold (KAI's own limit): larger catalogs come in parts.
IMPORT_PART = 200_000


def generate_csv(count: int, rng: random.Random, start: int = 0) -> bytes:
    """`count` materials spread over the taxonomy, as a CSV an import reads (numbered from
    `start`)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["code", "name", "category", "description", "manufacturer", "supplier", "price",
         "currency", "tags", "status", "properties.thickness", "properties.finish",
         "properties.colour", "properties.frost_resistant", "properties.size",
         "properties.water_absorption"]
    )  # fmt: skip
    leaves = [
        (family, kind, fmt)
        for family, spec in FAMILIES.items()
        for kind in spec["kinds"]
        for fmt in FORMATS
    ]
    for number in range(start, start + count):
        family, kind, fmt = rng.choice(leaves)
        spec = FAMILIES[family]
        finish = rng.choice(spec["finishes"])
        colour = rng.choice(COLOURS)
        length, width = rng.choice(SIZES)
        thickness = rng.choice([6, 8, 9, 10, 12, 15, 18, 20, 30])
        size = f"{length // 10}x{width // 10}"
        name = f"{rng.choice(spec['names'])} {kind} {finish} {fmt.lower()} {size}"
        rooms = rng.sample(ROOMS, 2)
        description = (
            f"{kind} in {colour} with {rng.choice(TRAITS)}, {finish} finish. "
            f"Suited to {rooms[0]} and {rooms[1]} projects; {rng.choice(TRAITS)} "
            f"and {thickness} mm thick. Supplied in {length} x {width} mm."
        )
        writer.writerow(
            [f"{family[:2].upper()}-{kind[:3].upper()}-{number:06d}", name,
             f"{family} > {kind} > {fmt}", description,
             rng.choice(["Marmi Uniti", "Stonecraft", "Ceramica Nova", "Timberline", "Metalwerk",
                         "Vitrum", "Loomhouse", "Betonart"]),
             rng.choice(["Tile Depot", "Stone & Co", "BuildPro", "Interiors Direct"]),
             f"{rng.lognormvariate(3.8, 0.6):.2f}", "EUR",
             f"{colour}; {rooms[0]}; {rooms[1]}", rng.choice(["active", "active", "draft",
                                                            "discontinued"]),
             thickness, finish, colour, rng.choice(["true", "false"]),
             f"{length}x{width}x{thickness}", f"{rng.uniform(0.05, 12):.2f}"]
        )  # fmt: skip
    return out.getvalue().encode()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="kai-bench-catalog-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def run(options: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    from kai.catalog import transfers
    from kai.config import Settings
    from kai.identity import admin
    from kai.identity.actor import Actor
    from kai.identity.permissions import Permission
    from kai.kit import images as imaging
    from kai.kit.db import create_engine
    from kai.runtime import Runtime, attach_database

    settings = Settings(_env_file=None, data_dir=data_dir, log_level="warning")  # type: ignore[call-arg]
    urls, server = await asyncio.to_thread(attach_database, settings, migrate=True)
    runtime = Runtime.create(settings, urls.app, embedded=server)
    results: dict[str, Any] = {"materials": options.materials}
    try:
        if options.data_dir and (options.data_dir / "loaded").exists():
            actor = Actor(**json.loads((options.data_dir / "loaded").read_text(), object_hook=_ids))
            return await measure(options, runtime, actor, results)
        created = await admin.create_user(
            runtime, email="bench@quarry.example", organization_slug="bench", role="owner",
            name="Bench", password=BENCH_PASSWORD,
        )  # fmt: skip
        actor = Actor(
            kind="user",
            organization_id=created.organization_id,
            permissions=frozenset({Permission.MATERIALS_READ, Permission.MATERIALS_WRITE}),
            user_id=created.user_id,
            role="owner",
        )
        started = time.perf_counter()
        await create_taxonomy(runtime, actor)
        count = sum(1 + len(spec["kinds"]) * (1 + len(FORMATS)) for spec in FAMILIES.values())
        results["categories"] = count
        results["taxonomy_seconds"] = round(time.perf_counter() - started, 2)

        rng = random.Random(options.seed)  # noqa: S311 - reproducible data, not secrets
        limits = imaging.ImageLimits()
        megabytes, seconds, imported = 0.0, 0.0, 0
        for start in range(0, options.materials, IMPORT_PART):
            data = generate_csv(min(IMPORT_PART, options.materials - start), rng, start)
            megabytes += len(data) / 1e6
            started = time.perf_counter()
            report = await transfers.import_from_command_line(
                runtime.session_factory, runtime.storage, organization_slug="bench", data=data,
                mapping={}, mode="all_or_nothing", dry_run=False, limits=limits,
            )  # fmt: skip
            seconds += time.perf_counter() - started
            imported += report.created
        results["csv_megabytes"] = round(megabytes, 1)
        results["import_seconds"] = round(seconds, 1)
        results["import_report"] = {
            key: value for key, value in report.summary().items() if key != "errors"
        }
        print(f"  imported {imported} materials in {results['import_seconds']} s", flush=True)
        # What autovacuum does after a bulk load, done now (as the tables' owner: the app's
        # role may not) so that plans see the data.
        owner = create_engine(urls.owner, settings.database, as_app=False)
        async with owner.begin() as connection:
            await connection.execute(text("ANALYZE"))
        await owner.dispose()
        if options.data_dir:
            (options.data_dir / "loaded").write_text(
                json.dumps({"kind": "user", "organization_id": str(actor.organization_id),
                            "user_id": str(actor.user_id), "role": "owner"})
            )  # fmt: skip
        if options.load_only:
            return results
        return await measure(options, runtime, actor, results)
    finally:
        await runtime.close()
        if server is not None:
            server.release()


async def create_taxonomy(runtime: Any, actor: Any) -> None:
    """The generated categories: a family, its kinds, each kind's formats; properties on top."""
    from kai.catalog import categories
    from kai.catalog.properties import PropertyDefinition
    from kai.kit.db import act_for

    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=actor.organization_id)
        for family, spec in FAMILIES.items():
            top = await categories.create_category(
                session, actor=actor, name=family, parent_id=None, description="",
                position=None,
                properties=[PropertyDefinition.model_validate(p) for p in schema(family)],
            )  # fmt: skip
            for kind in spec["kinds"]:
                middle = await categories.create_category(
                    session, actor=actor, name=kind, parent_id=top.category.id,
                    description="", position=None, properties=[],
                )  # fmt: skip
                for fmt in FORMATS:
                    await categories.create_category(
                        session, actor=actor, name=fmt, parent_id=middle.category.id,
                        description="", position=None, properties=[],
                    )  # fmt: skip


def _ids(values: dict[str, Any]) -> dict[str, Any]:
    import uuid

    from kai.identity.permissions import Permission

    return {
        **values,
        "organization_id": uuid.UUID(values["organization_id"]),
        "user_id": uuid.UUID(values["user_id"]),
        "permissions": frozenset({Permission.MATERIALS_READ, Permission.MATERIALS_WRITE}),
    }


async def measure(
    options: argparse.Namespace, runtime: Any, actor: Any, results: dict[str, Any]
) -> dict[str, Any]:
    """Search and autocomplete latencies over the loaded catalog."""
    from kai.kit.db import act_for
    from kai.search import service as search

    rng = random.Random(options.seed)  # noqa: S311 - reproducible queries, not secrets

    async def timed_search(request: search.SearchRequest) -> float:
        async with runtime.session_factory.begin() as session:
            await act_for(session, organization_id=actor.organization_id)
            begun = time.perf_counter()
            await search.search(session, actor=actor, request=request)
            return (time.perf_counter() - begun) * 1000

    views = await _category_ids(runtime, actor)
    requests = []
    for index in range(options.queries):
        query = QUERIES[index % len(QUERIES)]
        filters: list[str] = []
        category_id = None
        if index % 3 == 1:
            filters = [rng.choice(["thickness>=10", "frost_resistant:true", "colour:white"])]
        if index % 4 == 2:
            category_id = rng.choice(views)
        requests.append(
            search.SearchRequest(
                text=query if index % 5 else None,
                mode="fulltext",
                sort="relevance",
                category_id=category_id,
                filters=filters,
                facets=True,
                limit=20,
                units="metric",
            )
        )
    for request in requests[:20]:  # warm-up: caches, plans, the pool
        await timed_search(request)
    latencies = [await timed_search(request) for request in requests]
    results["search_with_facets_ms"] = _summary(latencies)
    # The same requests by kind: words, or browsing (the whole catalog, or narrowed by a
    # category or a property filter), whose facets count every material they keep.
    kinds: dict[str, list[float]] = {}
    for request, latency in zip(requests, latencies, strict=True):
        narrowed = request.filters or request.category_id is not None
        kind = "words" if request.text else "browse_narrowed" if narrowed else "browse_all"
        kinds.setdefault(kind, []).append(latency)
    results["search_with_facets_ms_by_kind"] = {
        kind: _summary(values) for kind, values in sorted(kinds.items())
    }

    # Misspelt words, searched as the words above are (full-text, with facets): the cost of
    # finding and searching for a correction. What each was corrected to is recorded too.
    corrected: dict[str, str | None] = {}

    async def timed_misspelt(words: str) -> float:
        async with runtime.session_factory.begin() as session:
            await act_for(session, organization_id=actor.organization_id)
            begun = time.perf_counter()
            found = await search.search(
                session,
                actor=actor,
                request=search.SearchRequest(
                    text=words, mode="fulltext", sort="relevance", facets=True, limit=20,
                    units="metric",
                ),
            )  # fmt: skip
            elapsed = (time.perf_counter() - begun) * 1000
            corrected[words] = getattr(found, "corrected_query", None)
            return elapsed

    for words in MISSPELT:
        await timed_misspelt(words)
    misspelt = [
        await timed_misspelt(MISSPELT[index % len(MISSPELT)]) for index in range(options.queries)
    ]
    results["misspelt_search_ms"] = _summary(misspelt)
    results["corrections"] = corrected
    with contextlib.suppress(ImportError):  # only since the main search corrects words
        results["spelling_check_ms"] = await _spelling_checks(options, runtime, actor)

    async def timed_suggest(typed: str) -> float:
        async with runtime.session_factory.begin() as session:
            await act_for(session, organization_id=actor.organization_id)
            begun = time.perf_counter()
            await search.suggest(session, actor=actor, typed=typed, limit=10)
            return (time.perf_counter() - begun) * 1000

    for typed in TYPED:
        await timed_suggest(typed)
    suggestions = [
        await timed_suggest(TYPED[index % len(TYPED)]) for index in range(options.queries)
    ]
    results["autocomplete_ms"] = _summary(suggestions)
    return results


async def _spelling_checks(
    options: argparse.Namespace, runtime: Any, actor: Any
) -> dict[str, dict[str, float]]:
    """What looking for corrections costs a search alone (its one statement), for the words of
    QUERIES (spelt right: nothing to correct) and for MISSPELT."""
    from kai.kit.db import act_for
    from kai.search import spelling
    from kai.search.repository import SearchRepository

    async def timed(words: str) -> float:
        async with runtime.session_factory.begin() as session:
            await act_for(session, organization_id=actor.organization_id)
            repository = SearchRepository(session)
            begun = time.perf_counter()
            await spelling.correct(repository, language="english", text=words)
            return (time.perf_counter() - begun) * 1000

    found = {}
    for kind, words in (("spelt_right", QUERIES), ("misspelt", MISSPELT)):
        for each in words:
            await timed(each)
        found[kind] = _summary(
            [await timed(words[index % len(words)]) for index in range(options.queries)]
        )
    return found


async def _category_ids(runtime: Any, actor: Any) -> list[Any]:
    from kai.catalog.categories import list_categories
    from kai.kit.db import act_for

    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=actor.organization_id)
        views = await list_categories(session, actor=actor)
    # The families and kinds: subtrees of hundreds to thousands of materials.
    return [view.category.id for view in views if len(view.category.path) < 2]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": round(statistics.median(values), 2),
        "p90": round(percentile(values, 0.9), 2),
        "p99": round(percentile(values, 0.99), 2),
        "max": round(max(values), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.catalog", description=__doc__)
    parser.add_argument("--materials", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="Keep the catalog here and reuse it on the next run (skipping the import).",
    )
    parser.add_argument(
        "--load-only",
        action="store_true",
        help="Generate and import the catalog, measure nothing (benchmarks.search_http).",
    )
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "catalog.json"
    )
    options = parser.parse_args()
    if options.data_dir:
        options.data_dir.mkdir(parents=True, exist_ok=True)
        options.data_dir.chmod(0o755)
        results = asyncio.run(run(options, options.data_dir / "kai-data"))
    else:
        with scratch() as data_dir:
            results = asyncio.run(run(options, data_dir / "kai-data"))
    results.get("import_report", {}).pop("actions", None)
    print(json.dumps(results, indent=2))
    if options.load_only:
        return
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
