"""The catalog as a showroom's staff use it: materials created, pictured, edited, found,
filtered and deleted in Chromium, on a desktop and on a phone."""

from __future__ import annotations

import base64
import io
import re

from PIL import Image
from playwright.sync_api import Page, expect

from web.e2e.people import api_client, owner_of_new_organization
from web.e2e.support import Server, assert_accessible, screenshot


def _jpeg(colour: tuple[int, int, int], size: int = 320) -> bytes:
    """A small photo of a slab: a gradient, so it is not one flat colour."""
    image = Image.new("RGB", (size, size), colour)
    for x in range(size):
        for y in range(0, size, 8):
            image.putpixel((x, y), (x % 256, y % 256, (x + y) % 256))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _create_material(page: Page, *, name: str, code: str, thickness: str, finish: str) -> None:
    page.goto("/catalog")
    page.get_by_role("link", name="New material").first.click()
    expect(page.get_by_role("heading", name="New material")).to_be_visible()
    page.get_by_label("Category").select_option(label="Stone \u203a Tiles")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Code (SKU)").fill(code)
    page.get_by_label("Thickness (mm)").fill(thickness)
    page.get_by_label("Finish").select_option(finish)
    page.get_by_role("button", name="Create material").click()
    expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()
    expect(page.get_by_text("Material created.")).to_be_visible()


def _drop_image(page: Page, data: bytes, file_name: str) -> None:
    """Drag a file from the desktop onto the drop zone, as a browser delivers it."""
    transfer = page.evaluate_handle(
        """([encoded, name]) => {
            const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
            return transfer;
        }""",
        [base64.b64encode(data).decode(), file_name],
    )
    zone = page.get_by_test_id("image-dropzone")
    zone.dispatch_event("dragover", {"dataTransfer": transfer})
    zone.dispatch_event("drop", {"dataTransfer": transfer})


def test_staff_build_find_edit_and_clear_the_catalog(page: Page, kai_server: Server) -> None:
    owner = owner_of_new_organization(page, kai_server)
    # Categories have their own screens (another area); here they are only set up.
    with api_client(kai_server, owner) as api:
        stone = api.post("/api/v1/categories", json={"name": "Stone"})
        stone.raise_for_status()
        tiles = api.post(
            "/api/v1/categories",
            json={
                "name": "Tiles",
                "parent_id": stone.json()["id"],
                "properties": [
                    {
                        "key": "thickness",
                        "label": "Thickness",
                        "type": "number",
                        "unit": "mm",
                        "minimum": 1,
                        "maximum": 100,
                    },
                    {
                        "key": "finish",
                        "label": "Finish",
                        "type": "enum",
                        "options": ["polished", "honed"],
                    },
                    {"key": "frost_resistant", "label": "Frost resistant", "type": "boolean"},
                ],
            },
        )
        tiles.raise_for_status()
        tiles_id = tiles.json()["id"]

    page.goto("/catalog")
    expect(page.get_by_role("heading", level=1, name="Catalog")).to_be_visible()
    expect(page.get_by_text("No materials here yet.")).to_be_visible()
    navigation = page.get_by_role("navigation", name="Categories")
    expect(navigation.get_by_role("button", name="Stone")).to_be_visible()
    expect(navigation.get_by_role("button", name="Tiles")).to_be_visible()

    _create_material(page, name="Carrara Honed", code="CAR-1", thickness="20", finish="honed")
    _drop_image(page, _jpeg((230, 230, 225)), "carrara.jpg")
    expect(page.get_by_role("img", name="Carrara Honed, image 1")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Primary")).to_be_visible()
    carrara_url = page.url

    _create_material(page, name="Nero Polished", code="NER-1", thickness="30", finish="polished")
    page.locator("#image-files").set_input_files(
        files=[{"name": "nero.jpg", "mimeType": "image/jpeg", "buffer": _jpeg((20, 20, 25))}]
    )
    expect(page.get_by_role("img", name="Nero Polished, image 1")).to_be_visible(timeout=60_000)
    _create_material(page, name="Travertine Classic", code="TRA-1", thickness="12", finish="honed")

    # The grid: each tile with its primary image's thumbnail.
    page.goto("/catalog")
    page.get_by_role("navigation", name="Categories").get_by_role("button", name="Tiles").click()
    expect(page.get_by_role("heading", level=1, name="Tiles")).to_be_visible()
    grid = page.get_by_role("list", name="Materials")
    expect(grid.get_by_role("img", name="Carrara Honed")).to_be_visible(timeout=30_000)
    expect(grid.get_by_role("img", name="Nero Polished")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("3 materials")).to_be_visible()
    # Numbers filter by ranges: the thickness in buckets.
    expect(page.get_by_label("Thickness (mm)")).to_contain_text("12 to")
    assert_accessible(page, "catalog grid")
    screenshot(page, "catalog-grid")

    # The table, remembered after a reload.
    page.get_by_role("button", name="Table").click()
    table = page.get_by_role("table", name="Materials")
    expect(table.get_by_role("row", name=re.compile("Travertine Classic"))).to_contain_text("12 mm")
    page.reload()
    expect(page.get_by_role("button", name="Table")).to_have_attribute("aria-pressed", "true")
    assert_accessible(page, "catalog table")
    screenshot(page, "catalog-table")
    page.get_by_role("button", name="Grid").click()

    # Editing a typed property: saved, shown after a reload, in the history.
    page.goto(carrara_url)
    thickness = page.get_by_label("Thickness (mm)")
    expect(thickness).to_have_value("20")
    thickness.fill("25")
    page.get_by_label("Frost resistant").check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Thickness (mm)")).to_have_value("25")
    expect(page.get_by_label("Frost resistant")).to_be_checked()
    history = page.get_by_role("region", name="History")
    expect(history.get_by_text("Version 2")).to_be_visible()
    expect(history.get_by_text("Thickness: 20 mm → 25 mm")).to_be_visible()
    assert_accessible(page, "material page")
    screenshot(page, "catalog-material")

    # A field error is said beside its field.
    page.get_by_label("Thickness (mm)").fill("500")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".field-invalid .field-error")).to_be_visible()

    # Search with completions: typing, the arrow keys, Enter opens the material.
    page.goto("/catalog")
    search = page.get_by_role("combobox", name="Search the catalog")
    search.press_sequentially("Nero", delay=40)
    option = page.get_by_role("option", name=re.compile("Nero Polished"))
    expect(option).to_be_visible()
    search.press("ArrowDown")
    expect(search).to_have_attribute("aria-activedescendant", re.compile(".+"))
    search.press("Enter")
    expect(page.get_by_role("heading", level=1, name="Nero Polished")).to_be_visible()

    # Words searched: Enter without a completion chosen searches for what is typed.
    page.goto("/catalog")
    # The mode lives in the address, which the router updates a moment after the click.
    words = page.get_by_role("radio", name="Words")
    words.click()
    expect(words).to_be_checked()
    search = page.get_by_role("combobox", name="Search the catalog")
    search.fill("travertine")
    search.press("Enter")
    expect(page.get_by_text("1 material", exact=True)).to_be_visible()
    results = page.get_by_role("list", name="Materials")
    expect(results.get_by_text("Travertine Classic")).to_be_visible()

    # A category, then a facet narrows it.
    page.goto("/catalog")
    page.get_by_role("navigation", name="Categories").get_by_role("button", name="Tiles").click()
    expect(page.get_by_text("3 materials")).to_be_visible()
    page.get_by_label("Finish").select_option(label="honed (2)")
    expect(page.get_by_text("2 materials")).to_be_visible()
    grid = page.get_by_role("list", name="Materials")
    expect(grid.get_by_text("Nero Polished")).to_have_count(0)
    expect(grid.get_by_text("Carrara Honed")).to_be_visible()

    # Bulk edit of the selection: a status set on both.
    page.get_by_role("checkbox", name="Select Carrara Honed").check()
    page.get_by_role("checkbox", name="Select Travertine Classic").check()
    page.get_by_role("button", name="Edit selected").click()
    dialog = page.get_by_role("dialog", name="Edit 2 materials")
    dialog.get_by_label("Change").select_option(label="Set the status")
    dialog.get_by_label("New value").select_option(label="Active")
    dialog.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("2 materials changed.")).to_be_visible()
    expect(page.get_by_label("Status")).to_contain_text("Active (2)")

    # Bulk delete of the selection, confirmed.
    page.get_by_role("checkbox", name="Select Carrara Honed").check()
    page.get_by_role("checkbox", name="Select Travertine Classic").check()
    expect(page.get_by_text("2 selected")).to_be_visible()
    page.get_by_role("button", name="Delete selected").click()
    dialog = page.get_by_role("dialog", name="Delete 2 materials?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Delete 2 materials").click()
    expect(page.get_by_text("2 materials deleted.")).to_be_visible()
    page.get_by_role("button", name="Clear filters").click()
    expect(page.get_by_text("1 material", exact=True)).to_be_visible()
    expect(page.get_by_role("list", name="Materials").get_by_text("Nero Polished")).to_be_visible()

    # More than a page: the rest comes as the list scrolls, or with "Load more".
    with api_client(kai_server, owner) as api:
        mosaics = api.post("/api/v1/categories", json={"name": "Mosaics"})
        mosaics.raise_for_status()
        # More than a page of them, to scroll through.
        api.post(
            "/api/v1/materials/bulk",
            json={
                "materials": [
                    {
                        "code": f"MOS-{n:03}",
                        "name": f"Mosaic {n:03}",
                        "category_id": mosaics.json()["id"],
                    }
                    for n in range(52)
                ]
            },
        ).raise_for_status()
    page.reload()
    page.get_by_role("navigation", name="Categories").get_by_role("button", name="Mosaics").click()
    expect(page.get_by_text("52 materials")).to_be_visible()
    tiles_shown = page.get_by_role("list", name="Materials").get_by_role("listitem")
    page.get_by_role("list", name="Materials").get_by_text(
        "Mosaic 040"
    ).scroll_into_view_if_needed()
    expect(tiles_shown).to_have_count(52)
    expect(page.get_by_role("button", name="Load more")).to_have_count(0)

    # A phone: the tree becomes a select, the tiles two a row.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/catalog")
    page.get_by_role("combobox", name="Categories").select_option(tiles_id)
    expect(page.get_by_role("heading", level=1, name="Tiles")).to_be_visible()
    expect(page.get_by_role("list", name="Materials").get_by_text("Nero Polished")).to_be_visible()
    assert_accessible(page, "catalog on a phone")
    screenshot(page, "catalog-phone")
    page.get_by_role("link", name=re.compile("Nero Polished")).click()
    expect(page).to_have_url(re.compile("/catalog/materials/"))
    expect(page.get_by_role("heading", level=1, name="Nero Polished")).to_be_visible(timeout=20_000)
    expect(page.get_by_role("img", name="Nero Polished, image 1")).to_be_visible()
    assert_accessible(page, "material page on a phone")
    screenshot(page, "catalog-material-phone")


def test_an_editor_restores_an_earlier_version(page: Page, kai_server: Server) -> None:
    owner = owner_of_new_organization(page, kai_server, "restorer")
    with api_client(kai_server, owner) as api:
        tiles = api.post(
            "/api/v1/categories",
            json={
                "name": "Tiles",
                "properties": [
                    {"key": "thickness", "label": "Thickness", "type": "number", "unit": "mm"},
                    {"key": "finish", "label": "Finish", "type": "enum",
                     "options": ["polished", "honed"]},
                ],
            },
        )  # fmt: skip
        tiles.raise_for_status()
        carrara = api.post(
            "/api/v1/materials",
            json={
                "name": "Carrara Honed",
                "code": "CAR-1",
                "category_id": tiles.json()["id"],
                "properties": {"thickness": 20, "finish": "honed"},
            },
        )
        carrara.raise_for_status()

    # An edit that turns out wrong.
    page.goto(f"/catalog/materials/{carrara.json()['id']}")
    page.get_by_label("Name").fill("Carrara Polished")
    page.get_by_label("Thickness (mm)").fill("25")
    page.get_by_label("Finish").select_option("polished")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    expect(page.get_by_role("heading", level=1, name="Carrara Polished")).to_be_visible()

    # Back to the first version, from the history, after a confirmation.
    history = page.get_by_role("region", name="History")
    first = history.locator("li", has=page.get_by_text("Version 1", exact=True))
    first.get_by_role("button", name="Restore this version").click()
    dialog = page.get_by_role("dialog", name="Restore version 1?")
    expect(dialog).to_contain_text("saved as a new version")
    assert_accessible(page, "restore a version")
    dialog.get_by_role("button", name="Restore version 1").click()

    expect(page.get_by_text("Version 1 restored, saved as version 3.")).to_be_visible()
    expect(page.get_by_role("heading", level=1, name="Carrara Honed")).to_be_visible()
    expect(page.get_by_label("Thickness (mm)")).to_have_value("20")
    expect(page.get_by_label("Finish")).to_have_value("honed")
    newest = history.locator("li", has=page.get_by_text("Version 3", exact=True))
    expect(newest).to_contain_text("Restored from version 1")
    expect(newest).to_contain_text("Thickness: 25 mm → 20 mm")
    # The edit stays in the history: nothing was rewritten.
    expect(history.get_by_text("Version 2", exact=True)).to_be_visible()
    screenshot(page, "catalog-material-restored")

    page.reload()
    expect(page.get_by_label("Thickness (mm)")).to_have_value("20")
    expect(page.get_by_role("heading", level=1, name="Carrara Honed")).to_be_visible()
