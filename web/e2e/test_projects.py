"""Projects: a client job's chosen materials, their quantities and totals, its export, sharing
and archiving, in Chromium as an owner does it."""

from __future__ import annotations

import csv
import io
import re
import time
from typing import Any

from PIL import Image
from playwright.sync_api import Locator, Page, expect

from web.e2e.people import Person, owner_of_new_organization
from web.e2e.support import Server, assert_accessible, screenshot


def _api_token(page: Page, person: Person) -> str:
    """A bearer token of the person's own, for set-up through the API (a session apart from
    the page's, so the page's refresh cookie is left alone)."""
    answer = page.request.post(
        "/api/v1/auth/login", data={"email": person.email, "password": person.password}
    )
    assert answer.ok, answer.text()
    return str(answer.json()["access_token"])


def _post(page: Page, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = page.request.post(path, data=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.ok, f"{path}: {answer.status} {answer.text()}"
    result: dict[str, Any] = answer.json()
    return result


def _upload_photo(page: Page, token: str, material_id: str) -> None:
    """A generated photo for the material, waited for until its thumbnail is ready."""
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (214, 208, 196)).save(buffer, format="PNG")
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/api/v1/materials/{material_id}/images"
    answer = page.request.post(
        path,
        multipart={
            "file": {"name": "slab.png", "mimeType": "image/png", "buffer": buffer.getvalue()}
        },
        headers=headers,
    )
    assert answer.ok, answer.text()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        images = page.request.get(path, headers=headers).json()["items"]
        if images and images[0]["status"] == "ready":
            return
        assert not images or images[0]["status"] != "failed", images
        time.sleep(0.3)
    raise AssertionError("the material's photo was never processed")


def _line(page: Page, name: str) -> Locator:
    """A chosen material's entry on the project page."""
    return page.get_by_role("listitem").filter(has=page.get_by_role("heading", name=name))


def test_owner_builds_a_project_prices_it_exports_shares_and_archives_it(
    page: Page, kai_server: Server
) -> None:
    owner = owner_of_new_organization(page, kai_server)
    page.goto("/projects")
    expect(page.get_by_role("heading", name="Projects", level=1)).to_be_visible()
    expect(page.get_by_text("No projects yet. Create the first one")).to_be_visible()

    token = _api_token(page, owner)
    category = _post(page, token, "/api/v1/categories", {"name": "Natural stone"})
    materials = {}
    for name, code, price in (
        ("Carrara Honed Marble", "CAR-H-01", "39.90"),
        ("Basalt Anthracite Tile", "BAS-A-02", "12.50"),
    ):
        materials[name] = _post(
            page,
            token,
            "/api/v1/materials",
            {
                "name": name,
                "code": code,
                "category_id": category["id"],
                "price": price,
                "currency": "EUR",
                "status": "active",
            },
        )
    _upload_photo(page, token, materials["Carrara Honed Marble"]["id"])
    _post(page, token, "/api/v1/teams", {"name": "Site crew"})

    # A new project, through the empty state's invitation.
    page.get_by_role("button", name="New project").first.click()
    dialog = page.get_by_role("dialog", name="New project")
    dialog.get_by_label("Name").fill("Villa Rossi")
    dialog.get_by_label("Client").fill("Rossi family")
    dialog.get_by_label("Description").fill("Kitchen and terrace floors.")
    expect(dialog.get_by_label("Site crew")).not_to_be_checked()
    dialog.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Villa Rossi", level=1)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/projects/[0-9a-f-]{36}$"))
    expect(page.get_by_text("Shared with everyone")).to_be_visible()
    expect(page.get_by_text("No materials chosen yet.")).to_be_visible()

    # Both materials chosen from the catalog through the picker.
    page.get_by_role("button", name="Add material").click()
    picker = page.get_by_role("dialog", name="Add material")
    search = picker.get_by_label("Search the catalog")
    search.fill("Carrara")
    picker.get_by_role("button", name="Add Carrara Honed Marble").click()
    expect(picker.get_by_role("status")).to_have_text("Carrara Honed Marble was added.")
    search.fill("Basalt")
    picker.get_by_role("button", name="Add Basalt Anthracite Tile").click()
    expect(picker.get_by_role("status")).to_have_text("Basalt Anthracite Tile was added.")
    # Once the picker shows only Basalt's row (Carrara's may linger while it searches).
    expect(picker.get_by_text("In the project")).to_have_count(1)
    picker.get_by_role("button", name="Close").click()

    carrara = _line(page, "Carrara Honed Marble")
    basalt = _line(page, "Basalt Anthracite Tile")
    expect(carrara.get_by_text("€39.90 per unit")).to_be_visible()
    # The photo arrives with the session's token, as a blob: address.
    photo = carrara.get_by_role("img", name="Photo of Carrara Honed Marble")
    expect(photo).to_have_attribute("src", re.compile(r"^blob:"))

    # Quantities and units, saved line by line; a bad quantity is said beside its field.
    carrara.get_by_label("Quantity").fill("12,5,1")
    carrara.get_by_role("button", name="Save").click()
    expect(carrara.get_by_text("Enter a number, such as 12.5.")).to_be_visible()
    carrara.get_by_label("Quantity").fill("12,5")
    carrara.get_by_label("Unit").fill("m2")
    expect(carrara.get_by_text("€498.75")).to_be_visible()
    carrara.get_by_role("button", name="Save").click()
    expect(carrara.get_by_role("status")).to_have_text("Saved")
    basalt.get_by_label("Quantity").fill("4")
    basalt.get_by_label("Unit").fill("pcs")
    basalt.get_by_label("Note").fill("Terrace border")
    basalt.get_by_role("button", name="Save").click()
    expect(basalt.get_by_role("status")).to_have_text("Saved")
    expect(page.get_by_text("€548.75")).to_be_visible()

    # What was saved is what the server keeps.
    page.reload()
    expect(page.get_by_role("heading", name="Villa Rossi", level=1)).to_be_visible()
    expect(carrara.get_by_label("Quantity")).to_have_value("12.5")
    expect(carrara.get_by_label("Unit")).to_have_value("m2")
    expect(basalt.get_by_label("Quantity")).to_have_value("4")
    expect(basalt.get_by_label("Note")).to_have_value("Terrace border")
    totals = page.locator(".totals").first
    expect(totals).to_contain_text("Total (EUR)")
    expect(totals).to_contain_text("€548.75")
    assert_accessible(page, "project")
    screenshot(page, "projects-detail")

    # The chosen materials as a CSV file, one row each.
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    path = download.path()
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    by_code = {row["code"]: row for row in rows}
    assert set(by_code) == {"CAR-H-01", "BAS-A-02"}
    assert by_code["CAR-H-01"]["quantity"] == "12.5"
    assert by_code["CAR-H-01"]["unit"] == "m2"
    assert by_code["CAR-H-01"]["line_total"] == "498.75"
    assert by_code["BAS-A-02"]["line_total"] == "50.00"
    assert by_code["BAS-A-02"]["note"] == "Terrace border"
    assert by_code["CAR-H-01"]["category"] == "Natural stone"

    # Described anew.
    page.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("dialog", name="Edit the project")
    expect(edit.get_by_label("Name")).to_have_value("Villa Rossi")
    edit.get_by_label("Description").fill("Kitchen, terrace and stairs.")
    edit.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Kitchen, terrace and stairs.")).to_be_visible()

    # Shared with one team only.
    page.get_by_role("button", name="Share").click()
    share = page.get_by_role("dialog", name="Share with teams")
    share.get_by_label("Site crew").check()
    share.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Shared with Site crew")).to_be_visible()

    # Archived: no more changes to its materials, and listed among the archived.
    page.get_by_role("button", name="Archive").click()
    expect(page.get_by_role("button", name="Reopen")).to_be_visible()
    expect(page.get_by_text("This project is archived")).to_be_visible()
    expect(page.get_by_role("button", name="Add material")).to_have_count(0)
    expect(carrara.get_by_label("Quantity")).to_have_count(0)
    expect(carrara).to_contain_text("12.5 m2")

    page.get_by_role("link", name="Projects").first.click()
    expect(page.get_by_role("heading", name="Projects", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Villa Rossi")).to_have_count(0)
    page.get_by_role("button", name="Archived").click()
    expect(page.get_by_role("link", name="Villa Rossi")).to_be_visible()
    item = page.get_by_role("listitem").filter(has=page.get_by_role("link", name="Villa Rossi"))
    expect(item).to_contain_text("2 materials")
    expect(item).to_contain_text("€548.75")
    assert_accessible(page, "projects")
    screenshot(page, "projects-list")

    # On a phone.
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "projects-list-phone")
    page.get_by_role("link", name="Villa Rossi").click()
    page.get_by_role("button", name="Reopen").click()
    expect(page.get_by_role("button", name="Archive")).to_be_visible()
    expect(carrara.get_by_label("Quantity")).to_have_value("12.5")
    assert_accessible(page, "project-phone")
    screenshot(page, "projects-detail-phone")


def test_deleting_a_project_asks_first(page: Page, kai_server: Server) -> None:
    owner = owner_of_new_organization(page, kai_server)
    token = _api_token(page, owner)
    project = _post(page, token, "/api/v1/projects", {"name": "Loft Weber", "client": "Weber"})
    page.goto(f"/projects/{project['id']}")
    expect(page.get_by_role("heading", name="Loft Weber", level=1)).to_be_visible()
    expect(page.get_by_text("No recognitions are filed in this project yet.")).to_be_visible()

    page.get_by_role("button", name="Delete project").click()
    confirm = page.get_by_role("dialog", name="Delete project")
    expect(confirm).to_contain_text("Delete “Loft Weber” for good?")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    expect(page.get_by_role("heading", name="Loft Weber", level=1)).to_be_visible()

    page.get_by_role("button", name="Delete project").click()
    confirm.get_by_role("button", name="Delete for good").click()
    expect(page.get_by_role("heading", name="Projects", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Loft Weber")).to_have_count(0)
    page.goto(f"/projects/{project['id']}")
    expect(page.get_by_role("alert")).to_be_visible()
