"""Full-text queries answered from postings in memory (`kai.search.words`): they match what
PostgreSQL's `@@` matches, whatever the web syntax, and what they cannot answer (a phrase) is
left to PostgreSQL."""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import urlencode

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from kai.kit.db import act_for
from kai.runtime import Runtime
from kai.search import words
from tests.catalog.factories import create_material
from tests.identity.factories import member

pytestmark = pytest.mark.database

NAMES = ["Carrara", "Calacatta", "Nero Marquina", "Oak", "Walnut", "Travertine", "Slate"]
KINDS = ["marble", "plank", "tile", "slab", "mosaic"]
FINISHES = ["polished", "honed", "tumbled", "brushed", "oiled"]
ROOMS = ["bathroom", "kitchen", "terrace", "hallway"]

QUERIES = [
    "marble",
    "white marble",
    "marble -polished",
    "calacatta or tumbled",
    "oak or walnut -oiled",
    "tiles for the bathroom",
    "-honed slate",
    "Crème",
    "granite",
    '"honed marble"',  # a phrase: PostgreSQL's
    "the",  # only a stop word: nothing
]


def test_queries_parse_as_postgresql_writes_them() -> None:
    assert words.parse("'white' & 'marbl'") == words.And(words.Word("white"), words.Word("marbl"))
    assert words.parse("'travertin' & !'tumbl'") == words.And(
        words.Word("travertin"), words.Not(words.Word("tumbl"))
    )
    assert words.parse("'white' & ( 'marbel' | 'marbl' )") == words.And(
        words.Word("white"), words.Or(words.Word("marbel"), words.Word("marbl"))
    )
    assert words.parse("'it''s'") == words.Word("it's")
    # Left to PostgreSQL: phrases, prefixes, weights; and a query without words.
    for unanswered in ("'floor' <-> 'tile'", "'a' <2> 'b'", "'car':*", "'oak':A", "", "  "):
        assert words.parse(unanswered) is None, unanswered


async def test_matches_are_those_of_postgresql(
    runtime: Runtime, client: AsyncClient, session: AsyncSession
) -> None:
    owner = await member(runtime, client)
    assert owner.organization is not None
    rng = random.Random(5)  # noqa: S311 - a reproducible catalog, not secrets
    made = []
    for number in range(30):
        name = f"{rng.choice(NAMES)} {rng.choice(KINDS)} {rng.choice(FINISHES)} {number}"
        made.append(
            await create_material(
                client,
                owner,
                name=name,
                description=f"{rng.choice(['White', 'Grey', 'Black'])} {rng.choice(KINDS)} "
                f"for the {rng.choice(ROOMS)}, {rng.choice(FINISHES)}.",
                tags=rng.sample(ROOMS, 1),
            )
        )
    made.append(await create_material(client, owner, name="Crème Marfil", description="Beige"))
    deleted = await client.delete(f"/api/v1/materials/{made[0]['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    await act_for(session, organization_id=owner.organization.id)

    for query in QUERIES:
        listed = await client.get(
            "/api/v1/search?" + urlencode({"q": query, "mode": "fulltext", "limit": 100}),
            headers=owner.headers,
        )
        assert listed.status_code == 200, listed.text
        body: dict[str, Any] = listed.json()
        expected = set(
            (
                await session.execute(
                    text(
                        "SELECT id::text FROM materials WHERE organization_id = :organization"
                        " AND deleted_at IS NULL AND search_vector @@"
                        " websearch_to_tsquery('english', kai_fold(:query))"
                    ),
                    {"organization": owner.organization.id, "query": query},
                )
            )
            .scalars()
            .all()
        )
        found = {item["material"]["id"] for item in body["items"]}
        assert found == expected, query
        assert body["total"] == len(expected), query
        scores = [item["score"] for item in body["items"]]
        assert scores == sorted(scores, reverse=True), query
    # The catalog has words for every query above but the last three.
    assert all(
        [
            (await client.get(f"/api/v1/search?q={q}&mode=fulltext", headers=owner.headers)).json()[
                "total"
            ]
            for q in ("marble", "calacatta or tumbled", "oak or walnut -oiled")
        ]
    )


async def test_words_find_only_the_searching_organizations_materials(
    runtime: Runtime, client: AsyncClient
) -> None:
    ours = await member(runtime, client)
    theirs = await member(runtime, client)
    mine = await create_material(client, ours, name="Basalt honed slab")
    await create_material(client, theirs, name="Basalt honed slab")
    await create_material(client, theirs, name="Basalt tile")
    for query in ("basalt", "basalt or tile", '"honed slab"'):
        found = await client.get(
            "/api/v1/search?" + urlencode({"q": query, "mode": "fulltext"}), headers=ours.headers
        )
        assert found.status_code == 200, found.text
        body = found.json()
        assert [item["material"]["id"] for item in body["items"]] == [mine["id"]], query
        assert body["total"] == 1, query


async def test_the_longest_query_a_stranger_may_send_is_answered(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await create_material(client, owner, name="Basalt w7 slab")
    # 500 characters of alternatives and exclusions: a deep query tree, evaluated in memory.
    query = " or ".join(f"w{number}" for number in range(100))[:480] + " -granite"
    found = await client.get(
        "/api/v1/search?" + urlencode({"q": query, "mode": "fulltext"}), headers=owner.headers
    )
    assert found.status_code == 200, found.text
    assert found.json()["total"] == 1
