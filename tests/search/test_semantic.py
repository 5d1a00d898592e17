"""Finding materials by meaning: embeddings kept current by a job, semantic and hybrid search."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text

from kai.catalog import transfers
from kai.identity.actor import Actor
from kai.identity.permissions import Permission
from kai.kit.db import act_for
from kai.kit.jobs.models import Job
from kai.runtime import Runtime
from kai.search import semantic, service
from tests.catalog.factories import create_category, create_material
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database

BATHROOM_QUERY = "warm grey stone for a bathroom floor"


async def _catalog(client: AsyncClient, owner: Member) -> dict[str, dict[str, Any]]:
    stone = await create_category(client, owner, "Stone")
    limestone = await create_category(client, owner, "Limestone", parent_id=stone["id"])
    wood = await create_category(client, owner, "Wood")
    metal = await create_category(client, owner, "Metal")
    textiles = await create_category(client, owner, "Textiles")
    return {
        "jura": await create_material(
            client, owner, category_id=limestone["id"], name="Jura Beige honed 60x60",
            code="JUR-600",
            description="Sand-coloured limestone with fossil flecks, honed, for wet rooms.",
            status="active",
        ),
        "oak": await create_material(
            client, owner, category_id=wood["id"], name="Rustic oak plank", code="OAK-200",
            description="Wide engineered oak boards, brushed and oiled, for living rooms.",
            status="active",
        ),
        "brass": await create_material(
            client, owner, category_id=metal["id"], name="Brushed brass sheet", code="BRS-010",
            description="Architectural brass panel for counters, doors and trim.",
            status="active",
        ),
        "velvet": await create_material(
            client, owner, category_id=textiles["id"], name="Red velvet", code="VEL-001",
            description="Plush upholstery fabric for sofas and headboards.", status="active",
        ),
        "categories": {"wood": wood, "stone": stone},
    }  # fmt: skip


async def _embed(runtime: Runtime, owner: Member, batch: int = 500) -> dict[str, Any]:
    """What the embedding job does, called directly."""
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        return await semantic.refresh_embeddings(
            session,
            organization_id=owner.organization_id,
            embedder=semantic.query_embeddings().embedder,
            batch=batch,
        )


async def _search(client: AsyncClient, owner: Member, **params: str) -> dict[str, Any]:
    response = await client.get("/api/v1/search", params=params, headers=owner.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _codes(results: dict[str, Any]) -> list[str]:
    return [hit["material"]["code"] for hit in results["items"]]


async def test_meaning_finds_a_material_whose_words_do_not_match(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _catalog(client, owner)
    assert (await _embed(runtime, owner))["embedded"] == 4

    by_words = await _search(client, owner, q=BATHROOM_QUERY, mode="fulltext")
    assert by_words["total"] == 0

    by_meaning = await _search(client, owner, q=BATHROOM_QUERY, mode="semantic")
    assert by_meaning["mode"] == "semantic"
    assert _codes(by_meaning)[0] == "JUR-600"
    scores = [hit["score"] for hit in by_meaning["items"]]
    assert scores == sorted(scores, reverse=True)
    assert 0 < scores[-1] <= scores[0] <= 1

    # Hybrid is the default: the meaning carries the limestone even though no word matched.
    default = await _search(client, owner, q=BATHROOM_QUERY)
    assert default["mode"] == "hybrid"
    assert _codes(default)[0] == "JUR-600"
    assert default["total"] == len(default["items"])


async def test_hybrid_fuses_the_two_rankings_by_reciprocal_rank(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _catalog(client, owner)
    await _embed(runtime, owner)
    k = runtime.settings.search.rrf_k

    # The words match the brass sheet alone, and it is also the nearest by meaning: first in
    # both lists, it scores 2 / (k + 1); everything else is in one list only.
    results = await _search(client, owner, q="brass")
    assert _codes(results)[0] == "BRS-010"
    assert results["items"][0]["score"] == pytest.approx(2 / (k + 1))
    assert results["items"][0]["highlight"]["name"] == "Brushed <mark>brass</mark> sheet"
    assert all(hit["score"] <= 1 / (k + 1) for hit in results["items"][1:])
    # Full-text alone finds the brass sheet and nothing else.
    assert _codes(await _search(client, owner, q="brass", mode="fulltext")) == ["BRS-010"]


async def test_filters_and_facets_apply_to_semantic_results(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    made = await _catalog(client, owner)
    await _embed(runtime, owner)
    wood = made["categories"]["wood"]

    within = await _search(
        client, owner, q="flooring", mode="semantic", category_id=wood["id"], facets="true"
    )
    assert _codes(within) == ["OAK-200"]
    assert within["total"] == 1
    assert [(facet["name"], facet["count"]) for facet in within["facets"]["categories"]] == [
        ("Wood", 1)
    ]


async def test_a_changed_material_is_embedded_again_and_a_deleted_one_is_gone(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    made = await _catalog(client, owner)
    await _embed(runtime, owner)
    assert (await _embed(runtime, owner))["embedded"] == 0

    jura = made["jura"]
    changed = await client.patch(
        f"/api/v1/materials/{jura['id']}",
        json={"description": "Iridescent glass mosaic for pool walls."},
        headers=owner.headers,
    )
    assert changed.status_code == 200, changed.text
    assert (await _embed(runtime, owner))["embedded"] == 1
    pool = await _search(client, owner, q="tiles for a swimming pool", mode="semantic")
    assert _codes(pool)[0] == "JUR-600"

    deleted = await client.delete(f"/api/v1/materials/{jura['id']}", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    assert "JUR-600" not in _codes(
        await _search(client, owner, q="tiles for a swimming pool", mode="semantic")
    )


async def test_answers_by_meaning_are_kept_until_the_embeddings_change(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    runtime, client = committed_runtime, committed_client
    owner = await member(runtime, client)
    made = await _catalog(client, owner)
    await _embed(runtime, owner)
    before = {}
    for mode in ("semantic", "hybrid"):
        before[mode] = await _search(client, owner, q=BATHROOM_QUERY, mode=mode)
        assert _codes(before[mode])[0] == "JUR-600"
        assert "VEL-001" not in _codes(before[mode])
        # Asked again, the same (kept with the catalog's columns).
        assert await _search(client, owner, q=BATHROOM_QUERY, mode=mode) == before[mode]

    # The velvet comes to mean what the limestone means (as a new text model might make it),
    # the materials themselves unchanged.
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        await session.execute(
            text(
                "UPDATE material_text_embeddings SET embedding = (SELECT embedding"
                " FROM material_text_embeddings WHERE material_id = :jura)"
                " WHERE material_id = :velvet"
            ),
            {"jura": uuid.UUID(made["jura"]["id"]), "velvet": uuid.UUID(made["velvet"]["id"])},
        )
    for mode in ("semantic", "hybrid"):
        after = await _search(client, owner, q=BATHROOM_QUERY, mode=mode)
        assert "VEL-001" in _codes(after)[:2], mode
        assert after["total"] == before[mode]["total"] + 1, mode


async def test_a_search_in_a_transaction_of_its_own_reads_the_embeddings_version_itself(
    runtime: Runtime, client: AsyncClient
) -> None:
    # A search that began its transaction before searching takes no statement on the
    # driver: it reads where the embeddings stand in its own session, and finds as the API.
    owner = await member(runtime, client)
    await _catalog(client, owner)
    await _embed(runtime, owner)
    through_api = await _search(client, owner, q=BATHROOM_QUERY)
    actor = Actor(
        kind="user", organization_id=owner.organization_id,
        permissions=frozenset({Permission.MATERIALS_READ}), user_id=owner.user.id, role="owner",
    )  # fmt: skip
    request = service.SearchRequest(text=BATHROOM_QUERY, mode="hybrid", sort="relevance")
    async with runtime.session_factory() as session:
        await act_for(session, organization_id=owner.organization_id)
        for _ in range(2):
            found = await service.search(
                session, actor=actor, request=request, driver=runtime.driver
            )
            assert [hit.material.code for hit in found.items] == _codes(through_api)
            assert found.total == through_api["total"]


async def test_renaming_a_category_refreshes_its_materials_meaning(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    made = await _catalog(client, owner)
    await _embed(runtime, owner)
    wood = made["categories"]["wood"]
    renamed = await client.patch(
        f"/api/v1/categories/{wood['id']}", json={"name": "Timber"}, headers=owner.headers
    )
    assert renamed.status_code == 200, renamed.text
    assert (await _embed(runtime, owner))["embedded"] == 1


async def test_another_organizations_materials_are_never_found(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    other = await member(runtime, client)
    await _catalog(client, other)
    await _embed(runtime, other)
    await create_material(
        client, owner, name="Grey slate", code="SLA-1", description="Riven slate tiles."
    )
    await _embed(runtime, owner)

    for mode in ("semantic", "hybrid"):
        results = await _search(client, owner, q=BATHROOM_QUERY, mode=mode)
        assert _codes(results) == ["SLA-1"], mode


async def test_writes_queue_one_embedding_job_and_a_large_catalog_continues_in_follow_ups(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _catalog(client, owner)

    async def waiting() -> int:
        response = await client.get(
            "/api/v1/jobs",
            params={"kind": "search.embed_materials", "status": "queued"},
            headers=owner.headers,
        )
        assert response.status_code == 200, response.text
        return len(response.json()["items"])

    # Four materials written, one refresh waiting: it will embed all four.
    assert await waiting() == 1
    first = await _embed(runtime, owner, batch=3)
    assert first == {"embedded": 3, "follow_up": True}
    # The pending one was already waiting, so the follow-up added none.
    assert await waiting() == 1
    assert await _embed(runtime, owner, batch=3) == {"embedded": 1, "follow_up": False}


async def test_semantic_search_without_embeddings_yet_finds_by_words_in_hybrid(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _catalog(client, owner)
    # No job has run: hybrid is full-text alone, semantic finds nothing yet.
    assert _codes(await _search(client, owner, q="oak")) == ["OAK-200"]
    assert (await _search(client, owner, q="oak", mode="semantic"))["total"] == 0


async def test_an_imported_catalog_is_embedded_by_one_queued_refresh(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    rows = "code,name,description\n" + "".join(
        f"IMP-{number},Imported tile {number},Glazed wall tile number {number}.\n"
        for number in range(30)
    )
    queued = await client.post(
        "/api/v1/catalog/imports",
        files={"file": ("catalog.csv", rows.encode(), "text/csv")},
        data={"mode": "all_or_nothing", "dry_run": "false"},
        headers=owner.headers,
    )
    assert queued.status_code == 202, queued.text
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        job = await session.get(Job, uuid.UUID(queued.json()["job"]["id"]))
        assert job is not None
        await transfers.run_import(
            session, runtime.storage, organization_id=owner.organization_id, params=job.params
        )
    waiting = await client.get(
        "/api/v1/jobs",
        params={"kind": "search.embed_materials", "status": "queued"},
        headers=owner.headers,
    )
    assert len(waiting.json()["items"]) == 1
    assert (await _embed(runtime, owner))["embedded"] == 30


async def test_without_the_language_model_hybrid_uses_the_words_and_semantic_says_why(
    runtime: Runtime, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_installed() -> semantic.TextEmbedder:
        raise RuntimeError("The embedding model is missing: install it.")

    monkeypatch.setattr(semantic, "_QUERIES", semantic.QueryEmbeddings(loader=not_installed))
    owner = await member(runtime, client)
    await _catalog(client, owner)
    assert _codes(await _search(client, owner, q="brass")) == ["BRS-010"]
    response = await client.get(
        "/api/v1/search", params={"q": "brass", "mode": "semantic"}, headers=owner.headers
    )
    assert response.status_code == 503
    assert response.json()["type"].endswith("semantic-search-unavailable")
    assert "install" in response.json()["detail"]
