"""Catalog imports and exports as a catalog manager runs them."""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select, text

from kai.catalog import imports, transfers
from kai.catalog.tasks import reindex
from kai.kit.db import act_for
from kai.kit.jobs.models import Job
from kai.runtime import Runtime
from tests.catalog.factories import TILE_PROPERTIES, create_category, create_material
from tests.catalog.test_images import photo
from tests.identity.factories import Member, member

pytestmark = pytest.mark.database

HEADER = "Article no.,name,category,price,currency,Finish,properties.thickness,tags,Notes\n"
GOOD_ROWS = (
    "CAR-600,Carrara honed,Stone > Marble,89.00,EUR,honed,10,white; bathroom,keep dry\n"
    "CAL-300,Calacatta polished,Stone > Marble,240,EUR,polished,0.75 in,white,\n"
    "CRM-100,Crème Marfil,Stone,45.5,EUR,tumbled,12,beige,\n"
)
MAPPING = json.dumps({"Article no.": "code", "Finish": "properties.finish", "Notes": "ignore"})


async def _stone(client: AsyncClient, owner: Member) -> None:
    stone = await create_category(client, owner, "Stone", properties=TILE_PROPERTIES)
    await create_category(client, owner, "Marble", parent_id=stone["id"])


async def _import(
    client: AsyncClient,
    owner: Member,
    content: bytes,
    *,
    name: str = "catalog.csv",
    mode: str = "all_or_nothing",
    dry_run: bool = False,
    mapping: str | None = MAPPING,
) -> Any:
    data = {"mode": mode, "dry_run": str(dry_run).lower()}
    if mapping:
        data["mapping"] = mapping
    return await client.post(
        "/api/v1/catalog/imports",
        files={"file": (name, content, "application/octet-stream")},
        data=data,
        headers=owner.headers,
    )


async def _run_queued_import(runtime: Runtime, owner: Member, job_id: str) -> dict[str, Any]:
    """What the import job does, called directly."""
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        job = (await session.scalars(select(Job).where(Job.id == uuid.UUID(job_id)))).one()
        return await transfers.run_import(
            session, runtime.storage, organization_id=owner.organization_id, params=job.params
        )


async def _codes(client: AsyncClient, owner: Member) -> set[str]:
    page = await client.get("/api/v1/materials?limit=200", headers=owner.headers)
    return {item["code"] for item in page.json()["items"]}


async def test_a_dry_run_reports_and_writes_nothing(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    await _stone(client, owner)
    response = await _import(client, owner, (HEADER + GOOD_ROWS).encode(), dry_run=True)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["rows"], report["valid"], report["error_count"]) == (3, 3, 0)
    assert (report["dry_run"], report["written"]) == (True, False)
    assert await _codes(client, owner) == set()


async def test_broken_rows_in_all_or_nothing_mode_import_nothing_and_are_all_reported(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _stone(client, owner)
    broken = (
        "BAD-1,No category,Wood > Oak,10,EUR,honed,10,,\n"
        "BAD-2,Too thick,Stone,10,EUR,honed,90,,\n"
        ",No code,Stone,10,EUR,honed,10,,\n"
        "BAD-4,Odd finish,Stone,ten,EUR,sandblasted,10,,\n"
        "CAR-600,Twice,Stone,10,EUR,honed,10,,\n"
    )
    content = (HEADER + GOOD_ROWS + broken).encode()
    dry = (await _import(client, owner, content, dry_run=True)).json()
    failed = {(error["line"], error["column"]) for error in dry["errors"]}
    assert {
        (5, "category"),
        (6, "properties.thickness"),
        (7, "code"),
        (8, "price"),
        (8, "properties.finish"),
        (9, "code"),
    } <= failed
    assert dry["valid"] == 3

    started = await _import(client, owner, content)
    assert started.status_code == 202, started.text
    report = await _run_queued_import(runtime, owner, started.json()["job"]["id"])
    assert report["written"] is False
    assert report["error_count"] == dry["error_count"]
    assert await _codes(client, owner) == set()


async def test_skip_invalid_imports_the_good_rows(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    await _stone(client, owner)
    content = (HEADER + GOOD_ROWS + "BAD-2,Too thick,Stone,10,EUR,honed,90,,\n").encode()
    started = await _import(client, owner, content, mode="skip_invalid")
    report = await _run_queued_import(runtime, owner, started.json()["job"]["id"])
    assert (report["created"], report["error_count"], report["written"]) == (3, 1, True)
    assert await _codes(client, owner) == {"CAR-600", "CAL-300", "CRM-100"}
    calacatta = next(
        item
        for item in (await client.get("/api/v1/materials", headers=owner.headers)).json()["items"]
        if item["code"] == "CAL-300"
    )
    assert calacatta["properties"]["thickness"] == {"value": 19.05, "unit": "mm"}
    assert calacatta["tags"] == ["white"]


async def test_importing_the_same_file_again_changes_nothing_and_a_price_list_updates(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _stone(client, owner)
    content = (HEADER + GOOD_ROWS).encode()
    first = await _run_queued_import(
        runtime, owner, (await _import(client, owner, content)).json()["job"]["id"]
    )
    again = await _run_queued_import(
        runtime, owner, (await _import(client, owner, content)).json()["job"]["id"]
    )
    assert (first["created"], again["created"], again["unchanged"]) == (3, 0, 3)

    prices = b"sku;price;currency\nCAR-600;92,50;EUR\n"
    report = await _import(client, owner, prices, mapping=None, dry_run=True)
    assert report.json()["error_count"] == 0, report.text
    updated = await _run_queued_import(
        runtime, owner,
        (await _import(client, owner, prices, mapping=None)).json()["job"]["id"],
    )  # fmt: skip
    assert (updated["updated"], updated["unchanged"], updated["error_count"]) == (1, 0, 0)
    items = (await client.get("/api/v1/materials", headers=owner.headers)).json()["items"]
    carrara = next(item for item in items if item["code"] == "CAR-600")
    # Only the price changed; what the price list did not name stayed.
    assert (carrara["price"], carrara["name"], carrara["tags"]) == (
        "92.50", "Carrara honed", ["white", "bathroom"],
    )  # fmt: skip
    assert carrara["version"] == 2


async def test_json_and_a_zip_with_images(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    await _stone(client, owner)
    rows = [
        {"code": "CAR-600", "name": "Carrara", "category": "Stone > Marble",
         "properties": {"thickness": 10, "finish": "honed"}, "images": "photos/car.jpg"},
    ]  # fmt: skip
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("materials.json", json.dumps(rows))
        zipped.writestr("photos/car.jpg", photo(colour=(200, 200, 190)))
    started = await _import(client, owner, archive.getvalue(), name="catalog.zip", mapping=None)
    assert started.status_code == 202, started.text
    report = await _run_queued_import(runtime, owner, started.json()["job"]["id"])
    assert (report["created"], report["images"], report["error_count"]) == (1, 1, 0), report[
        "errors"
    ]
    material = (await client.get("/api/v1/materials", headers=owner.headers)).json()["items"][0]
    images = await client.get(f"/api/v1/materials/{material['id']}/images", headers=owner.headers)
    assert [image["file_name"] for image in images.json()["items"]] == ["car.jpg"]

    missing = io.BytesIO()
    with zipfile.ZipFile(missing, "w") as zipped:
        zipped.writestr("materials.json", json.dumps([{**rows[0], "images": "nowhere.jpg"}]))
    refused = await _import(client, owner, missing.getvalue(), mapping=None, dry_run=True)
    assert refused.json()["errors"][0]["column"] == "images"


async def test_the_files_operating_systems_leave_in_an_import_zip_are_skipped(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("materials.csv", "code,name,images\nA-1,Carrara,car.jpg\n")
        zipped.writestr("car.jpg", photo(colour=(200, 200, 190)))
        # Taken for a second table, the AppleDouble copy would refuse the file.
        zipped.writestr("._materials.csv", b"\x00\x05\x16\x07 AppleDouble")
        zipped.writestr("__MACOSX/._materials.csv", b"resource fork")
        zipped.writestr("Thumbs.db", b"\xd0\xcf\x11\xe0 explorer thumbnails")
        zipped.writestr("desktop.ini", b"[.ShellClassInfo]")
        zipped.writestr(".DS_Store", b"\x00\x00\x00\x01Bud1")

    dry = await _import(
        client, owner, archive.getvalue(), name="catalog.zip", mapping=None, dry_run=True
    )
    assert dry.status_code == 200, dry.text
    assert (dry.json()["valid"], dry.json()["error_count"]) == (1, 0), dry.json()
    started = await _import(client, owner, archive.getvalue(), name="catalog.zip", mapping=None)
    assert started.status_code == 202, started.text
    report = await _run_queued_import(runtime, owner, started.json()["job"]["id"])
    assert (report["created"], report["images"], report["error_count"]) == (1, 1, 0), report


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\x01\x02binary", b'[{"code": ', b"PK\x03\x04broken zip", b"[1, 2, 3]"],
)
async def test_unreadable_files_are_refused(
    runtime: Runtime, client: AsyncClient, content: bytes
) -> None:
    owner = await member(runtime, client)
    response = await _import(client, owner, content, mapping=None)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [obj async for obj in runtime.storage.list(f"{owner.organization_id}/")] == []


async def test_an_export_reads_back_as_the_same_catalog(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _stone(client, owner)
    await _run_queued_import(
        runtime,
        owner,
        (await _import(client, owner, (HEADER + GOOD_ROWS).encode())).json()["job"]["id"],
    )
    exported = await client.get("/api/v1/catalog/exports?format=csv", headers=owner.headers)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {row["code"] for row in rows} == {"CAR-600", "CAL-300", "CRM-100"}
    carrara = next(row for row in rows if row["code"] == "CAR-600")
    assert (carrara["category"], carrara["tags"], carrara["properties.finish"]) == (
        "Stone > Marble", "white; bathroom", "honed",
    )  # fmt: skip

    back = await _import(client, owner, exported.content, mapping=None, dry_run=True)
    assert back.json()["error_count"] == 0, back.text
    report = await _run_queued_import(
        runtime, owner,
        (await _import(client, owner, exported.content, mapping=None)).json()["job"]["id"],
    )  # fmt: skip
    assert (report["unchanged"], report["updated"], report["created"]) == (3, 0, 0)

    marble = await client.get("/api/v1/catalog/exports?format=json&q=marble", headers=owner.headers)
    assert {m["code"] for m in marble.json()["materials"]} == {"CAR-600", "CAL-300"}


async def test_booleans_in_an_export_are_true_and_false(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=TILE_PROPERTIES)
    for code, frost_resistant in (("OUT-1", True), ("IN-1", False)):
        await create_material(
            client, owner, category_id=stone["id"], code=code,
            properties={"thickness": 20, "frost_resistant": frost_resistant},
        )  # fmt: skip

    exported = await client.get("/api/v1/catalog/exports?format=csv", headers=owner.headers)

    rows = csv.DictReader(io.StringIO(exported.text))
    assert {row["code"]: row["properties.frost_resistant"] for row in rows} == {
        "OUT-1": "true",
        "IN-1": "false",
    }
    back = await _import(client, owner, exported.content, mapping=None, dry_run=True)
    assert (back.json()["unchanged"], back.json()["error_count"]) == (2, 0), back.text


async def _documents(runtime: Runtime, owner: Member) -> dict[str, str]:
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        rows = await session.execute(text("SELECT code, search_vector::text FROM materials"))
        return {str(code): str(document) for code, document in rows.all()}


async def test_imported_materials_are_found_and_versioned_like_ones_made_through_the_api(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _stone(client, owner)
    content = (HEADER + GOOD_ROWS).encode()
    report = await _run_queued_import(
        runtime, owner, (await _import(client, owner, content)).json()["job"]["id"]
    )
    assert report["created"] == 3
    marble = next(
        category
        for category in (await client.get("/api/v1/categories", headers=owner.headers)).json()[
            "items"
        ]
        if category["name"] == "Marble"
    )
    twin = await create_material(
        client, owner, category_id=marble["id"], code="CAR-601", name="Carrara honed",
        price="89.00", currency="EUR", tags=["white", "bathroom"],
        properties={"thickness": 10, "finish": "honed"},
    )  # fmt: skip

    # The document an import wrote is the one the trigger writes for the same row.
    imported = await _documents(runtime, owner)
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        await session.execute(text("UPDATE materials SET name = name"))
    assert await _documents(runtime, owner) == imported

    # Category names are searchable words, and stay current when a category is renamed.
    async def found(words: str) -> set[str]:
        response = await client.get(f"/api/v1/search?q={words}", headers=owner.headers)
        assert response.status_code == 200, response.text
        return {hit["material"]["code"] for hit in response.json()["items"]}

    assert await found("marble") == {"CAR-600", "CAL-300", "CAR-601"}
    assert await found("stone honed") == {"CAR-600", "CAR-601"}
    assert await found("creme") == await found("CRÈME") == {"CRM-100"}
    renamed = await client.patch(
        f"/api/v1/categories/{marble['id']}", json={"name": "Statuario"}, headers=owner.headers
    )
    assert renamed.status_code == 200, renamed.text
    # What the reindex job the rename queued does, called directly.
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        reindexing = (
            await session.scalars(select(Job).where(Job.kind == "catalog.reindex_documents"))
        ).one()
        await reindex(session, organization_id=owner.organization_id, params=reindexing.params)
    assert await found("statuario") == {"CAR-600", "CAL-300", "CAR-601"}
    assert await found("marble") == set()

    # The first version records every field as one made through the API does.
    async def first_version(material_id: str) -> dict[str, Any]:
        url = f"/api/v1/materials/{material_id}/versions"
        versions = (await client.get(url, headers=owner.headers)).json()["items"]
        return dict(versions[-1])

    materials = (await client.get("/api/v1/materials", headers=owner.headers)).json()["items"]
    carrara = next(item for item in materials if item["code"] == "CAR-600")
    made, loaded = await first_version(twin["id"]), await first_version(carrara["id"])
    assert (made["action"], loaded["action"]) == ("created", "imported")
    assert loaded["changed_by"] == made["changed_by"] == f"user:{owner.user.id}"
    assert loaded["changes"].pop("code") == {"old": None, "new": "CAR-600"}
    assert made["changes"].pop("code") == {"old": None, "new": "CAR-601"}
    assert loaded["changes"] == made["changes"]


async def test_a_problem_in_a_later_chunk_undoes_the_chunks_written_before_it(
    runtime: Runtime, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunks of two rows: the first is written while the second is checked.
    monkeypatch.setattr(imports, "INSERT_BATCH", 2)
    owner = await member(runtime, client)
    await _stone(client, owner)
    late = "BAD-2,Too thick,Stone,10,EUR,honed,90,,\nCAR-600,Twice,Stone,10,EUR,honed,10,,\n"
    content = (HEADER + GOOD_ROWS + late).encode()
    started = await _import(client, owner, content)
    report = await _run_queued_import(runtime, owner, started.json()["job"]["id"])
    assert (report["written"], report["created"], report["valid"]) == (False, 0, 3)
    assert {(error["line"], error["column"]) for error in report["errors"]} == {
        (5, "properties.thickness"),
        (6, "code"),
    }
    assert await _codes(client, owner) == set()

    started = await _import(client, owner, content, mode="skip_invalid")
    report = await _run_queued_import(runtime, owner, started.json()["job"]["id"])
    assert (report["written"], report["created"], report["error_count"]) == (True, 3, 2)
    assert await _codes(client, owner) == {"CAR-600", "CAL-300", "CRM-100"}


# --- files the CSV reader cannot read (an outside fuzzer found the first as a 500) ---------

BARE_CR = {
    "in a cell": (b"code,name\nA-1,Carr\rara\nA-2,Calacatta\n", 2),
    "in the header": (b"co\rde,name\nA-1,Carrara\n", 1),
    "on a later line": (b"code,name\nA-1,Carrara\nA-2,Cala\rcatta\n", 3),
}


@pytest.mark.parametrize("case", list(BARE_CR))
async def test_a_carriage_return_inside_an_unquoted_cell_is_a_400_naming_its_line(
    runtime: Runtime, client: AsyncClient, case: str
) -> None:
    owner = await member(runtime, client)
    content, line = BARE_CR[case]
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("materials.csv", content)

    for upload, name in ((content, "catalog.csv"), (zipped.getvalue(), "catalog.zip")):
        for dry_run in (True, False):
            response = await _import(
                client, owner, upload, name=name, mapping=None, dry_run=dry_run
            )
            assert response.status_code == 400, response.text
            assert response.headers["content-type"] == "application/problem+json"
            detail = response.json()["detail"]
            assert f"line {line}" in detail
            assert "double quotes" in detail
            assert "universal-newline" not in detail  # the library's words are not the answer
    assert [obj async for obj in runtime.storage.list(f"{owner.organization_id}/")] == []
    jobs = await client.get("/api/v1/jobs", headers=owner.headers)
    assert jobs.json()["items"] == []
    assert await _codes(client, owner) == set()


async def test_a_file_whose_lines_end_in_carriage_returns_is_read(
    runtime: Runtime, client: AsyncClient
) -> None:
    # Spreadsheets on old Macs save CSV so: there a carriage return is the line end.
    owner = await member(runtime, client)
    content = b'code,name,description\rA-1,Carrara,"two\rlines"\rA-2,Calacatta,\r'
    report = (await _import(client, owner, content, mapping=None, dry_run=True)).json()
    assert (report["rows"], report["valid"], report["error_count"]) == (2, 2, 0), report


async def test_an_import_job_meeting_an_unreadable_file_fails_at_once_saying_why(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    from kai.catalog.tasks import import_file
    from kai.kit.storage.keys import user_upload_key
    from tests.recognition.test_recognitions import _finished

    owner = await member(committed_runtime, committed_client)
    # Kept by an upload that was checked before this reader refused such files.
    key = user_upload_key(owner.organization_id, f"imports/{uuid.uuid4()}.csv")
    await committed_runtime.storage.put(key, BARE_CR["on a later line"][0])
    async with committed_runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        await import_file.enqueue(
            session,
            organization_id=owner.organization_id,
            params={
                "file_key": key,
                "file_name": "catalog.csv",
                "mapping": {},
                "mode": "skip_invalid",
                "actor": {"kind": "user", "user_id": str(owner.user.id), "api_key_id": None},
                "limits": {"max_bytes": 1024 * 1024, "max_pixels": 1_000_000},
            },
        )

    [job] = await _finished(committed_client, owner, "catalog.import")

    assert (job["status"], job["attempts"]) == ("failed", 1), job
    assert "line 3" in job["error"]
    assert await _codes(committed_client, owner) == set()
    # Nothing would ever read the file again: it goes with the job's failure.
    [removal] = await _finished(committed_client, owner, "storage.delete_objects")
    assert removal["status"] == "succeeded", removal
    assert [stored.key async for stored in committed_runtime.storage.list(key)] == []


# --- rows that do not fit the header, columns that name no field ---------------------------


async def test_an_unquoted_semicolon_is_reported_at_its_row_and_the_others_are_read(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _stone(client, owner)
    # A semicolon CSV with decimal commas, as much of Europe saves one. The first row's
    # description spans two lines; the second's holds a ";" no quotes protect.
    content = (
        b"code;name;category;price;currency;properties.thickness;description\n"
        b'CAR-600;Carrara;Stone;89,00;EUR;10;"white,\nveined"\n'
        b"CAL-300;Calacatta;Stone;240,00;EUR;20;white; gold veins\n"
        b"CRM-100;Crema;Stone;45,50;EUR;12;beige\n"
    )

    dry = (await _import(client, owner, content, mapping=None, dry_run=True)).json()

    assert (dry["rows"], dry["valid"], dry["error_count"]) == (3, 2, 1), dry
    [problem] = dry["errors"]
    assert (problem["index"], problem["line"], problem["column"]) == (1, 4, None)
    assert "8 cells where the header has 7 columns" in problem["message"]
    assert "a semicolon must be in double quotes" in problem["message"]
    assert [(row["index"], row["line"], row["action"]) for row in dry["actions"]] == [
        (0, 2, "create"), (1, 4, "invalid"), (2, 5, "create"),
    ]  # fmt: skip

    started = await _import(client, owner, content, mapping=None, mode="skip_invalid")
    report = await _run_queued_import(runtime, owner, started.json()["job"]["id"])
    assert (report["created"], report["error_count"]) == (2, 1)
    items = (await client.get("/api/v1/materials", headers=owner.headers)).json()["items"]
    assert {(item["code"], item["price"]) for item in items} == {
        ("CAR-600", "89.00"), ("CRM-100", "45.50"),
    }  # fmt: skip

    # A row short of cells is one too: its cells could belong to any column.
    short = b"code;name;category;properties.thickness\nJUR-1;Jura;Stone;10\nJUR-2;Jura;10\n"
    dry = (await _import(client, owner, short, mapping=None, dry_run=True)).json()
    assert [(e["index"], e["line"]) for e in dry["errors"]] == [(1, 3)], dry
    assert "3 cells where the header has 4" in dry["errors"][0]["message"]
    # Blank rows and trailing empty cells (spreadsheets write both) are no problem.
    padded = b"code;name;category;properties.thickness\n\n;;;\nJUR-1;Jura;Stone;10;;\n"
    dry = (await _import(client, owner, padded, mapping=None, dry_run=True)).json()
    assert (dry["rows"], dry["valid"], dry["error_count"]) == (1, 1, 0), dry
    assert dry["actions"][0]["line"] == 4


async def test_a_column_that_names_no_field_is_a_problem_of_the_file(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _stone(client, owner)
    content = (
        b"code,name,category,properties.thickness,propertes.finish\n"
        b"CAR-600,Carrara,Stone,10,honed\n"
        b"CAL-300,Calacatta,Stone,20,polished\n"
    )

    for mode in ("all_or_nothing", "skip_invalid"):
        dry = (await _import(client, owner, content, mapping=None, mode=mode, dry_run=True)).json()
        [problem] = dry["errors"]
        assert (problem["index"], problem["line"], problem["column"]) == (
            None, 1, "propertes.finish",
        )  # fmt: skip
        assert 'did you mean "properties.finish"?' in problem["message"]
        assert dry["valid"] == 2
        assert dry["refused"] is (mode == "all_or_nothing")

    started = await _import(client, owner, content, mapping=None)
    refused = await _run_queued_import(runtime, owner, started.json()["job"]["id"])
    assert (refused["refused"], refused["written"], refused["created"]) == (True, False, 0)
    assert await _codes(client, owner) == set()

    started = await _import(client, owner, content, mapping=None, mode="skip_invalid")
    report = await _run_queued_import(runtime, owner, started.json()["job"]["id"])
    assert (report["created"], report["error_count"], report["refused"]) == (2, 1, False)
    items = (await client.get("/api/v1/materials", headers=owner.headers)).json()["items"]
    assert all("finish" not in item["properties"] for item in items)

    # Said of the header, whether or not a row could be read; so is a column named twice.
    for header, column, words in (
        (b"code,name,propertes.finish\n", "propertes.finish", "did you mean"),
        (b"code,name,name\nJUR-1,Jura,Jura bianco\n", "name", "names this column twice"),
    ):
        dry = (await _import(client, owner, header, mapping=None, dry_run=True)).json()
        [problem] = dry["errors"]
        assert (problem["index"], problem["line"], problem["column"]) == (None, 1, column)
        assert words in problem["message"]

    # Mapped away, it is no problem; mapped to a field KAI does not have, the request is refused.
    ignored = await _import(
        client, owner, content, mapping=json.dumps({"propertes.finish": "ignore"}), dry_run=True
    )
    assert ignored.json()["error_count"] == 0, ignored.text
    for dry_run in (True, False):
        misspelt = await _import(
            client, owner, content, mapping=json.dumps({"propertes.finish": "finnish"}),
            dry_run=dry_run,
        )  # fmt: skip
        assert misspelt.status_code == 400, misspelt.text
        assert misspelt.json()["type"].endswith("/invalid-mapping")
        assert "'finnish'" in misspelt.json()["detail"]


async def test_a_dry_run_says_what_each_row_would_do_as_the_import_then_does(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=TILE_PROPERTIES)
    for code, price in (("CAR-600", "89.00"), ("CAL-300", "240.00")):
        await create_material(
            client, owner, category_id=stone["id"], code=code, name=code, price=price,
            currency="EUR", properties={"thickness": 10},
        )  # fmt: skip
    content = (
        b"code,name,category,price,currency,properties.thickness\n"
        b"CAR-600,,,89,EUR,10\n"  # as it is already
        b"CAL-300,,,250,EUR,0.5 in\n"  # a new price and thickness
        b"NER-100,Nero,Stone,45.5,EUR,12\n"  # new
        b"BAD-1,Too thick,Stone,45.5,EUR,90\n"
    )

    dry = (
        await _import(client, owner, content, mapping=None, mode="skip_invalid", dry_run=True)
    ).json()

    assert (dry["created"], dry["updated"], dry["unchanged"], dry["error_count"]) == (1, 1, 1, 1)
    actions = [(row["line"], row["code"], row["action"]) for row in dry["actions"]]
    assert actions == [
        (2, "CAR-600", "unchanged"), (3, "CAL-300", "update"), (4, "NER-100", "create"),
        (5, "BAD-1", "invalid"),
    ]  # fmt: skip
    assert [(error["line"], error["column"]) for error in dry["errors"]] == [
        (5, "properties.thickness")
    ]

    started = await _import(client, owner, content, mapping=None, mode="skip_invalid")
    report = await _run_queued_import(runtime, owner, started.json()["job"]["id"])
    assert [(row["line"], row["code"], row["action"]) for row in report["actions"]] == actions
    assert (report["created"], report["updated"], report["unchanged"]) == (1, 1, 1)


# --- empty cells, refused imports, one numbering -------------------------------------------


async def test_an_empty_cell_leaves_its_field_as_it_is_in_every_column(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stone = await create_category(client, owner, "Stone", properties=TILE_PROPERTIES)
    kept = {
        "name": "Carrara", "description": "White marble.", "manufacturer": "Cava", "supplier":
        "Stonehouse", "price": "89.00", "currency": "EUR", "tags": ["white", "bathroom"],
        "status": "active", "properties": {"thickness": 10, "finish": "honed"},
    }  # fmt: skip
    material = await create_material(client, owner, category_id=stone["id"], code="CAR-600", **kept)
    columns = [
        "code", "name", "category", "description", "manufacturer", "supplier", "price",
        "currency", "tags", "status", "properties.thickness", "properties.finish",
    ]  # fmt: skip
    # Every cell empty but the code's and the new supplier's.
    content = (
        ",".join(columns) + "\n" + ",".join(
            "CAR-600" if column == "code" else "Marmi" if column == "supplier" else ""
            for column in columns
        ) + "\n"
    ).encode()  # fmt: skip

    started = await _import(client, owner, content, mapping=None)
    report = await _run_queued_import(runtime, owner, started.json()["job"]["id"])
    assert (report["updated"], report["error_count"]) == (1, 0), report

    after = (await client.get(f"/api/v1/materials/{material['id']}", headers=owner.headers)).json()
    assert after["supplier"] == "Marmi"
    assert {field: after[field] for field in kept} == {
        **kept, "supplier": "Marmi", "properties": {
            "thickness": {"value": 10, "unit": "mm"}, "finish": "honed"
        },
    }  # fmt: skip

    # Records of a bulk request alike: null, "" and [] are no value.
    bulk = await client.post(
        "/api/v1/materials/bulk",
        json={"materials": [{"code": "CAR-600", "description": "", "price": None, "tags": [],
                             "status": None, "properties": {"finish": None}}]},
        headers=owner.headers,
    )  # fmt: skip
    assert bulk.status_code == 200, bulk.text
    assert bulk.json()["unchanged"] == 1
    again = (await client.get(f"/api/v1/materials/{material['id']}", headers=owner.headers)).json()
    assert again["version"] == after["version"]
    # Clearing is a change of the material itself.
    cleared = await client.patch(
        f"/api/v1/materials/{material['id']}",
        json={"tags": [], "description": "", "properties": {"finish": None}},
        headers=owner.headers,
    )
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["tags"], cleared.json()["description"]) == ([], "")
    assert "finish" not in cleared.json()["properties"]


async def test_a_refused_import_job_fails_with_its_report(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    from tests.recognition.test_recognitions import _finished

    client = committed_client
    owner = await member(committed_runtime, client)
    await _stone(client, owner)
    content = (HEADER + GOOD_ROWS + "BAD-2,Too thick,Stone,10,EUR,honed,90,,\n").encode()

    started = await _import(client, owner, content)
    assert started.status_code == 202, started.text
    [job] = await _finished(client, owner, "catalog.import")

    assert (job["status"], job["attempts"]) == ("failed", 1), job
    assert "Nothing was imported" in job["error"]
    report = job["result"]
    assert (report["refused"], report["written"], report["created"]) == (True, False, 0)
    assert [(error["line"], error["column"]) for error in report["errors"]] == [
        (5, "properties.thickness")
    ]
    assert await _codes(client, owner) == set()
    # Nothing would read the uploaded file again: it goes with the job's failure.
    [removal] = await _finished(client, owner, "storage.delete_objects")
    assert removal["status"] == "succeeded", removal
    stored = f"{owner.organization_id}/users/uploads/imports/"
    assert [key async for key in committed_runtime.storage.list(stored)] == []

    # The same file without its bad row imports, and its job succeeds.
    fixed = await _import(client, owner, (HEADER + GOOD_ROWS).encode())
    assert fixed.status_code == 202, fixed.text
    jobs = await _finished(client, owner, "catalog.import", 2)
    done = next(job for job in jobs if job["id"] == fixed.json()["job"]["id"])
    assert done["status"] == "succeeded", done
    assert (done["result"]["created"], done["result"]["refused"]) == (3, False)


async def test_a_record_is_numbered_alike_in_a_bulk_refusal_and_an_import_report(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    await _stone(client, owner)
    records: list[dict[str, Any]] = [
        {"code": f"ST-{n}", "name": f"Stone {n}", "category": "Stone",
         "properties": {"thickness": 10}}
        for n in range(12)
    ]  # fmt: skip
    records[8]["price"] = "ten"
    records[8]["currency"] = "EUR"

    bulk = await client.post(
        "/api/v1/materials/bulk", json={"materials": records}, headers=owner.headers
    )
    assert bulk.status_code == 422, bulk.text
    assert [error["loc"] for error in bulk.json()["errors"]] == [["body", "materials", 8, "price"]]

    as_json = await _import(client, owner, json.dumps(records).encode(), mapping=None, dry_run=True)
    [problem] = as_json.json()["errors"]
    assert (problem["index"], problem["line"], problem["column"]) == (8, None, "price")

    lines = ["code,name,category,properties.thickness,price,currency"] + [
        f"{r['code']},{r['name']},Stone,10,{r.get('price', '')},{r.get('currency', '')}"
        for r in records
    ]
    as_csv = await _import(client, owner, "\n".join(lines).encode(), mapping=None, dry_run=True)
    [problem] = as_csv.json()["errors"]
    # The same index; and the line a spreadsheet or an editor shows it on.
    assert (problem["index"], problem["line"], problem["column"]) == (8, 10, "price")

    # A field no material has is named at the first record that gives it.
    records[3]["prise"] = "12.00"
    misspelt = await client.post(
        "/api/v1/materials/bulk", json={"materials": records[:8]}, headers=owner.headers
    )
    assert misspelt.status_code == 422, misspelt.text
    [error] = misspelt.json()["errors"]
    assert error["loc"] == ["body", "materials", 3, "prise"]
    assert 'did you mean "price"?' in error["msg"]
