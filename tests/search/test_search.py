"""Finding materials as a customer or an editor would: words, filters, facets, suggestions."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import AsyncClient

from kai.catalog.repository import SettingsRepository
from kai.catalog.tasks import reindex
from kai.kit.db import act_for
from kai.kit.jobs.models import Job
from kai.kit.pagination import encode_cursor
from kai.runtime import Runtime
from tests.catalog.factories import TILE_PROPERTIES, create_category, create_material
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database


async def _catalog(client: AsyncClient, owner: Member) -> dict[str, Any]:
    stone = await create_category(client, owner, "Stone", properties=TILE_PROPERTIES)
    marble = await create_category(client, owner, "Marble", parent_id=stone["id"])
    limestone = await create_category(client, owner, "Limestone", parent_id=stone["id"])
    ceramics = await create_category(client, owner, "Ceramics", properties=TILE_PROPERTIES)
    made = {
        "carrara": await create_material(
            client, owner, category_id=marble["id"], name="Carrara honed 60x60", code="CAR-600",
            description="White marble with soft grey veins, honed for bathroom floors.",
            properties={"thickness": 10, "finish": "honed", "frost_resistant": False},
            price="89.00", currency="EUR", tags=["white", "bathroom"], status="active",
        ),
        "calacatta": await create_material(
            client, owner, category_id=marble["id"], name="Calacatta polished slab",
            code="CAL-300",
            description="Bold veining, like Carrara but warmer. <b>Premium</b> & rare.",
            properties={"thickness": 20, "finish": "polished"},
            price="240.00", currency="EUR", tags=["white"], status="active",
        ),
        "creme": await create_material(
            client, owner, category_id=limestone["id"], name="Crème Marfil tumbled",
            code="CRM-100", description="Warm beige limestone tiles for terraces.",
            properties={"thickness": 12, "finish": "tumbled", "frost_resistant": True},
            price="45.50", currency="EUR", tags=["beige", "outdoor"],
        ),
        "porcelain": await create_material(
            client, owner, category_id=ceramics["id"], name="Urban grey porcelain",
            code="URB-900", description="Concrete-look porcelain tile, rectified edges.",
            properties={"thickness": 9, "finish": "brushed", "frost_resistant": True},
            price="32.00", currency="EUR", tags=["grey", "outdoor"], status="active",
        ),
    }  # fmt: skip
    return {"stone": stone, "marble": marble, "limestone": limestone, "materials": made}


async def _search(client: AsyncClient, owner: Member, query: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/search?{query}", headers=owner.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _codes(results: dict[str, Any]) -> list[str]:
    return [hit["material"]["code"] for hit in results["items"]]


async def test_words_find_materials_name_and_code_first(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _catalog(client, owner)
    # Named Carrara beats merely mentioning it.
    assert _codes(await _search(client, owner, "q=carrara")) == ["CAR-600", "CAL-300"]
    # Stemmed: "tiles" finds "tile"; accents and case do not matter either way.
    assert set(_codes(await _search(client, owner, "q=tiles"))) == {"CRM-100", "URB-900"}
    assert _codes(await _search(client, owner, "q=creme marfil")) == ["CRM-100"]
    assert _codes(await _search(client, owner, "q=CRÈME")) == ["CRM-100"]
    # The code, and the category path (Stone > Limestone) and tags are searched too.
    assert _codes(await _search(client, owner, "q=URB-900")) == ["URB-900"]
    assert set(_codes(await _search(client, owner, "q=stone"))) == {"CAR-600", "CAL-300", "CRM-100"}
    assert set(_codes(await _search(client, owner, "q=outdoor"))) == {"CRM-100", "URB-900"}


async def test_web_search_syntax(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    await _catalog(client, owner)
    assert _codes(await _search(client, owner, 'q="grey veins"')) == ["CAR-600"]
    assert set(_codes(await _search(client, owner, "q=calacatta or tumbled"))) == {
        "CAL-300", "CRM-100",
    }  # fmt: skip
    assert _codes(await _search(client, owner, "q=marble -polished")) == ["CAR-600"]
    nothing = await _search(client, owner, "q=granite")
    assert (nothing["items"], nothing["total"]) == ([], 0)


async def test_filters_narrow_and_facets_count_the_matches(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    catalog = await _catalog(client, owner)
    stone = catalog["stone"]["id"]
    in_stone = await _search(client, owner, f"category_id={stone}&sort=name")
    assert _codes(in_stone) == ["CAL-300", "CAR-600", "CRM-100"]
    assert in_stone["total"] == 3
    facets = in_stone["facets"]
    categories = {facet["name"]: facet["count"] for facet in facets["categories"]}
    assert categories == {"Stone": 3, "Marble": 2, "Limestone": 1}
    finish = next(p for p in facets["properties"] if p["key"] == "finish")
    assert [(v["value"], v["count"]) for v in finish["values"]] == [
        ("polished", 1), ("honed", 1), ("tumbled", 1),
    ]  # fmt: skip
    assert {t["value"]: t["count"] for t in facets["tags"]} == {
        "white": 2, "bathroom": 1, "beige": 1, "outdoor": 1,
    }  # fmt: skip
    price = next(r for r in facets["ranges"] if r["key"] == "price")
    assert (price["minimum"], price["maximum"]) == (45.5, 240.0)
    assert sum(bucket["count"] for bucket in price["buckets"]) == 3

    async def codes(query: str) -> set[str]:
        return set(_codes(await _search(client, owner, query)))

    assert await codes("filter=finish:honed") == {"CAR-600"}
    assert await codes("filter=frost_resistant:true") == {"CRM-100", "URB-900"}
    assert await codes("filter=thickness>=12") == {"CAL-300", "CRM-100"}
    assert await codes("filter=thickness<=0.4in") == {"CAR-600", "URB-900"}
    assert await codes("filter=thickness>=10&filter=thickness<=12") == {"CAR-600", "CRM-100"}
    assert await codes("price_max=50") == {"CRM-100", "URB-900"}
    assert await codes("tag=white&tag=bathroom") == {"CAR-600"}
    assert await codes("status=active&q=tile") == {"URB-900"}
    assert await codes("q=marble&filter=finish:polished") == {"CAL-300"}
    # Tags with words: the full-text matches' tags compared as a PostgreSQL array (was a 500).
    assert await codes("q=marble&tag=white") == {"CAR-600", "CAL-300"}
    assert await codes("q=marble&tag=bathroom") == {"CAR-600"}


async def test_bad_filters_are_refused_clearly(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    await _catalog(client, owner)
    for query in (
        "filter=colour:red",
        "filter=finish:sandblasted",
        "filter=thickness>=thick",
        "filter=thickness>=2kg",
        "filter=finish>=2",
        "filter=nonsense",
        "mode=magic",
        "cursor=not-a-cursor",
    ):
        response = await client.get(f"/api/v1/search?{query}", headers=owner.headers)
        assert response.status_code in (400, 422), query
        assert response.headers["content-type"] == "application/problem+json"


async def test_sorting_and_pages(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    await _catalog(client, owner)
    by_price = await _search(client, owner, "sort=price_asc")
    assert _codes(by_price) == ["URB-900", "CRM-100", "CAR-600", "CAL-300"]
    assert _codes(await _search(client, owner, "sort=price_desc"))[0] == "CAL-300"

    seen: list[str] = []
    query = "sort=name&limit=3&facets=false"
    while True:
        page = await _search(client, owner, query)
        seen += _codes(page)
        if page["next_cursor"] is None:
            break
        query = f"sort=name&limit=3&facets=false&cursor={page['next_cursor']}"
    assert seen == ["CAL-300", "CAR-600", "CRM-100", "URB-900"]

    ranked = await _search(client, owner, "q=marble&limit=1")
    rest = await _search(client, owner, f"q=marble&limit=1&cursor={ranked['next_cursor']}")
    assert set(_codes(ranked) + _codes(rest)) == {"CAR-600", "CAL-300"}

    # A cursor of the right shape holding nothing is no cursor, in every mode of words.
    empty = encode_cursor([None, None])
    for mode in ("fulltext", "hybrid"):
        refused = await client.get(
            f"/api/v1/search?q=marble&mode={mode}&cursor={empty}", headers=owner.headers
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["type"].endswith("/invalid-cursor")
    # Browsing's cursors too (pages chosen in memory): empty, or a moment without its offset
    # (the server's own always carry one).
    some_id = uuid.uuid4()
    written_by_hand = base64.urlsafe_b64encode(b'[{"t": 5}, {"u": 7}]').decode().rstrip("=")
    for cursor, sort in (
        (empty, "newest"),
        (empty, "price_desc"),
        (encode_cursor([datetime(2026, 1, 1), some_id]), "newest"),
        (written_by_hand, "newest"),
    ):
        refused = await client.get(
            f"/api/v1/search?sort={sort}&cursor={cursor}", headers=owner.headers
        )
        assert refused.status_code == 400, (sort, refused.text)
        assert refused.json()["type"].endswith("/invalid-cursor")
    # One the server wrote is taken back.
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    taken = await client.get(
        f"/api/v1/search?sort=newest&cursor={encode_cursor([moment, some_id])}",
        headers=owner.headers,
    )
    assert taken.status_code == 200, taken.text


async def test_snippets_mark_the_matches_and_escape_the_rest(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _catalog(client, owner)
    hit = (await _search(client, owner, "q=premium"))["items"][0]
    description = hit["highlight"]["description"]
    assert "<mark>Premium</mark>" in description
    # The snippet is safe to put in a page as it is: no markup but the marks.
    assert "&amp; rare" in description
    assert "<b>" not in description
    named = (await _search(client, owner, "q=carrara"))["items"][0]
    assert named["highlight"]["name"].startswith("<mark>Carrara</mark>")


async def test_search_sees_only_live_materials_of_ones_own_organization(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    catalog = await _catalog(client, owner)
    other = await member(runtime, client)
    await create_material(client, other, name="Carrara from elsewhere", code="CAR-600")
    await client.delete(
        f"/api/v1/materials/{catalog['materials']['calacatta']['id']}", headers=owner.headers
    )
    assert _codes(await _search(client, owner, "q=carrara")) == ["CAR-600"]
    assert (await _search(client, other, "q=carrara"))["total"] == 1
    # Suggestions too (both searches read past row-level security, scoped by themselves).
    theirs = await client.get("/api/v1/search/suggest?q=calacatta", headers=other.headers)
    assert theirs.json()["suggestions"] == []


async def test_renaming_a_category_reindexes_its_materials_in_a_job(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    catalog = await _catalog(client, owner)
    assert _codes(await _search(client, owner, "q=travertine")) == []
    renamed = await client.patch(
        f"/api/v1/categories/{catalog['stone']['id']}",
        json={"name": "Travertine"},
        headers=owner.headers,
    )
    assert renamed.status_code == 200, renamed.text

    # The request rewrote nothing itself: it queued one heavy job for the subtree.
    queued = await client.get(
        "/api/v1/jobs", params={"kind": "catalog.reindex_documents"}, headers=owner.headers
    )
    [listed] = queued.json()["items"]
    assert listed["status"] == "queued"
    assert _codes(await _search(client, owner, "q=travertine")) == []

    # What the job does, called directly: a statement per chunk, the subtree's materials only.
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        job = await session.get(Job, uuid.UUID(listed["id"]))
        assert job is not None
        assert set(job.params["category_ids"]) == {
            catalog[name]["id"] for name in ("stone", "marble", "limestone")
        }
        rewritten = await reindex(session, organization_id=owner.organization_id, params=job.params)
        assert rewritten == 3  # not Ceramics' porcelain
        every = SettingsRepository(session)
        assert await every.reindex_materials(owner.organization_id, chunk=2) == 4
    assert sorted(_codes(await _search(client, owner, "q=travertine"))) == [
        "CAL-300",
        "CAR-600",
        "CRM-100",
    ]


async def test_a_misspelt_word_is_searched_as_the_catalog_spells_it(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _catalog(client, owner)

    typo = await _search(client, owner, "q=marbel")
    # Found as "marble": Carrara says it, Calacatta is filed under Marble; and said so.
    assert set(_codes(typo)) == {"CAR-600", "CAL-300"}
    assert typo["corrected_query"] == "marble"
    carrara = next(hit for hit in typo["items"] if hit["material"]["code"] == "CAR-600")
    assert "<mark>marble</mark>" in carrara["highlight"]["description"]
    # Each word on its own; the rest of the query stays as it was typed.
    both = await _search(client, owner, "q=Carrara marbel&mode=fulltext")
    assert _codes(both) == ["CAR-600", "CAL-300"]  # Calacatta is "like Carrara"
    assert both["corrected_query"] == "Carrara marble"
    swapped = await _search(client, owner, "q=limestnoe")  # two letters swapped
    assert (_codes(swapped), swapped["corrected_query"]) == (["CRM-100"], "limestone")
    # Words spelt as the catalog spells them are not "corrected", even those it holds once.
    for spelt in ("marble", "carrara", "honed", "tiles", "creme marfil"):
        assert (await _search(client, owner, f"q={spelt}"))["corrected_query"] is None, spelt
    # Nor are words the catalog has nothing like, phrases and excluded words.
    nothing = await _search(client, owner, "q=granite")
    assert (nothing["total"], nothing["corrected_query"]) == (0, None)
    assert (await _search(client, owner, 'q="marbel"'))["corrected_query"] is None
    assert (await _search(client, owner, "q=carrara -marbel"))["corrected_query"] is None
    # A search exported downloads what it showed.
    exported = await client.get(
        "/api/v1/catalog/exports", params={"q": "marbel", "format": "json"}, headers=owner.headers
    )
    assert {item["code"] for item in exported.json()["materials"]} == {"CAR-600", "CAL-300"}


async def test_corrections_follow_the_catalogs_words(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    catalog = await _catalog(client, owner)
    assert (await _search(client, owner, "q=travertien"))["total"] == 0
    silver = await create_material(client, owner, name="Silver travertine", code="TRV-1")

    found = await _search(client, owner, "q=travertien")
    assert (_codes(found), found["corrected_query"]) == (["TRV-1"], "travertine")
    # Gone from the catalog, gone from its words.
    deleted = await client.delete(f"/api/v1/materials/{silver['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    gone = await _search(client, owner, "q=travertien")
    assert (gone["total"], gone["corrected_query"]) == (0, None)
    # A category's name is a catalog word too.
    renamed = await client.patch(
        f"/api/v1/categories/{catalog['limestone']['id']}",
        json={"name": "Sandstone"},
        headers=owner.headers,
    )
    assert renamed.status_code == 200, renamed.text
    assert (await _search(client, owner, "q=sandstnoe"))["corrected_query"] == "sandstone"


async def test_suggestions_complete_and_forgive_typos(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _catalog(client, owner)

    async def suggested(typed: str) -> list[tuple[str, str]]:
        response = await client.get(f"/api/v1/search/suggest?q={typed}", headers=owner.headers)
        assert response.status_code == 200, response.text
        return [(s["kind"], s["text"]) for s in response.json()["suggestions"]]

    assert ("material", "Carrara honed 60x60") in await suggested("carr")
    assert ("category", "Marble") in await suggested("marbel")
    assert ("material", "Calacatta polished slab") in await suggested("calacata")
    assert ("material", "Crème Marfil tumbled") in await suggested("creme")
    assert ("material", "Urban grey porcelain") in await suggested("URB-9")
    assert await suggested("zzzzqqq") == []


async def test_browsing_without_words_pages_through_everything(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _catalog(client, owner)
    seen: list[str] = []
    query = "limit=3&facets=false"
    while True:
        page = await _search(client, owner, query)
        seen += _codes(page)
        if page["next_cursor"] is None:
            break
        query = f"limit=3&facets=false&cursor={page['next_cursor']}"
    # Newest first, each once.
    assert seen == ["URB-900", "CRM-100", "CAL-300", "CAR-600"]
