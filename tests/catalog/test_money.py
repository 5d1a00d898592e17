"""Prices read one way everywhere: a decimal string with exactly the currency's decimals
(ISO 4217: `39.90` EUR, `4500` JPY, `12.500` KWD), in a material, a search hit, an export and
a version's old and new values; and a price finer than its currency is refused, not rounded."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text

from kai.kit.db import act_for
from kai.runtime import Runtime
from tests.catalog.factories import create_material
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database

# As sent (numbers and strings alike), and as every answer writes them.
PRICES = [
    ("EUR-1", 39.9, "EUR", "39.90"),
    ("JPY-1", "4500.00", "JPY", "4500"),
    ("KWD-1", "12.5", "KWD", "12.500"),
    ("USD-1", 100, "usd", "100.00"),
]


@pytest.fixture
async def owner(runtime: Runtime, client: AsyncClient) -> Member:
    return await member(runtime, client)


async def _priced(client: AsyncClient, owner: Member) -> dict[str, dict[str, Any]]:
    return {
        code: await create_material(
            client, owner, code=code, name=f"Marble {code}", price=price, currency=currency
        )
        for code, price, currency, _ in PRICES
    }


async def test_a_price_has_exactly_its_currencys_decimals_wherever_it_is_shown(
    client: AsyncClient, owner: Member
) -> None:
    made = await _priced(client, owner)
    shown = {code: written for code, _, _, written in PRICES}

    assert {code: material["price"] for code, material in made.items()} == shown
    assert made["USD-1"]["currency"] == "USD"
    listed = (await client.get("/api/v1/materials", headers=owner.headers)).json()["items"]
    assert {item["code"]: item["price"] for item in listed} == shown
    found = await client.get(
        "/api/v1/search", params={"q": "marble", "mode": "fulltext"}, headers=owner.headers
    )
    assert {hit["material"]["code"]: hit["material"]["price"] for hit in found.json()["items"]} == (
        shown
    )
    exported = await client.get("/api/v1/catalog/exports?format=csv", headers=owner.headers)
    rows = csv.DictReader(io.StringIO(exported.text))
    assert {row["code"]: row["price"] for row in rows} == shown
    exported = await client.get("/api/v1/catalog/exports?format=json", headers=owner.headers)
    assert {m["code"]: m["price"] for m in exported.json()["materials"]} == shown


async def test_a_version_shows_each_price_in_the_currency_it_was_in(
    client: AsyncClient, owner: Member
) -> None:
    material = await create_material(client, owner, price="39.9", currency="EUR")
    url = f"/api/v1/materials/{material['id']}"
    cheaper = await client.patch(url, json={"price": 29.5}, headers=owner.headers)
    assert cheaper.status_code == 200, cheaper.text
    in_yen = await client.patch(
        url, json={"price": "4500", "currency": "JPY"}, headers=owner.headers
    )
    assert in_yen.status_code == 200, in_yen.text

    versions = (await client.get(f"{url}/versions", headers=owner.headers)).json()["items"]

    assert [version["changes"]["price"] for version in versions] == [
        {"old": "29.50", "new": "4500"},
        {"old": "39.90", "new": "29.50"},
        {"old": None, "new": "39.90"},
    ]
    assert versions[0]["changes"]["currency"] == {"old": "EUR", "new": "JPY"}


async def test_a_price_finer_than_its_currency_is_refused_not_rounded(
    runtime: Runtime, client: AsyncClient, owner: Member
) -> None:
    for price, currency in (("39.905", "EUR"), (39.9, "JPY"), ("12.5005", "KWD")):
        refused = await client.post(
            "/api/v1/materials",
            json={"name": "Carrara", "code": "CAR-1", "price": price, "currency": currency},
            headers=owner.headers,
        )
        assert refused.status_code == 422, (price, currency, refused.text)
        [error] = refused.json()["errors"]
        assert error["loc"] == ["body", "price"]
        assert f"{currency} has" in error["msg"]
    # Trailing zeros are no precision.
    fine = await create_material(client, owner, price="39.900", currency="EUR")
    assert fine["price"] == "39.90"

    url = f"/api/v1/materials/{fine['id']}"
    finer = await client.patch(url, json={"price": "39.999"}, headers=owner.headers)
    assert finer.status_code == 422, finer.text
    assert finer.json()["type"].endswith("/price-too-precise")
    assert finer.json()["errors"][0]["loc"] == ["body", "price"]
    # 39.90 is no amount of yen: changing the currency alone is refused too.
    to_yen = await client.patch(url, json={"currency": "JPY"}, headers=owner.headers)
    assert to_yen.status_code == 422, to_yen.text
    assert to_yen.json()["errors"][0]["loc"] == ["body", "currency"]
    unchanged = (await client.get(url, headers=owner.headers)).json()
    assert (unchanged["price"], unchanged["currency"], unchanged["version"]) == ("39.90", "EUR", 1)

    # In a bulk write or an import, the record is refused at its field.
    bulk = await client.post(
        "/api/v1/materials/bulk",
        json={"materials": [{"code": "Y-1", "name": "Yen", "price": "10.5", "currency": "JPY"}]},
        headers=owner.headers,
    )
    assert bulk.status_code == 422, bulk.text
    assert [error["loc"] for error in bulk.json()["errors"]] == [["body", "materials", 0, "price"]]

    # A price stored finer before such prices were refused is shown whole, never rounded.
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        await session.execute(
            text("UPDATE materials SET price = 39.905 WHERE id = :id"), {"id": fine["id"]}
        )
    assert (await client.get(url, headers=owner.headers)).json()["price"] == "39.905"
