"""The main flow in one sitting, as a new user lives it, in one browser session: sign up and
confirm the address from the outbox, build a small catalog, give its materials photos, import a
file with a bad row, train a model on the photos, recognize a new photo, confirm the answer and
file it in a new project.

The other tests take each screen apart, each from a state set up through the API; this one sets
nothing up behind the app's back, so it fails when one step leaves the next without what it
needs (a photo still processing, a model not active, a project the recognition cannot see).
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import FilePayload, Page, expect

from tests.vision.textures import jpeg, material_set, stripes
from web.e2e.people import new_person
from web.e2e.support import Server, assert_accessible, screenshot

CATEGORY = "Wall finishes"
# Two materials a model tells apart at a glance: brass stripes and a blue mosaic's grid. Four
# photos each are enough to train on (two are the least) and keep the uploads quick.
PHOTOS_PER_MATERIAL = 4
MATERIALS = {
    "Brushed brass": {"code": "BR-1", "finish": "Brushed", "texture": "brushed_brass"},
    "Blue mosaic": {"code": "MO-1", "finish": "Glazed", "texture": "blue_mosaic"},
}
# Line 3 (the second material) has a thickness that is not a number.
IMPORT_CSV = (
    "code,name,category,properties.thickness\n"
    f"GL-1,Green glass tile,{CATEGORY},8\n"
    f"GL-2,White glass tile,{CATEGORY},eight\n"
    f"GL-3,Black glass tile,{CATEGORY},10\n"
)
PROJECT = "Harbour Office"
# One training on two cores, the handcrafted backbone only: well under a minute, with room.
TRAINING_SECONDS = 240


def _photo(name: str, data: bytes) -> FilePayload:
    return {"name": name, "mimeType": "image/jpeg", "buffer": data}


def _menu(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Menu").get_by_role("link", name=name).click()


def test_a_new_user_goes_from_sign_up_to_a_recognition_filed_in_a_project(
    page: Page, kai_server: Server, tmp_path: Path
) -> None:
    _sign_up_confirm_and_log_in(page, kai_server)
    _create_the_category_with_its_properties(page)
    photos = material_set(PHOTOS_PER_MATERIAL)
    for name, material in MATERIALS.items():
        _create_the_material(page, name, material)
        _upload_its_photos(page, name, photos[material["texture"]])
    _import_a_file_with_a_bad_row(page, tmp_path)
    _train_and_activate_a_model(page)
    recognition_url, confidence = _recognize_a_new_photo_and_confirm_it(page)
    _file_it_in_a_new_project(page, recognition_url, confidence)


def _sign_up_confirm_and_log_in(page: Page, server: Server) -> None:
    person = new_person("newcomer")
    page.goto("/signup")
    page.get_by_label("Your name").fill(person.name)
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_label("Organization (optional)").fill("Newcomer Interiors")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    expect(page.get_by_text(person.email)).to_be_visible()
    assert_accessible(page, "check your inbox")
    screenshot(page, "flow-1-check-inbox")

    # The link as the mail program opens it: a new address in the same browser.
    page.goto(server.link(person.email, "/verify-email"))
    assert_accessible(page, "confirm the address")
    page.get_by_role("button", name="Confirm my address").click()
    expect(page.get_by_role("status")).to_have_text(
        "Your address is confirmed. You can log in now."
    )
    page.get_by_role("link", name="Log in").click()
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name=person.name)).to_be_visible()
    screenshot(page, "flow-1-logged-in")


def _create_the_category_with_its_properties(page: Page) -> None:
    _menu(page, "Catalog")
    expect(page.get_by_text("No materials here yet.")).to_be_visible()
    page.get_by_role("navigation", name="Manage the catalog").get_by_role(
        "link", name="Categories"
    ).click()
    expect(page.get_by_text("No categories yet")).to_be_visible()
    form = page.get_by_role("form", name="New category")
    form.get_by_label("Name").fill(CATEGORY)
    form.get_by_role("button", name="Create category").click()
    expect(page.get_by_role("heading", level=2, name=CATEGORY)).to_be_visible()

    properties = page.get_by_role("form", name="Its own properties")
    properties.get_by_role("button", name="Add a property").click()
    properties.get_by_role("group", name="New property").get_by_label("Label").fill("Thickness")
    thickness = properties.get_by_role("group", name="Thickness")
    thickness.get_by_label("Type").select_option("number")
    thickness.get_by_label("Unit").select_option("mm")
    thickness.get_by_label("Minimum").fill("1")
    thickness.get_by_label("Maximum").fill("50")
    properties.get_by_role("button", name="Add a property").click()
    properties.get_by_role("group", name="New property").get_by_label("Label").fill("Finish")
    finish = properties.get_by_role("group", name="Finish")
    finish.get_by_label("Type").select_option("enum")
    finish.get_by_label("Options").fill("Brushed\nGlazed")
    properties.get_by_role("button", name="Save properties").click()
    expect(properties.get_by_role("status")).to_have_text("Saved")
    screenshot(page, "flow-2-category")


def _create_the_material(page: Page, name: str, material: dict[str, str]) -> None:
    _menu(page, "Catalog")
    page.get_by_role("link", name="New material").first.click()
    expect(page.get_by_role("heading", level=1, name="New material")).to_be_visible()
    page.get_by_label("Category").select_option(label=CATEGORY)
    # The category's properties join the form once it is chosen.
    page.get_by_label("Thickness (mm)").fill("6")
    page.get_by_label("Finish").select_option(material["finish"])
    page.get_by_label("Name").fill(name)
    page.get_by_label("Code (SKU)").fill(material["code"])
    assert_accessible(page, "new material form")
    screenshot(page, f"flow-2-new-material-{material['code']}")
    page.get_by_role("button", name="Create material").click()
    expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()
    expect(page.get_by_text("Material created.")).to_be_visible()
    # Without photos it has no look-alikes yet, which is no failure.
    expect(page.get_by_role("region", name="More like this")).to_contain_text("No look-alikes yet")


def _upload_its_photos(page: Page, name: str, photos: list[bytes]) -> None:
    """Photos chosen with the material page's "Choose files", each shown once the server's
    worker has made its thumbnail."""
    slug = name.lower().replace(" ", "-")
    expect(page.get_by_text("No images yet.")).to_be_visible()
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Choose files").click()
    chooser.value.set_files([_photo(f"{slug}-{n}.jpg", data) for n, data in enumerate(photos)])
    uploaded = page.get_by_role("status").filter(has_text=f"{len(photos)} images uploaded.")
    expect(uploaded).to_be_attached()
    for number in range(1, len(photos) + 1):
        expect(page.get_by_role("img", name=f"{name}, image {number}")).to_be_visible(
            timeout=60_000
        )
    expect(page.get_by_text("Processing…")).to_have_count(0)
    expect(page.get_by_text("Primary", exact=True)).to_have_count(1)
    screenshot(page, f"flow-3-photos-{slug}")


def _import_a_file_with_a_bad_row(page: Page, tmp_path: Path) -> None:
    csv_file = tmp_path / "glass-tiles.csv"
    csv_file.write_text(IMPORT_CSV, encoding="utf-8")
    _menu(page, "Catalog")
    page.get_by_role("navigation", name="Manage the catalog").get_by_role(
        "link", name="Import"
    ).click()
    expect(page.get_by_role("heading", level=1, name="Import materials")).to_be_visible()
    with page.expect_file_chooser() as chooser:
        page.get_by_text("Choose a file", exact=True).click()
    chooser.value.set_files(str(csv_file))
    expect(page.get_by_text("glass-tiles.csv")).to_be_visible()

    # The dry run, all or nothing: the bad row is named and nothing would be imported.
    page.get_by_role("button", name="Check the file").click()
    expect(page.get_by_text("nothing would be imported")).to_be_visible()
    bad_row = page.get_by_role("table", name="1 problem").get_by_role("row").nth(1)
    expect(bad_row.get_by_role("cell").nth(0)).to_have_text("3")
    expect(bad_row.get_by_role("cell").nth(1)).to_have_text("properties.thickness")
    screenshot(page, "flow-4-import-dry-run")

    # The good rows only: checked again, then imported as a job whose progress shows.
    page.get_by_label("Import the good rows, skip the others").check()
    page.get_by_role("button", name="Check the file").click()
    expect(page.get_by_text("2 materials would be written.")).to_be_visible()
    page.get_by_role("button", name="Import 2 materials").click()
    progress = page.get_by_role("progressbar")
    expect(progress).to_be_visible()
    expect(page.get_by_text("2 materials were written.")).to_be_visible(timeout=60_000)
    expect(progress).to_have_attribute("aria-valuenow", "100")
    expect(page.get_by_role("heading", name="Import report")).to_be_visible()
    problems = page.get_by_role("table", name="1 problem")
    expect(problems.get_by_role("row").nth(1).get_by_role("cell").nth(0)).to_have_text("3")
    expect(problems).to_contain_text("properties.thickness")
    assert_accessible(page, "catalog import report")
    screenshot(page, "flow-4-import-report")

    # In the catalog at once, beside the two made by hand; the bad row's material is not.
    page.get_by_role("link", name="← Catalog").click()
    expect(page.get_by_text("4 materials")).to_be_visible()
    grid = page.get_by_role("list", name="Materials")
    expect(grid.get_by_text("Black glass tile")).to_be_visible()
    expect(grid.get_by_text("White glass tile")).to_have_count(0)


def _train_and_activate_a_model(page: Page) -> None:
    _menu(page, "Models")
    expect(page.get_by_text("No model has been trained yet.")).to_be_visible()
    page.get_by_role("button", name="Train a new version").click()
    dialog = page.get_by_role("dialog", name="Train a new version")
    # The handcrafted backbone alone keeps the training quick on the test machine.
    dialog.get_by_role("checkbox", name=re.compile("efficientnet-lite0")).uncheck()
    # Both materials are in one category: each is its own label.
    dialog.get_by_role("radio", name="Its material", exact=True).check()
    expect(dialog.get_by_label("Make it the active version once trained")).to_be_checked()
    dialog.get_by_role("button", name="Start training").click()

    expect(page.get_by_role("heading", name="Training version 1")).to_be_visible()
    expect(page.get_by_role("progressbar")).to_be_visible()
    assert_accessible(page, "model training")
    screenshot(page, "flow-5-training")
    expect(page.get_by_text("Version 1 is trained and now active.")).to_be_visible(
        timeout=TRAINING_SECONDS * 1000
    )
    row = page.get_by_role("row", name=re.compile("Version 1"))
    expect(row).to_contain_text("Ready")
    expect(row.get_by_text("Active", exact=True)).to_be_visible()
    screenshot(page, "flow-5-trained")


def _recognize_a_new_photo_and_confirm_it(page: Page) -> tuple[str, str]:
    """A brass photo the model has not seen, chosen from the computer: the answer's URL and
    its confidence as shown."""
    _menu(page, "Recognize")
    expect(page.get_by_role("heading", level=1, name="Recognize a material")).to_be_visible()
    photo = jpeg(stripes(300, period=8, angle=0.25, colour=(200, 160, 70), seed=99))
    with page.expect_file_chooser() as chooser:
        page.get_by_text("or choose a photo", exact=True).click()
    chooser.value.set_files(_photo("showroom-wall.jpg", photo))

    expect(page.get_by_role("heading", level=1, name="What KAI sees")).to_be_visible()
    expect(page.get_by_text("Most likely Brushed brass (BR-1)")).to_be_visible()
    best = page.get_by_role("list", name="Predictions").get_by_role("listitem").first
    expect(best).to_contain_text("Brushed brass (BR-1)")
    percent = re.compile(r"\d+(\.\d)?%")
    expect(best).to_contain_text(percent)
    confidence = percent.search(best.inner_text())
    assert confidence is not None
    screenshot(page, "flow-6-recognized")

    page.get_by_role("button", name="This is right").click()
    expect(page.get_by_role("status").filter(has_text="this answer was right")).to_be_visible()
    expect(page.get_by_role("button", name="This is right")).to_have_count(0)
    # Nothing to file it in yet: the project comes next.
    expect(page.get_by_text("There are no active projects yet.")).to_be_visible()
    assert_accessible(page, "recognition confirmed")
    screenshot(page, "flow-6-confirmed")
    return page.url, confidence.group(0)


def _file_it_in_a_new_project(page: Page, recognition_url: str, confidence: str) -> None:
    _menu(page, "Projects")
    page.get_by_role("button", name="New project").first.click()
    dialog = page.get_by_role("dialog", name="New project")
    dialog.get_by_label("Name").fill(PROJECT)
    dialog.get_by_label("Client").fill("Port Authority")
    assert_accessible(page, "new project")
    dialog.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", level=1, name=PROJECT)).to_be_visible()
    expect(page.get_by_text("No recognitions are filed in this project yet.")).to_be_visible()

    # Back to the answer through the recent recognitions, and filed in the new project.
    _menu(page, "Recognize")
    recent = page.get_by_role("region", name="Recent recognitions")
    recent.get_by_role("link", name=re.compile("Brushed brass")).click()
    expect(page).to_have_url(recognition_url)
    page.get_by_label("Project", exact=True).select_option(label=f"{PROJECT} (Port Authority)")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_text(f"Filed in {PROJECT}.")).to_be_visible()
    page.get_by_role("link", name="Open the project").click()

    expect(page.get_by_role("heading", level=1, name=PROJECT)).to_be_visible()
    filed = page.get_by_role("region", name="Recognitions").get_by_role("listitem")
    expect(filed).to_have_count(1)
    expect(filed).to_contain_text("Brushed brass (BR-1)")
    # As sure as the answer said, not surer ("100%" where it said 99.9%).
    expect(filed).to_contain_text(confidence)
    expect(filed.get_by_role("img", name="showroom-wall.jpg")).to_be_visible()
    assert_accessible(page, "project with a recognition")
    screenshot(page, "flow-7-project")
    filed.get_by_role("link").click()
    expect(page).to_have_url(recognition_url)
