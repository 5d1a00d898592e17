"""Facets counted over the catalog's columns in memory (`kai.search.facet_index`): the counts
are those of the materials themselves, whatever the filters, and they follow every change,
including one whose transaction was still open when the columns were last read."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
from httpx import AsyncClient
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog.models import Material
from kai.catalog.repository import MaterialRepository
from kai.kit.db import act_for
from kai.kit.replica import REPLICA_INFO
from kai.runtime import Runtime
from kai.search import facet_index
from kai.search.repository import SearchQuery, SearchRepository
from tests.catalog.factories import create_category, create_material
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database

FINISHES = ["honed", "polished", "brushed"]
ROOMS = ["bathroom", "kitchen", "terrace"]
SCHEMA: list[dict[str, Any]] = [
    {"key": "finish", "label": "Finish", "type": "enum", "options": FINISHES},
    {"key": "rooms", "label": "Rooms", "type": "multi_enum", "options": ROOMS},
    {"key": "outdoor", "label": "Outdoor", "type": "boolean"},
    {"key": "thickness", "label": "Thickness", "type": "number", "unit": "mm"},
    {"key": "batch", "label": "Batch", "type": "text"},
]  # fmt: skip


async def _search(client: AsyncClient, owner: Member, **params: Any) -> dict[str, Any]:
    query = urlencode({"mode": "fulltext", "limit": 100, **params}, doseq=True)
    response = await client.get(f"/api/v1/search?{query}", headers=owner.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _every_page(client: AsyncClient, owner: Member, **params: Any) -> list[dict[str, Any]]:
    """The items of every page of a search, a few at a time, following its cursors."""
    found, cursor = [], None
    while True:
        page = await _search(
            client, owner, **{"limit": 4, "facets": "false", **params},
            **({"cursor": cursor} if cursor else {}),
        )  # fmt: skip
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def _counts(found: dict[str, Any]) -> dict[str, Any]:
    facets = found["facets"]
    return {
        "total": found["total"],
        "categories": {c["name"]: c["count"] for c in facets["categories"]},
        "statuses": {s["value"]: s["count"] for s in facets["statuses"]},
        "tags": {t["value"]: t["count"] for t in facets["tags"]},
        "properties": {
            p["key"]: {v["value"]: v["count"] for v in p["values"]} for p in facets["properties"]
        },
        "ranges": {
            r["key"]: (r["minimum"], r["maximum"], sum(b["count"] for b in r["buckets"]))
            for r in facets["ranges"]
        },
    }


def _expected(rows: list[dict[str, Any]], names: dict[str, list[str]]) -> dict[str, Any]:
    """The same counts, worked out from the materials as they were created."""
    categories: Counter[str] = Counter()
    properties: dict[str, Counter[str]] = {}
    for row in rows:
        for name in names.get(row.get("category_id") or "", []):
            categories[name] += 1
        for key, value in row.get("properties", {}).items():
            if key in ("finish", "outdoor"):
                shown = str(value).lower() if isinstance(value, bool) else value
                properties.setdefault(key, Counter())[shown] += 1
            elif key == "rooms":
                properties.setdefault(key, Counter()).update(value)
    ranges = {}
    for key, values in (
        ("price", [float(row["price"]) for row in rows if "price" in row]),
        (
            "properties.thickness",
            [float(row["properties"]["thickness"]) for row in rows
             if "thickness" in row.get("properties", {})],
        ),
    ):  # fmt: skip
        if values:
            ranges[key] = (min(values), max(values), len(values))
    tags = Counter(tag for row in rows for tag in row.get("tags", []))
    return {
        "total": len(rows),
        "categories": dict(categories),
        "statuses": dict(Counter(row["status"] for row in rows)),
        "tags": dict(tags),
        "properties": {key: dict(counter) for key, counter in properties.items() if counter},
        "ranges": ranges,
    }


async def test_counts_are_those_of_the_materials_whatever_the_filters(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=SCHEMA)
    marble = await create_category(client, owner, "Marble", parent_id=stone["id"])
    wood = await create_category(client, owner, "Wood", properties=SCHEMA[:2])
    # Each category's name and its ancestors': a category counts its subcategories' too.
    names = {stone["id"]: ["Stone"], marble["id"]: ["Stone", "Marble"], wood["id"]: ["Wood"]}
    rng = random.Random(11)  # noqa: S311 - a reproducible catalog, not secrets
    rows: list[dict[str, Any]] = []
    for number in range(40):
        category = rng.choice([stone, marble, wood, None])
        row: dict[str, Any] = {
            "name": f"{rng.choice(['Slate', 'Oak', 'Onyx'])} tile {number}",
            "status": rng.choice(["active", "active", "draft", "discontinued"]),
            "supplier": rng.choice(["Tile Depot", "tile depot", "BuildPro"]),
            "tags": rng.sample(["grey", "outdoor", "sale", "new"], rng.randint(0, 2)),
        }
        if rng.random() < 0.8:
            row["price"] = str(Decimal(rng.randint(100, 9000)) / 100)
            row["currency"] = "EUR"
        properties: dict[str, Any] = {}
        if category is not None:
            properties["finish"] = rng.choice(FINISHES)
            properties["rooms"] = rng.sample(ROOMS, rng.randint(0, 3))
            if category is not wood:
                if rng.random() < 0.7:
                    properties["outdoor"] = rng.random() < 0.5
                if rng.random() < 0.8:
                    properties["thickness"] = rng.choice([8, 10, 12.5, 20, 30])
                properties["batch"] = rng.choice(["A1", "B2"])
        row["properties"] = properties
        if category is not None:
            row["category_id"] = category["id"]
        await create_material(client, owner, category_id=row.pop("category_id", None), **row)
        if category is not None:
            row["category_id"] = category["id"]
        rows.append(row)

    def kept(
        where: Any,
        q: str | None = None,
    ) -> list[dict[str, Any]]:
        return [r for r in rows if where(r) and (q is None or q.lower() in r["name"].lower())]

    def props(row: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = row.get("properties", {})
        return found

    subtree = {stone["id"], marble["id"]}
    cases: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
        ({}, rows),
        ({"q": "slate"}, kept(lambda r: True, "slate")),
        ({"category_id": stone["id"]}, kept(lambda r: r.get("category_id") in subtree)),
        ({"status": ["draft", "discontinued"]}, kept(lambda r: r["status"] != "active")),
        ({"tag": ["grey", "sale"]}, kept(lambda r: {"grey", "sale"} <= set(r["tags"]))),
        ({"supplier": "TILE DEPOT"}, kept(lambda r: r["supplier"].lower() == "tile depot")),
        (
            {"price_min": "20", "price_max": "60.5"},
            kept(lambda r: "price" in r and 20 <= Decimal(r["price"]) <= Decimal("60.5")),
        ),
        ({"filter": "finish:honed"}, kept(lambda r: props(r).get("finish") == "honed")),
        ({"filter": "rooms:kitchen"}, kept(lambda r: "kitchen" in props(r).get("rooms", []))),
        ({"filter": "outdoor:false"}, kept(lambda r: props(r).get("outdoor") is False)),
        (
            {"filter": ["thickness>=12", "thickness<30"]},
            kept(lambda r: 12 <= props(r).get("thickness", -1) < 30),
        ),
        ({"filter": "thickness:10"}, kept(lambda r: props(r).get("thickness") == 10)),
        # A text property: its values are not held in memory, so the database is asked.
        ({"filter": "batch:A1"}, kept(lambda r: props(r).get("batch") == "A1")),
        (
            {"q": "oak", "filter": "finish:polished", "status": "active"},
            kept(lambda r: props(r).get("finish") == "polished" and r["status"] == "active", "oak"),
        ),
    ]
    for params, expected in cases:
        found = await _search(client, owner, **params)
        assert _counts(found) == _expected(expected, names), params
        # The results are the materials counted.
        assert {item["material"]["name"] for item in found["items"]} == {
            r["name"] for r in expected
        }, params


async def test_counts_follow_edits_deletions_and_removal_for_good(
    runtime: Runtime, client: AsyncClient, session: AsyncSession
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=SCHEMA)
    made = [
        await create_material(
            client, owner, category_id=stone["id"], name=f"Slate {n}", status="active",
            properties={"finish": "honed"},
        )
        for n in range(3)
    ]  # fmt: skip
    assert _counts(await _search(client, owner))["properties"]["finish"] == {"honed": 3}
    # The same words again and again (each page, many people): counted once while the catalog
    # stands, and again after any change.
    for _ in range(2):
        assert _counts(await _search(client, owner, q="slate"))["total"] == 3

    edited = await client.patch(
        f"/api/v1/materials/{made[0]['id']}",
        json={"properties": {"finish": "polished"}, "status": "draft"},
        headers={**owner.headers, "If-Match": f'"{made[0]["version"]}"'},
    )
    assert edited.status_code == 200, edited.text
    deleted = await client.delete(f"/api/v1/materials/{made[1]['id']}", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    for query in ({}, {"q": "slate"}):
        counts = _counts(await _search(client, owner, **query))
        assert counts["total"] == 2
        assert counts["properties"]["finish"] == {"honed": 1, "polished": 1}
        assert counts["statuses"] == {"active": 1, "draft": 1}

    # Removed for good without being deleted first: no row is left to say so.
    assert owner.organization is not None
    await act_for(session, organization_id=owner.organization.id)
    await MaterialRepository(session).delete_rows(owner.organization.id, [uuid.UUID(made[2]["id"])])
    for query in ({}, {"q": "slate"}):
        counts = _counts(await _search(client, owner, **query))
        assert counts["total"] == 1
        assert counts["properties"]["finish"] == {"polished": 1}


async def test_a_property_added_to_a_category_is_counted_and_filtered_at_once(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=SCHEMA[:1])
    slate = await create_material(
        client, owner, category_id=stone["id"], name="Slate", properties={"finish": "honed"}
    )
    assert _counts(await _search(client, owner))["properties"] == {"finish": {"honed": 1}}

    # The tree changes the shape of the columns this process holds.
    grown = await client.patch(
        f"/api/v1/categories/{stone['id']}",
        json={"properties": [*SCHEMA[:1], SCHEMA[2]]},
        headers=owner.headers,
    )
    assert grown.status_code == 200, grown.text
    edited = await client.patch(
        f"/api/v1/materials/{slate['id']}",
        json={"properties": {"finish": "honed", "outdoor": True}},
        headers={**owner.headers, "If-Match": f'"{slate["version"]}"'},
    )
    assert edited.status_code == 200, edited.text
    counts = _counts(await _search(client, owner))
    assert counts["properties"]["outdoor"] == {"true": 1}
    assert (await _search(client, owner, filter="outdoor:true"))["total"] == 1
    assert (await _search(client, owner, filter="outdoor:false"))["total"] == 0


async def test_a_change_committed_after_a_later_one_was_read_is_counted(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    assert owner.organization is not None
    first = await create_material(client, owner, name="Slate first", status="active")
    second = await create_material(client, owner, name="Slate second", status="active")
    assert _counts(await _search(client, owner))["statuses"] == {"active": 2}

    async with committed_runtime.session_factory() as slow, slow.begin():
        await act_for(slow, organization_id=owner.organization.id)
        # This transaction writes first and commits last.
        await slow.execute(
            update(Material)
            .where(Material.id == uuid.UUID(first["id"]))
            .values(status="discontinued")
        )
        edited = await client.patch(
            f"/api/v1/materials/{second['id']}",
            json={"status": "draft"},
            headers={**owner.headers, "If-Match": f'"{second["version"]}"'},
        )
        assert edited.status_code == 200, edited.text
        assert _counts(await _search(client, owner))["statuses"] == {"active": 1, "draft": 1}
        # The open transaction keeps each read from moving past it: the edited row is read
        # again, as it was, which is no news (the columns stay the same).
        held = facet_index.cached(owner.organization.id)
        assert _counts(await _search(client, owner))["statuses"] == {"active": 1, "draft": 1}
        assert facet_index.cached(owner.organization.id) is held
    assert _counts(await _search(client, owner))["statuses"] == {"discontinued": 1, "draft": 1}


async def test_kept_pages_follow_every_change(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    assert owner.organization is not None
    made = [
        await create_material(
            client, owner, name=f"Slate {n}", status="active", price=f"{10 + n}.00",
            currency="EUR",
        )
        for n in range(3)
    ]  # fmt: skip
    # Browsing (newest first), words by relevance, and words by price: each page chosen once
    # while the catalog stands, its materials read anew each time.
    queries: list[dict[str, Any]] = [{}, {"q": "slate"}, {"q": "slate", "sort": "price_desc"}]

    async def shown(**params: Any) -> list[str]:
        return [
            item["material"]["name"] for item in (await _search(client, owner, **params))["items"]
        ]

    async def every_page(**params: Any) -> list[str]:
        return [item["material"]["name"] for item in await _every_page(client, owner, **params)]

    assert await shown() == ["Slate 2", "Slate 1", "Slate 0"]
    assert sorted(await shown(q="slate")) == ["Slate 0", "Slate 1", "Slate 2"]
    assert await shown(q="slate", sort="price_desc") == ["Slate 2", "Slate 1", "Slate 0"]
    held = facet_index.cached(owner.organization.id)
    for query in queries:
        first = await shown(**query)
        assert await shown(**query) == first
        # Page by page, each material once, the same again.
        assert sorted(await every_page(**query)) == sorted(first)
        assert await every_page(**query) == await every_page(**query)
    # Nothing changed: the columns were not read again.
    assert facet_index.cached(owner.organization.id) is held

    await create_material(
        client, owner, name="Slate new", status="active", price="99.00", currency="EUR"
    )
    assert (await shown())[0] == "Slate new"
    assert "Slate new" in await shown(q="slate")
    assert (await shown(q="slate", sort="price_desc"))[0] == "Slate new"
    assert "Slate new" in await every_page(q="slate")

    renamed = await client.patch(
        f"/api/v1/materials/{made[0]['id']}",
        json={"name": "Basalt 0"},
        headers={**owner.headers, "If-Match": f'"{made[0]["version"]}"'},
    )
    assert renamed.status_code == 200, renamed.text
    deleted = await client.delete(f"/api/v1/materials/{made[1]['id']}", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    assert await shown() == ["Slate new", "Slate 2", "Basalt 0"]
    assert sorted(await shown(q="slate")) == ["Slate 2", "Slate new"]
    assert await shown(q="slate", sort="price_desc") == ["Slate new", "Slate 2"]
    assert sorted(await every_page(q="slate")) == ["Slate 2", "Slate new"]


async def test_browsing_pages_come_in_each_order_through_ties_and_missing_prices(
    runtime: Runtime, client: AsyncClient, session: AsyncSession
) -> None:
    owner = await member(runtime, client)
    assert owner.organization is not None
    stone = await create_category(client, owner, "Stone", properties=SCHEMA)
    rng = random.Random(5)  # noqa: S311 - a reproducible catalog, not secrets
    for number in range(23):
        priced = rng.random() < 0.7
        await create_material(
            client, owner, name=f"Slab {number}", status=rng.choice(["active", "draft"]),
            category_id=stone["id"] if number % 3 else None,
            properties={"finish": rng.choice(FINISHES)} if number % 3 else {},
            # Equal prices, and none at all, are ordered by id.
            **({"price": rng.choice(["12.50", "7.25"]), "currency": "EUR"} if priced else {}),
        )  # fmt: skip
    # Materials created in one transaction share the moment: a few moments, many ties.
    await act_for(session, organization_id=owner.organization.id)
    await session.execute(
        text(
            "UPDATE materials SET created_at = now()"
            " - (abs(hashtext(id::text)) % 4) * interval '1 hour'"
            " WHERE organization_id = :organization_id"
        ),
        {"organization_id": owner.organization.id},
    )
    rows = (
        await session.execute(
            text(
                "SELECT id, created_at, price, status, category_id, properties FROM materials"
                " WHERE organization_id = :organization_id"
            ),
            {"organization_id": owner.organization.id},
        )
    ).all()
    orders: dict[str, Any] = {
        "newest": (lambda r: (r.created_at, r.id), True),
        "price_asc": (lambda r: (float(r.price) if r.price is not None else 1e15, r.id), False),
        "price_desc": (lambda r: (float(r.price) if r.price is not None else -1.0, r.id), True),
    }
    narrowed: list[tuple[dict[str, Any], Any]] = [
        ({}, lambda r: True),
        ({"status": "active"}, lambda r: r.status == "active"),
        ({"category_id": stone["id"]}, lambda r: str(r.category_id) == stone["id"]),
        ({"filter": "finish:honed"}, lambda r: r.properties.get("finish") == "honed"),
    ]
    for sort, (key, descending) in orders.items():
        for params, kept in narrowed:
            expected = [str(r.id) for r in sorted(filter(kept, rows), key=key, reverse=descending)]
            shown = await _every_page(client, owner, sort=sort, **params)
            assert [item["material"]["id"] for item in shown] == expected, (sort, params)


async def test_buckets_fall_where_postgresql_puts_them(session: AsyncSession) -> None:
    cases = [
        ([0.0, 20.0, 40.0, 60.0, 80.0, 100.0], 0.0, 100.0),
        ([0.1, 0.2, 0.3, 0.7], 0.1, 0.7),
        ([5.0, 5.0], 5.0, 5.0),
        ([-3.5, 1e-12, 2.25, 7.0], -3.5, 7.0),
        ([1e15, 3e15, 9.999e15], 1e15, 9.999e15),
    ]
    for values, low, high in cases:
        expected = (
            (
                await session.execute(
                    text(
                        "SELECT least(width_bucket(v, CAST(:low AS float8), CAST(:high AS float8)"
                        " + greatest((CAST(:high AS float8) - CAST(:low AS float8)) * 1e-9, 1e-9),"
                        " 5), 5) FROM unnest(CAST(:values AS float8[])) WITH ORDINALITY AS t(v, i)"
                        " ORDER BY i"
                    ),
                    {"values": values, "low": low, "high": high},
                )
            )
            .scalars()
            .all()
        )
        found = facet_index.buckets(np.array(values), low, high)
        assert found.tolist() == list(expected), values


async def test_pages_by_relevance_cover_every_match_once_through_ties(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=SCHEMA)
    # Many ties: the same word once in the name of each, so the same rank.
    in_name = [
        await create_material(
            client, owner, category_id=stone["id"], name=f"Basalt tile {n}",
            properties={"finish": "honed" if n % 2 else "polished"},
        )
        for n in range(15)
    ]  # fmt: skip
    # Ranked lower: the word only in the description.
    in_description = [
        await create_material(
            client, owner, category_id=stone["id"], name=f"Dark tile {n}",
            description="A basalt from the north.", properties={"finish": "honed"},
        )
        for n in range(4)
    ]  # fmt: skip
    gone = in_name[0]
    deleted = await client.delete(f"/api/v1/materials/{gone['id']}", headers=owner.headers)
    assert deleted.status_code == 204

    async def every_page(**params: Any) -> list[dict[str, Any]]:
        return await _every_page(client, owner, q="basalt", **params)

    found = await every_page()
    ids = [item["material"]["id"] for item in found]
    assert len(ids) == len(set(ids))
    assert set(ids) == {m["id"] for m in in_name[1:] + in_description}
    scores = [item["score"] for item in found]
    assert scores == sorted(scores, reverse=True)
    # Names first: every name match outranks every description match.
    assert {item["material"]["id"] for item in found[:14]} == {m["id"] for m in in_name[1:]}
    assert "<mark>" in found[0]["highlight"]["name"]

    honed = await every_page(filter="finish:honed")
    expected = {m["id"] for m in in_name[1:] if m["properties"]["finish"] == "honed"}
    assert {item["material"]["id"] for item in honed} == expected | {
        m["id"] for m in in_description
    }


async def test_a_change_makes_new_columns_and_leaves_those_being_read(
    runtime: Runtime, client: AsyncClient, session: AsyncSession
) -> None:
    owner = await member(runtime, client)
    assert owner.organization is not None
    await act_for(session, organization_id=owner.organization.id)
    shape = facet_index.Shape(faceted=(), numeric=())
    await create_material(client, owner, name="Slate one", status="active")
    before = await facet_index.current(session, owner.organization.id, shape=shape)
    assert int(before.live.sum()) == 1

    await create_material(client, owner, name="Slate two", status="draft")
    after = await facet_index.current(session, owner.organization.id, shape=shape)
    assert after is not before
    assert int(after.live.sum()) == 2
    # A request that began with the first columns reads them as they were.
    assert int(before.live.sum()) == 1
    status, labels = before.single["status"]
    assert [labels.labels[code] for code in status[before.live]] == ["active"]


async def test_a_large_catalog_is_read_in_parts_and_counted_whole(
    runtime: Runtime, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parts of four materials: ten materials take three reads.
    monkeypatch.setattr(facet_index, "PART", 4)
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=SCHEMA)
    for number in range(10):
        await create_material(
            client, owner, category_id=stone["id"], name=f"Basalt {number}",
            code=f"BAS-{number:02d}", status="active" if number % 2 else "draft",
            properties={"finish": FINISHES[number % 3]},
        )  # fmt: skip
    counts = _counts(await _search(client, owner))
    assert counts["total"] == 10
    assert counts["statuses"] == {"active": 5, "draft": 5}
    assert counts["properties"]["finish"] == {"honed": 4, "polished": 3, "brushed": 3}
    # The words of every part are found.
    found = await _search(client, owner, q="basalt")
    assert found["total"] == 10
    assert {item["material"]["code"] for item in found["items"]} == {
        f"BAS-{number:02d}" for number in range(10)
    }


async def test_counts_that_ask_the_database_are_not_kept_when_read_on_the_replica(
    session: AsyncSession,
) -> None:
    repository = SearchRepository(session)
    organization_id = uuid.uuid4()
    browsing, words = SearchQuery(organization_id), SearchQuery(organization_id, text="slate")
    on_text: Any = [("a text property's condition",)]
    filtered = SearchQuery(organization_id, properties=on_text)
    assert all(repository.keeps_counts(query) for query in (browsing, words, filtered))
    # The replica is a moment behind the columns: only counts made from them alone are kept.
    session.info[REPLICA_INFO] = True
    try:
        assert repository.keeps_counts(browsing)
        assert not repository.keeps_counts(words)
        assert not repository.keeps_counts(filtered)
    finally:
        del session.info[REPLICA_INFO]
