"""Projects as their users meet them: a client job collecting the photos recognized for it and
the materials chosen, seen only by the teams it is shared with."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from kai.kit.db import act_for
from kai.recognition.models import Recognition, RecognitionBatch, RecognitionBatchItem
from kai.runtime import Runtime
from tests.catalog.factories import create_category, create_material
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database


async def _recognition(runtime: Runtime, owner: Member, label: str = "Marble") -> str:
    """A recognition as the recognize route stores it (no model needed to file one)."""
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        recognition = Recognition(
            organization_id=owner.organization_id,
            image_key=f"{owner.organization_id}/users/uploads/recognitions/{uuid.uuid4()}.jpg",
            sha256="0" * 64,
            content_type="image/jpeg",
            width=64,
            height=48,
            label=label,
            confidence=0.9,
            unknown=False,
            predictions=[{"label": label, "category_id": None, "confidence": 0.9}],
            similar=[],
            timings={},
        )
        session.add(recognition)
        await session.flush()
        return str(recognition.id)


async def _batch_of(runtime: Runtime, owner: Member, recognition_id: str) -> str:
    """A finished batch (in no project) whose one photo became `recognition_id`."""
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        batch = RecognitionBatch(
            organization_id=owner.organization_id, status="succeeded", total=1, done=1
        )
        session.add(batch)
        await session.flush()
        session.add(
            RecognitionBatchItem(
                batch_id=batch.id,
                position=1,
                organization_id=owner.organization_id,
                file_name="site.jpg",
                image_key=f"{owner.organization_id}/users/uploads/batches/{batch.id}/1.jpg",
                status="recognized",
                recognition_id=uuid.UUID(recognition_id),
            )
        )
        return str(batch.id)


async def _project(http: AsyncClient, who: Member, **fields: Any) -> dict[str, Any]:
    created = await http.post(
        "/api/v1/projects", json={"name": "Villa Rossi", **fields}, headers=who.headers
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def _team(client: AsyncClient, owner: Member, name: str, *people: Member) -> str:
    created = await client.post("/api/v1/teams", json={"name": name}, headers=owner.headers)
    assert created.status_code == 201, created.text
    team_id: str = created.json()["id"]
    for person in people:
        added = await client.put(
            f"/api/v1/teams/{team_id}/members/{person.user.id}", headers=owner.headers
        )
        assert added.status_code in (200, 204), added.text
    return team_id


async def _ids(client: AsyncClient, who: Member, url: str, **params: Any) -> list[str]:
    response = await client.get(url, params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    return [item.get("id") or item["material_id"] for item in response.json()["items"]]


async def test_a_project_collects_recognitions_and_chosen_materials(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    project = await _project(client, owner, client="Rossi family", description="Kitchen, 2 baths")
    assert project["status"] == "active"
    assert project["team_ids"] == []
    assert (project["recognition_count"], project["material_count"]) == (0, 0)
    kitchen = await _recognition(runtime, owner)
    loose = await _recognition(runtime, owner, label="Oak")
    category = await create_category(client, owner, "Marble")
    carrara = await create_material(client, owner, category_id=category["id"], name="Carrara")
    url = f"/api/v1/projects/{project['id']}"

    filed = await client.put(f"{url}/recognitions/{kitchen}", headers=owner.headers)
    assert filed.status_code == 204, filed.text
    chosen = await client.put(
        f"{url}/materials/{carrara['id']}",
        json={"quantity": 12.5, "unit": "m2", "note": "honed", "recognition_id": kitchen},
        headers=owner.headers,
    )
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["quantity"] == 12.5
    assert chosen.json()["name"] == "Carrara"
    assert chosen.json()["recognition_id"] == kitchen
    # PATCH changes only what it sends: the note stays, and so does the recognition.
    patched = await client.patch(
        f"{url}/materials/{carrara['id']}", json={"quantity": "14.250"}, headers=owner.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["quantity"] == 14.25
    assert (patched.json()["unit"], patched.json()["note"]) == ("m2", "honed")
    assert patched.json()["recognition_id"] == kitchen
    noted = await client.patch(
        f"{url}/materials/{carrara['id']}",
        json={"note": "honed, sealed", "unit": None},
        headers=owner.headers,
    )
    assert (noted.json()["quantity"], noted.json()["unit"]) == (14.25, None)
    assert noted.json()["note"] == "honed, sealed"
    # Choosing it again with PUT replaces the whole entry; it is still one line.
    again = await client.put(
        f"{url}/materials/{carrara['id']}", json={"quantity": "14.250"}, headers=owner.headers
    )
    assert again.json()["quantity"] == 14.25
    assert again.json()["note"] == ""
    assert again.json()["recognition_id"] is None
    unchosen = await client.patch(
        f"{url}/materials/{uuid.uuid4()}", json={"note": "x"}, headers=owner.headers
    )
    assert unchosen.status_code == 404

    assert await _ids(client, owner, "/api/v1/recognitions", project_id=project["id"]) == [kitchen]
    assert set(await _ids(client, owner, "/api/v1/recognitions")) == {kitchen, loose}
    read = await client.get(url, headers=owner.headers)
    assert (read.json()["recognition_count"], read.json()["material_count"]) == (1, 1)
    shown = await client.get(f"/api/v1/recognitions/{kitchen}", headers=owner.headers)
    assert shown.json()["project_id"] == project["id"]
    assert await _ids(client, owner, f"{url}/materials") == [carrara["id"]]
    assert await _ids(client, owner, "/api/v1/projects", q="rossi") == [project["id"]]
    assert await _ids(client, owner, "/api/v1/projects", q="%") == []

    # Archived: still readable, but nothing new is filed in it until it is reopened.
    archived = await client.patch(url, json={"status": "archived"}, headers=owner.headers)
    assert archived.json()["status"] == "archived"
    refused = await client.put(f"{url}/recognitions/{loose}", headers=owner.headers)
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("project-archived")
    assert await _ids(client, owner, "/api/v1/projects", status="active") == []
    await client.patch(url, json={"status": "active"}, headers=owner.headers)
    assert (
        await client.put(f"{url}/recognitions/{loose}", headers=owner.headers)
    ).status_code == 204

    taken_out = await client.delete(f"{url}/recognitions/{loose}", headers=owner.headers)
    assert taken_out.status_code == 204
    assert (
        await client.delete(f"{url}/recognitions/{loose}", headers=owner.headers)
    ).status_code == 404
    removed = await client.delete(f"{url}/materials/{carrara['id']}", headers=owner.headers)
    assert removed.status_code == 204
    assert await _ids(client, owner, f"{url}/materials") == []

    # Deleting the project leaves its recognitions, filed nowhere.
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert (await client.get(url, headers=owner.headers)).status_code == 404
    kept = await client.get(f"/api/v1/recognitions/{kitchen}", headers=owner.headers)
    assert kept.status_code == 200
    assert kept.json()["project_id"] is None


async def test_a_project_shows_what_its_materials_cost_and_exports_them(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone")
    marble = await create_category(client, owner, "Marble", parent_id=stone["id"])
    made = {
        "carrara": await create_material(
            client, owner, category_id=marble["id"], name="Carrara", code="CAR-1",
            price="89.90", currency="EUR",
        ),
        "grout": await create_material(
            client, owner, category_id=stone["id"], name="=1+1 grout", code="GR-1",
            price="0.35", currency="EUR",
        ),
        "kyoto": await create_material(
            client, owner, name="Kyoto tile", code="KY-1", price="4500", currency="JPY"
        ),
        "sample": await create_material(client, owner, name="Sample", code="SA-1"),
        "basalt": await create_material(
            client, owner, name="Basalt", code="BA-1", price="30.00", currency="EUR"
        ),
    }  # fmt: skip
    project = await _project(client, owner)
    url = f"/api/v1/projects/{project['id']}"
    lines = {
        "carrara": {"quantity": 12.5, "unit": "m2", "note": "honed"},
        # 1.5 x 0.35 = 0.525: halves round up, as invoices round them.
        "grout": {"quantity": 1.5, "unit": "kg", "note": "@ the door"},
        "kyoto": {"quantity": 3, "unit": "pieces"},
        "sample": {"quantity": 5},  # no price: no line total
        "basalt": {"note": "ask for a quote"},  # no quantity: no line total
    }
    for key, line in lines.items():
        chosen = await client.put(
            f"{url}/materials/{made[key]['id']}", json=line, headers=owner.headers
        )
        assert chosen.status_code == 200, chosen.text

    listed = await client.get(f"{url}/materials", headers=owner.headers)
    shown = {item["code"]: item for item in listed.json()["items"]}
    assert (shown["CAR-1"]["price"], shown["CAR-1"]["currency"]) == ("89.90", "EUR")
    assert shown["CAR-1"]["line_total"] == "1123.75"
    assert shown["GR-1"]["line_total"] == "0.53"
    assert (shown["KY-1"]["price"], shown["KY-1"]["line_total"]) == ("4500", "13500")
    assert (shown["SA-1"]["price"], shown["SA-1"]["line_total"]) == (None, None)
    assert (shown["BA-1"]["price"], shown["BA-1"]["line_total"]) == ("30.00", None)
    read = (await client.get(url, headers=owner.headers)).json()
    assert read["totals"] == [
        {"currency": "EUR", "amount": "1124.28", "material_count": 2},
        {"currency": "JPY", "amount": "13500", "material_count": 1},
    ]
    assert read["materials_without_total"] == 2
    (in_list,) = (await client.get("/api/v1/projects", headers=owner.headers)).json()["items"]
    assert in_list["totals"] == read["totals"]
    # A new catalog price shows at once: the project reads the catalog's.
    repriced = await client.patch(
        f"/api/v1/materials/{made['carrara']['id']}",
        json={"price": "90.00"},
        headers={**owner.headers, "If-Match": f'"{made["carrara"]["version"]}"'},
    )
    assert repriced.status_code == 200, repriced.text
    read = (await client.get(url, headers=owner.headers)).json()
    assert read["totals"][0] == {"currency": "EUR", "amount": "1125.53", "material_count": 2}

    exported = await client.get(f"{url}/export", params={"format": "csv"}, headers=owner.headers)
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = {row["code"]: row for row in csv.DictReader(io.StringIO(exported.text))}
    assert list(rows["CAR-1"]) == [
        "code", "name", "category", "quantity", "unit", "unit_price", "currency", "line_total",
        "note",
    ]  # fmt: skip
    assert rows["CAR-1"] == {
        "code": "CAR-1", "name": "Carrara", "category": "Stone > Marble", "quantity": "12.5",
        "unit": "m2", "unit_price": "90.00", "currency": "EUR", "line_total": "1125.00",
        "note": "honed",
    }  # fmt: skip
    # Cells a spreadsheet would run as formulas are written as text.
    assert (rows["GR-1"]["name"], rows["GR-1"]["note"]) == ("'=1+1 grout", "'@ the door")
    assert (rows["SA-1"]["unit_price"], rows["SA-1"]["line_total"]) == ("", "")
    assert rows["BA-1"]["quantity"] == ""
    as_json = await client.get(f"{url}/export", params={"format": "json"}, headers=owner.headers)
    assert as_json.headers["content-type"].startswith("application/json")
    document = as_json.json()
    assert document["project"]["name"] == "Villa Rossi"
    assert {item["code"]: item["quantity"] for item in document["materials"]} == {
        "CAR-1": 12.5, "GR-1": 1.5, "KY-1": 3, "SA-1": 5, "BA-1": None,
    }  # fmt: skip
    kyoto = next(item for item in document["materials"] if item["code"] == "KY-1")
    assert (kyoto["unit_price"], kyoto["line_total"], kyoto["category"]) == ("4500", "13500", "")
    assert document["totals"] == [
        {"currency": "EUR", "amount": "1125.53", "material_count": 2},
        {"currency": "JPY", "amount": "13500", "material_count": 1},
    ]
    events = await client.get(
        "/api/v1/audit-events", params={"action": "project.exported"}, headers=owner.headers
    )
    exports = [event for event in events.json()["items"] if event["action"] == "project.exported"]
    assert sorted(event["details"]["format"] for event in exports) == ["csv", "json"]
    assert {event["target_id"] for event in exports} == {project["id"]}


async def test_a_project_shared_with_a_team_is_hidden_from_everyone_else(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    assert owner.organization is not None
    designer = await member(runtime, client, role="editor", organization=owner.organization)
    outsider = await member(runtime, client, role="editor", organization=owner.organization)
    admin = await member(runtime, client, role="admin", organization=owner.organization)
    showroom = await _team(client, owner, "Showroom", designer)
    project = await _project(client, designer, team_ids=[showroom])
    assert project["team_ids"] == [showroom]
    open_project = await _project(client, owner, name="Open office")
    secret = await _recognition(runtime, owner)
    visible = await _recognition(runtime, owner)
    url = f"/api/v1/projects/{project['id']}"
    await client.put(f"{url}/recognitions/{secret}", headers=designer.headers)

    for who in (designer, admin, owner):
        assert set(await _ids(client, who, "/api/v1/projects")) == {
            project["id"],
            open_project["id"],
        }
        assert (await client.get(url, headers=who.headers)).status_code == 200
        assert set(await _ids(client, who, "/api/v1/recognitions")) == {secret, visible}
    # The outsider learns nothing of it, nor of what is filed in it.
    assert await _ids(client, outsider, "/api/v1/projects") == [open_project["id"]]
    hidden = await client.get(url, headers=outsider.headers)
    assert hidden.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"
    assert await _ids(client, outsider, "/api/v1/recognitions") == [visible]
    assert (
        await client.get(f"/api/v1/recognitions/{secret}", headers=outsider.headers)
    ).status_code == 404
    # Filtering by it finds nothing, as filtering by a project that does not exist.
    for project_id in (project["id"], str(uuid.uuid4())):
        filtered = await client.get(
            "/api/v1/recognitions", params={"project_id": project_id}, headers=outsider.headers
        )
        assert filtered.status_code == 200
        assert filtered.json()["items"] == []
    for method, path in (
        ("PATCH", url),
        ("DELETE", url),
        ("PUT", f"{url}/recognitions/{visible}"),
        ("GET", f"{url}/materials"),
    ):
        sent = {"json": {"name": "Mine"}} if method == "PATCH" else {}
        answer = await client.request(method, path, headers=outsider.headers, **sent)
        assert answer.status_code == 404, (method, path, answer.text)
    # Nor can it be filed into a project the outsider cannot see, from their side.
    assert (
        await client.put(
            f"/api/v1/projects/{open_project['id']}/recognitions/{secret}", headers=outsider.headers
        )
    ).status_code == 404

    # A batch seen by all whose photo was filed since in the project: that row stays hidden.
    batch_id = await _batch_of(runtime, owner, secret)
    rows = await client.get(
        f"/api/v1/recognition-batches/{batch_id}/results", headers=outsider.headers
    )
    assert rows.status_code == 200
    [row] = rows.json()["items"]
    assert (row["recognition_id"], row["label"]) == (None, None)
    shown = await client.get(
        f"/api/v1/recognition-batches/{batch_id}/results", headers=designer.headers
    )
    assert shown.json()["items"][0]["recognition_id"] == secret
    # A member of the team may file photos in it, but not move one out to a wider project.
    assistant = await member(runtime, client, role="member", organization=owner.organization)
    await client.put(f"/api/v1/teams/{showroom}/members/{assistant.user.id}", headers=owner.headers)
    moved = await client.put(
        f"/api/v1/projects/{open_project['id']}/recognitions/{secret}", headers=assistant.headers
    )
    assert moved.status_code == 403
    assert await _ids(client, owner, "/api/v1/recognitions", project_id=project["id"]) == [secret]
    # Deleting it would show its recognitions to everyone: refused while any is filed in it.
    kept = await client.delete(url, headers=designer.headers)
    assert kept.status_code == 409
    assert kept.json()["type"].endswith("project-not-empty")

    # Shared with everyone again: the outsider sees it and its recognition.
    opened = await client.patch(url, json={"team_ids": []}, headers=designer.headers)
    assert opened.status_code == 200, opened.text
    assert (await client.get(url, headers=outsider.headers)).status_code == 200
    assert set(await _ids(client, outsider, "/api/v1/recognitions")) == {secret, visible}
    assert await _ids(client, owner, "/api/v1/projects", team_id=showroom) == []


async def test_bad_project_requests_are_refused_and_change_nothing(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    assert owner.organization is not None
    editor = await member(runtime, client, role="editor", organization=owner.organization)
    viewer = await member(runtime, client, role="member", organization=owner.organization)
    other = await member(runtime, client)
    theirs = await _team(client, other, "Their team")
    showroom = await _team(client, owner, "Showroom")
    project = await _project(client, owner)
    url = f"/api/v1/projects/{project['id']}"

    refusals: list[tuple[Member, str, str, dict[str, Any] | None, int]] = [
        (owner, "POST", "/api/v1/projects", {"name": "  "}, 422),
        (owner, "POST", "/api/v1/projects", {"name": "X", "colour": "red"}, 422),
        (owner, "POST", "/api/v1/projects", {"name": "X", "team_ids": [theirs]}, 422),
        (owner, "POST", "/api/v1/projects", {"name": "X", "team_ids": ["not-a-uuid"]}, 422),
        # An editor outside the team would lock themselves out.
        (editor, "POST", "/api/v1/projects", {"name": "X", "team_ids": [showroom]}, 422),
        (viewer, "POST", "/api/v1/projects", {"name": "X"}, 403),
        (owner, "PATCH", url, {"name": None}, 422),
        (owner, "PATCH", url, {"status": "finished"}, 422),
        (owner, "PUT", f"{url}/materials/{uuid.uuid4()}", {}, 404),
        (owner, "PUT", f"{url}/recognitions/{uuid.uuid4()}", None, 404),
        (owner, "GET", "/api/v1/projects/not-a-uuid", None, 422),
        (owner, "GET", f"/api/v1/projects/{uuid.uuid4()}/export", None, 404),
        (owner, "GET", f"{url}/export?format=xlsx", None, 422),
        (other, "GET", f"{url}/export", None, 404),
    ]
    category = await create_category(client, owner, "Stone")
    stone = await create_material(client, owner, category_id=category["id"], name="Basalt")
    bad_lines = [{"quantity": -1}, {"quantity": 1.23456}, {"quantity": "lots"}, {"unit": "x" * 21}]
    refusals += [(owner, "PUT", f"{url}/materials/{stone['id']}", bad, 422) for bad in bad_lines]
    unknown_recognition = {"recognition_id": str(uuid.uuid4())}
    refusals.append((owner, "PUT", f"{url}/materials/{stone['id']}", unknown_recognition, 404))

    for who, method, path, body, status in refusals:
        sent = {"json": body} if body is not None else {}
        answer = await client.request(method, path, headers=who.headers, **sent)
        assert answer.status_code == status, (method, path, body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert await _ids(client, owner, "/api/v1/projects") == [project["id"]]
    read = await client.get(url, headers=owner.headers)
    assert read.json()["name"] == "Villa Rossi"
    assert read.json()["material_count"] == 0
