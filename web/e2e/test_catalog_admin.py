"""The catalog's management screens: categories and their properties, import, export, trash."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from web.e2e.people import api_client, owner_of_new_organization
from web.e2e.support import Server, assert_accessible, screenshot

# How the app writes a category's path and a range.
PATH = " \u203a "
DASH = "\u2013"


def _tree_item(page: Page, name: str) -> Locator:
    return page.locator(".category-tree").get_by_role("button", name=re.compile(f"^{name}"))


def _create_category(page: Page, name: str, parent: str | None = None) -> None:
    form = page.get_by_role("form", name="New category")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Parent category").select_option(label=parent or "None (top level)")
    form.get_by_role("button", name="Create category").click()
    expect(page.get_by_role("heading", level=2, name=re.compile(f"{name}$"))).to_be_visible()


def test_a_category_tree_with_typed_properties(page: Page, kai_server: Server) -> None:
    owner_of_new_organization(page, kai_server)
    page.goto("/catalog/categories")
    expect(page.get_by_role("heading", level=1, name="Categories")).to_be_visible()
    expect(page.get_by_text("No categories yet")).to_be_visible()

    _create_category(page, "Stone")
    properties = page.get_by_role("form", name="Its own properties")
    properties.get_by_role("button", name="Add a property").click()
    new = properties.get_by_role("group", name="New property")
    new.get_by_label("Label").fill("Thickness")
    thickness = properties.get_by_role("group", name="Thickness")
    expect(thickness.get_by_label("Key")).to_have_value("thickness")
    thickness.get_by_label("Type").select_option("number")
    thickness.get_by_label("Unit").select_option("mm")
    thickness.get_by_label("Minimum").fill("5")
    thickness.get_by_label("Maximum").fill("50")
    thickness.get_by_label("Every material must give it").check()

    properties.get_by_role("button", name="Add a property").click()
    properties.get_by_role("group", name="New property").get_by_label("Label").fill("Finish")
    finish = properties.get_by_role("group", name="Finish")
    finish.get_by_label("Type").select_option("enum")
    properties.get_by_role("button", name="Save properties").click()
    # An enum without options is refused beside its field, before the server is asked.
    expect(finish.get_by_text("Give at least one option.")).to_be_visible()
    finish.get_by_label("Options").fill("Polished\nHoned")
    properties.get_by_role("button", name="Save properties").click()
    expect(properties.get_by_role("status")).to_have_text("Saved")

    # A second "Stone" at the top is refused beside its name.
    form = page.get_by_role("form", name="New category")
    form.get_by_label("Name").fill("Stone")
    form.get_by_label("Parent category").select_option(label="None (top level)")
    form.get_by_role("button", name="Create category").click()
    expect(form.get_by_text("Another category in the same place has this name.")).to_be_visible()
    expect(form.get_by_label("Name")).to_have_attribute("aria-invalid", "true")

    _create_category(page, "Marble", parent="Stone")
    # The parent's properties show on the child, read only, with where they come from.
    inherited = page.get_by_role("table")
    expect(inherited.get_by_role("row", name=re.compile("Thickness"))).to_contain_text(
        f"Number · mm · 5{DASH}50 · required"
    )
    expect(inherited.get_by_role("row", name=re.compile("Finish"))).to_contain_text("Stone")
    properties.get_by_role("button", name="Add a property").click()
    properties.get_by_role("group", name="New property").get_by_label("Label").fill("Vein colour")
    properties.get_by_role("group", name="Vein colour").get_by_label("Type").select_option("colour")
    properties.get_by_role("button", name="Save properties").click()
    expect(properties.get_by_role("status")).to_have_text("Saved")

    # A category made in the wrong place with a typo: renamed, then moved under Stone.
    _create_category(page, "Granit")
    rename = page.get_by_role("form", name="Name and description")
    rename.get_by_label("Name").fill("Granite")
    rename.get_by_role("button", name="Save name").click()
    expect(page.get_by_role("heading", level=2, name="Granite")).to_be_visible()
    move = page.get_by_role("form", name="Place in the tree")
    move.get_by_label("Parent category").select_option(label="Stone")
    move.get_by_role("button", name="Move").click()
    expect(page.get_by_role("heading", level=2, name=f"Stone{PATH}Granite")).to_be_visible()

    page.reload()
    expect(page.get_by_role("heading", level=2, name=f"Stone{PATH}Granite")).to_be_visible()
    rows = page.locator(".category-tree li")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Stone")
    expect(rows.nth(0)).to_contain_text("2 properties")
    expect(rows.nth(2)).to_contain_text("Granite")
    # Reordered: Granite before Marble.
    page.get_by_role("button", name="Move Granite up").click()
    expect(rows.nth(1)).to_contain_text("Granite")
    expect(rows.nth(2)).to_contain_text("Marble")
    assert_accessible(page, "catalog categories")
    screenshot(page, "catalog-admin-categories")

    # A category with subcategories is not deleted, and the reason is said plainly.
    _tree_item(page, "Stone").click()
    page.get_by_role("button", name="Delete category").click()
    dialog = page.get_by_role("dialog", name="Delete Stone?")
    dialog.get_by_role("button", name="Delete category").click()
    expect(dialog.get_by_role("alert")).to_contain_text("It has subcategories")
    assert_accessible(page, "catalog category in use")
    screenshot(page, "catalog-admin-category-in-use")
    dialog.get_by_role("button", name="Cancel").click()

    page.set_viewport_size({"width": 390, "height": 844})
    _tree_item(page, "Marble").click()
    expect(page.get_by_role("heading", level=2, name=f"Stone{PATH}Marble")).to_be_visible()
    assert_accessible(page, "catalog categories (phone)")
    screenshot(page, "catalog-admin-categories-phone")


CSV = (
    "code,name,category,properties.thickness\n"
    "M-1,Carrara Bianco,Stone,20\n"
    "M-2,Nero Marquina,Stone,thick\n"
    "M-3,Verde Alpi,Stone,30\n"
)


def test_import_export_and_the_trash(
    page: Page, kai_server: Server, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    owner = owner_of_new_organization(page, kai_server)
    api = api_client(kai_server, owner)
    request.addfinalizer(api.close)
    made = api.post(
        "/api/v1/categories",
        json={
            "name": "Stone",
            "properties": [
                {"key": "thickness", "label": "Thickness", "type": "number", "unit": "mm"}
            ],
        },
    )
    assert made.status_code == 201, made.text
    csv_file = tmp_path / "stones.csv"
    csv_file.write_text(CSV, encoding="utf-8")

    page.goto("/catalog/import")
    expect(page.get_by_role("heading", level=1, name="Import materials")).to_be_visible()
    assert_accessible(page, "catalog import")
    page.get_by_label("Choose a file").set_input_files(str(csv_file))
    expect(page.get_by_text("stones.csv")).to_be_visible()

    # All or nothing: the dry run shows the bad row, and that nothing would be imported.
    page.get_by_role("button", name="Check the file").click()
    problems = page.get_by_role("table", name="1 problem")
    expect(problems).to_be_visible()
    bad = problems.get_by_role("row").nth(1)
    expect(bad.get_by_role("cell").nth(0)).to_have_text("3")
    expect(bad.get_by_role("cell").nth(1)).to_have_text("properties.thickness")
    expect(bad.get_by_role("cell").nth(2)).not_to_be_empty()
    expect(page.get_by_text("nothing would be imported")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Import \\d"))).to_have_count(0)
    screenshot(page, "catalog-admin-import-dry-run")

    # Skipping the bad row, two materials would be written; then they are.
    page.get_by_label("Import the good rows, skip the others").check()
    page.get_by_role("button", name="Check the file").click()
    expect(page.get_by_text("2 materials would be written.")).to_be_visible()
    expect(page.get_by_role("table", name="1 problem")).to_contain_text("properties.thickness")
    assert_accessible(page, "catalog import dry run")
    page.get_by_role("button", name="Import 2 materials").click()
    expect(page.get_by_role("progressbar")).to_be_visible()
    expect(page.get_by_text("2 materials were written.")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(page.get_by_role("heading", name="Import report")).to_be_visible()
    screenshot(page, "catalog-admin-import-report")

    listed = api.get("/api/v1/materials", params={"limit": 200}).json()["items"]
    by_code = {material["code"]: material for material in listed}
    assert sorted(by_code) == ["M-1", "M-3"]
    assert by_code["M-3"]["properties"]["thickness"] == {"value": 30, "unit": "mm"}

    # The export holds the imported rows.
    page.goto("/catalog/export")
    expect(page.get_by_role("heading", level=1, name="Export the catalog")).to_be_visible()
    page.get_by_role("button", name="Export", exact=True).click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download catalog.csv").click()
    download = download_info.value
    assert download.suggested_filename == "catalog.csv"
    exported = Path(download.path()).read_text(encoding="utf-8")
    assert "Carrara Bianco" in exported
    assert "Verde Alpi" in exported
    assert "Nero Marquina" not in exported
    assert_accessible(page, "catalog export")
    screenshot(page, "catalog-admin-export")

    # Deleted through the API, restored from the trash.
    page.goto("/catalog/trash")
    expect(page.get_by_text("The trash is empty.")).to_be_visible()
    deleted = api.delete(f"/api/v1/materials/{by_code['M-1']['id']}")
    assert deleted.status_code == 204, deleted.text
    page.reload()
    row = page.get_by_role("row", name=re.compile("Carrara Bianco"))
    expect(row).to_contain_text("M-1")
    assert_accessible(page, "catalog trash")
    screenshot(page, "catalog-admin-trash")
    row.get_by_role("button", name="Restore Carrara Bianco").click()
    page.get_by_role("dialog", name="Restore Carrara Bianco?").get_by_role(
        "button", name="Restore"
    ).click()
    expect(page.get_by_text("The trash is empty.")).to_be_visible()
    restored = api.get(f"/api/v1/materials/{by_code['M-1']['id']}")
    assert restored.status_code == 200
    assert restored.json()["deleted_at"] is None

    page.goto("/catalog/duplicates")
    expect(page.get_by_text("No near-duplicates")).to_be_visible()
    assert_accessible(page, "catalog near-duplicates")
    screenshot(page, "catalog-admin-duplicates")

    page.goto("/catalog/settings")
    expect(page.get_by_label("Search language")).to_be_visible()
    assert_accessible(page, "catalog settings")
    screenshot(page, "catalog-admin-settings")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/catalog/import")
    page.get_by_label("Choose a file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Check the file").click()
    expect(page.get_by_role("table", name="1 problem")).to_be_visible()
    assert_accessible(page, "catalog import (phone)")
    screenshot(page, "catalog-admin-import-phone")


def test_deleted_materials_purged_from_the_trash_and_with_their_category(
    page: Page, kai_server: Server, request: pytest.FixtureRequest
) -> None:
    owner = owner_of_new_organization(page, kai_server)
    api = api_client(kai_server, owner)
    request.addfinalizer(api.close)
    onyx = api.post("/api/v1/categories", json={"name": "Onyx"}).json()
    ids = {}
    for code, name in (("O-1", "Onyx Miele"), ("O-2", "Onyx Verde")):
        made = api.post(
            "/api/v1/materials", json={"code": code, "name": name, "category_id": onyx["id"]}
        )
        assert made.status_code == 201, made.text
        ids[code] = made.json()["id"]
        assert api.delete(f"/api/v1/materials/{ids[code]}").status_code == 204

    # One purged from the trash, for good.
    page.goto("/catalog/trash")
    page.get_by_role("button", name="Purge Onyx Verde").click()
    page.get_by_role("dialog").get_by_role("button", name="Purge for good").click()
    expect(page.get_by_role("row", name=re.compile("Onyx Verde"))).to_have_count(0)
    expect(page.get_by_role("row", name=re.compile("Onyx Miele"))).to_be_visible()
    assert api.get(f"/api/v1/materials/{ids['O-2']}?include_deleted=true").status_code == 404

    # The other still holds the category: deleting it says so and offers to purge it.
    page.goto("/catalog/categories")
    _tree_item(page, "Onyx").click()
    page.get_by_role("button", name="Delete category").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Delete category").click()
    expect(dialog.get_by_role("alert")).to_contain_text(
        "1 deleted material is still filed under it"
    )
    dialog.get_by_role("button", name="Purge the deleted material for good and delete").click()
    expect(page.get_by_text("No categories yet")).to_be_visible()
    page.goto("/catalog/trash")
    expect(page.get_by_text("The trash is empty.")).to_be_visible()
