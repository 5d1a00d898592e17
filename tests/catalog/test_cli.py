"""`kai catalog import` and `kai catalog export` from a terminal, against the test database."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from httpx import AsyncClient

from kai.runtime import Runtime
from tests.catalog.factories import TILE_PROPERTIES, create_category
from tests.commands import run_kai
from tests.identity.factories import member

pytestmark = pytest.mark.database


async def test_import_then_export_from_the_command_line(
    committed_runtime: Runtime, tmp_path: Path
) -> None:
    from httpx import ASGITransport

    from kai.app import create_app

    app = create_app(committed_runtime.settings, runtime=committed_runtime)
    async with AsyncClient(
        transport=ASGITransport(app=app, raise_app_exceptions=False), base_url="http://kai.test"
    ) as client:
        owner = await member(committed_runtime, client)
        await create_category(client, owner, "Tiles", properties=TILE_PROPERTIES)
        assert owner.organization is not None
        slug = owner.organization.slug

        source = tmp_path / "tiles.csv"
        source.write_text(
            "code,name,category,properties.thickness,properties.finish\n"
            "T-1,Porcelain grey,Tiles,9,brushed\n"
            "T-2,Porcelain white,Tiles,90,honed\n"
        )
        settings = committed_runtime.settings
        refused = run_kai(settings, "catalog", "import", str(source), "--organization", slug)
        assert refused.returncode == 1
        assert "line 3 properties.thickness" in refused.stdout

        dry = run_kai(settings, "catalog", "import", str(source), "--organization", slug,
                   "--mode", "skip_invalid", "--dry-run", "--json")  # fmt: skip
        assert json.loads(dry.stdout)["valid"] == 1
        page = await client.get("/api/v1/materials", headers=owner.headers)
        assert page.json()["items"] == []

        done = run_kai(settings, "catalog", "import", str(source), "--organization", slug,
                    "--mode", "skip_invalid")  # fmt: skip
        assert "1 created" in done.stdout, done.stdout + done.stderr
        page = await client.get("/api/v1/materials", headers=owner.headers)
        assert [item["code"] for item in page.json()["items"]] == ["T-1"]

        target = tmp_path / "out.csv"
        exported = run_kai(settings, "catalog", "export", "--organization", slug,
                        "--output", str(target))  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        rows = list(csv.DictReader(io.StringIO(target.read_text())))
        assert [(r["code"], r["properties.thickness"]) for r in rows] == [("T-1", "9 mm")]

        missing = run_kai(settings, "catalog", "export", "--organization", "no-such-org")
        assert missing.returncode == 1

        # A carriage return inside an unquoted cell: refused with its line, nothing written.
        broken = tmp_path / "broken.csv"
        broken.write_bytes(b"code,name,category\nT-3,Porcelain\rblack,Tiles\n")
        unreadable = run_kai(settings, "catalog", "import", str(broken), "--organization", slug)
        assert unreadable.returncode == 1
        assert "line 2" in unreadable.stderr + unreadable.stdout
        assert "Traceback" not in unreadable.stderr
        page = await client.get("/api/v1/materials", headers=owner.headers)
        assert [item["code"] for item in page.json()["items"]] == ["T-1"]
