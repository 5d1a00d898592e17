"""Recognizing materials in Chromium, as a designer on site does: a photo from the phone's
camera, the answer with its confidence and look-alikes, feedback, filing it in a project; many
photos in a batch with a CSV of the results; and reverse image search.

A fresh organization has no trained model, so recognitions answer "train a model first" (the
first test shows what the screen says then). The others share one organization whose catalog
(three categories, two materials each, three generated photos per material) and first model
are set up through the API once, as an administrator would have done before.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.vision.textures import checks, grain, jpeg, material_set, stripes
from web.e2e.people import Person, log_in, new_person, owner_of_new_organization
from web.e2e.support import Server, assert_accessible, screenshot

CATEGORIES = {
    "brushed_brass": "Brushed brass",
    "blue_mosaic": "Blue mosaic",
    "grey_terrazzo": "Grey terrazzo",
}
PROJECT = "Harbour Office"
WAIT_SECONDS = 180.0


@dataclass(frozen=True)
class Catalog:
    person: Person
    # Material name -> its id and the photos it was given.
    materials: dict[str, dict[str, Any]]
    project_id: str


def _photo(name: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "mimeType": "image/jpeg", "buffer": data}


def _brass_photo() -> bytes:
    return jpeg(stripes(300, period=8, angle=0.25, colour=(200, 160, 70), seed=99))


@contextlib.contextmanager
def _api(server: Server, person: Person) -> Iterator[httpx.Client]:
    """An API client signed in as `person` (set-up only: what is tested goes through the app)."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        answer = http.post(
            "/api/v1/auth/login", json={"email": person.email, "password": person.password}
        )
        assert answer.status_code == 200, answer.text
        http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        yield http


def _wait_for_jobs(http: httpx.Client, kind: str, count: int) -> None:
    """Until `count` jobs of `kind` have finished, all of them successfully."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        jobs = http.get("/api/v1/jobs", params={"kind": kind, "limit": 200}).json()["items"]
        ended = [job for job in jobs if job["status"] in ("succeeded", "failed", "cancelled")]
        if len(ended) >= count and len(ended) == len(jobs):
            assert all(job["status"] == "succeeded" for job in ended), ended
            return
        time.sleep(0.5)
    raise AssertionError(f"{count} {kind} job(s) did not finish within {WAIT_SECONDS} s")


@pytest.fixture(scope="module")
def catalog(kai_server: Server) -> Iterator[Catalog]:
    person = new_person("recognizer")
    with httpx.Client(base_url=kai_server.url, timeout=60) as guest:
        signed = guest.post(
            "/api/v1/auth/signup",
            json={
                "name": person.name,
                "email": person.email,
                "password": person.password,
                "organization_name": "Recognize Stone",
            },
        )
        assert signed.status_code == 202, signed.text
        token = kai_server.link(person.email, "/verify-email").split("token=", 1)[1]
        assert guest.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 204
    with _api(kai_server, person) as http:
        photos = material_set(6)
        materials: dict[str, dict[str, Any]] = {}
        for key, name in CATEGORIES.items():
            category = http.post("/api/v1/categories", json={"name": name})
            assert category.status_code == 201, category.text
            for index in range(2):
                material_name = f"{name} {index + 1}"
                material = http.post(
                    "/api/v1/materials",
                    json={
                        "name": material_name,
                        "code": f"{key[:2].upper()}-{index + 1}",
                        "category_id": category.json()["id"],
                    },
                )
                assert material.status_code == 201, material.text
                own = photos[key][index * 3 : index * 3 + 3]
                for number, photo in enumerate(own):
                    uploaded = http.post(
                        f"/api/v1/materials/{material.json()['id']}/images",
                        files={"file": (f"{key}-{index}-{number}.jpg", photo, "image/jpeg")},
                    )
                    assert uploaded.status_code == 201, uploaded.text
                materials[material_name] = {"id": material.json()["id"], "photos": own}
        _wait_for_jobs(http, "catalog.image_derivatives", 18)
        trained = http.post("/api/v1/models", json={})
        assert trained.status_code == 202, trained.text
        _wait_for_jobs(http, "ml.train_model", 1)
        # The catalog's photos embedded for likeness: similar materials exist.
        _wait_for_jobs(http, "search.embed_images", 1)
        project = http.post("/api/v1/projects", json={"name": PROJECT, "client": "Port Authority"})
        assert project.status_code == 201, project.text
        yield Catalog(person=person, materials=materials, project_id=project.json()["id"])


def _confidence_threshold(server: Server, person: Person, value: float) -> None:
    with _api(server, person) as http:
        changed = http.patch("/api/v1/recognitions/settings", json={"confidence_threshold": value})
        assert changed.status_code == 200, changed.text


def test_a_fresh_organization_is_told_to_train_a_model_first(
    page: Page, kai_server: Server
) -> None:
    owner_of_new_organization(page, kai_server, "untrained")
    page.get_by_role("navigation", name="Menu").get_by_role("link", name="Recognize").click()
    expect(page.get_by_role("heading", level=1, name="Recognize a material")).to_be_visible()
    expect(page.get_by_text("No recognitions yet. Take a photo to start.")).to_be_visible()
    page.get_by_label("Take a photo").set_input_files(_photo("brass.jpg", _brass_photo()))
    expect(page.get_by_role("alert")).to_contain_text("has no trained model yet")
    assert_accessible(page, "recognize-untrained")
    screenshot(page, "recognize-untrained")


def test_a_photo_is_recognized_corrected_and_filed_in_a_project(
    page: Page, kai_server: Server, catalog: Catalog
) -> None:
    log_in(page, catalog.person)
    page.goto("/recognize")
    expect(page.get_by_role("heading", level=1, name="Recognize a material")).to_be_visible()
    camera = page.get_by_label("Take a photo")
    assert camera.get_attribute("capture") == "environment"
    assert camera.get_attribute("accept") == "image/*"
    assert_accessible(page, "recognize")
    screenshot(page, "recognize-camera")

    camera.set_input_files(_photo("brass-wall.jpg", _brass_photo()))
    expect(page).to_have_url(re.compile(r"/recognize/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", level=1, name="What KAI sees")).to_be_visible()
    bars = page.get_by_role("list", name="Predictions").get_by_role("listitem")
    expect(bars).to_have_count(3)
    # A brass photo against a model trained on brass: known, brass first, bars best first.
    expect(page.get_by_text("Most likely Brushed brass")).to_be_visible()
    expect(bars.first).to_contain_text("Brushed brass")
    percents = [
        float(re.search(r"([\d.]+)%", text).group(1))  # type: ignore[union-attr]
        for text in bars.all_inner_texts()
    ]
    assert percents == sorted(percents, reverse=True)
    expect(page.get_by_role("img", name="The recognized photo brass-wall.jpg")).to_have_attribute(
        "src", re.compile("^blob:")
    )

    # Similar catalog materials, with their thumbnails, linking to the catalog.
    similar = page.get_by_role("list").filter(
        has=page.get_by_role("link", name=re.compile("Similarity"))
    )
    first = similar.get_by_role("link").first
    expect(first).to_contain_text("Brushed brass")
    expect(first.get_by_role("img")).to_have_attribute("src", re.compile("^blob:"))
    href = first.get_attribute("href") or ""
    brass_ids = {catalog.materials[f"Brushed brass {n}"]["id"] for n in (1, 2)}
    assert href.removeprefix("/catalog/materials/") in brass_ids
    assert_accessible(page, "recognition-result")
    screenshot(page, "recognize-result")

    # "It is actually …": the person says what it really is, and sees it acknowledged.
    page.get_by_role("button", name="It is actually …").click()
    page.get_by_label("What the photo really is").select_option(label="Blue mosaic")
    page.get_by_role("button", name="Send the correction").click()
    expect(page.get_by_role("status").filter(has_text="kept as Blue mosaic")).to_be_visible()

    # Filed in a project, which stays after a reload.
    page.get_by_label("Project", exact=True).select_option(label=f"{PROJECT} (Port Authority)")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_text(f"Filed in {PROJECT}.")).to_be_visible()
    page.reload()
    expect(page.get_by_text(f"Filed in {PROJECT}.")).to_be_visible()
    expect(page.get_by_role("link", name="Open the project")).to_have_attribute(
        "href", f"/projects/{catalog.project_id}"
    )
    recognition_url = page.url
    with _api(kai_server, catalog.person) as http:
        filed = http.get("/api/v1/recognitions", params={"project_id": catalog.project_id})
        assert [item["id"] for item in filed.json()["items"]] == [recognition_url.rsplit("/", 1)[1]]

    # The recent list leads back to the same answer.
    page.get_by_role("link", name="Recognize another photo").click()
    recent = page.get_by_role("region", name="Recent recognitions")
    recent.get_by_role("link", name=re.compile("Brushed brass")).first.click()
    expect(page).to_have_url(recognition_url)
    expect(page.get_by_text("Most likely Brushed brass")).to_be_visible()


def test_an_unsure_answer_is_explained_in_words(
    page: Page, kai_server: Server, catalog: Catalog
) -> None:
    # An organization that asks for near certainty: no answer is sure enough.
    _confidence_threshold(kai_server, catalog.person, 1.0)
    try:
        log_in(page, catalog.person)
        page.goto("/recognize")
        page.get_by_label("Take a photo").set_input_files(
            _photo("terrazzo.jpg", jpeg(grain(256, blur=6, colour=(150, 150, 145), seed=7)))
        )
        expect(page.get_by_role("heading", name="KAI does not know what this is")).to_be_visible()
        note = page.get_by_role("note")
        expect(note).to_contain_text("is under the confidence your organization asks for (100%)")
        expect(note).to_contain_text("Its best guess, Grey terrazzo")
        expect(page.get_by_text("Unknown", exact=True)).to_be_visible()
        # Nothing to confirm: only "what it really is" is offered, at once.
        expect(page.get_by_role("button", name="This is right")).to_have_count(0)
        expect(page.get_by_label("What the photo really is")).to_be_visible()
        assert_accessible(page, "recognition-unknown")
        screenshot(page, "recognize-unknown")
    finally:
        _confidence_threshold(kai_server, catalog.person, 0.5)


def test_a_batch_of_photos_runs_to_a_results_table_and_a_csv(
    page: Page, kai_server: Server, catalog: Catalog
) -> None:
    log_in(page, catalog.person)
    page.goto("/recognize")
    page.get_by_role("navigation", name="Recognition").get_by_role(
        "link", name="Many photos"
    ).click()
    expect(page.get_by_role("heading", level=1, name="Recognize many photos")).to_be_visible()
    assert_accessible(page, "recognize-batches")
    photos = [
        _photo("site-1-brass.jpg", _brass_photo()),
        _photo("site-2-mosaic.jpg", jpeg(checks(256, cell=15, colour=(60, 90, 190), seed=41))),
        _photo("site-3-terrazzo.jpg", jpeg(grain(256, blur=6, colour=(150, 150, 145), seed=42))),
    ]
    page.get_by_label("Choose photos or zips").set_input_files(photos)
    expect(page.get_by_text("3 files chosen")).to_be_visible()
    page.get_by_role("button", name="Recognize 3 files").click()

    expect(page).to_have_url(re.compile(r"/recognize/batches/[0-9a-f-]{36}$"))
    expect(page.get_by_text("Recognized 3 of 3")).to_be_visible(timeout=120_000)
    expect(page.locator(".batch-progress-text")).to_contain_text("Done")
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    rows = page.locator("table.batch-results tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("site-1-brass.jpg")
    expect(rows.nth(0)).to_contain_text("Recognized")
    expect(rows.nth(0)).to_contain_text("Brushed brass")
    expect(rows.nth(2)).to_contain_text("site-3-terrazzo.jpg")
    assert_accessible(page, "recognize-batch")
    screenshot(page, "recognize-batch")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    text = download.value.path().read_text(encoding="utf-8")
    assert download.value.suggested_filename.endswith(".csv")
    table = list(csv.DictReader(io.StringIO(text)))
    assert [row["file_name"] for row in table] == [
        "site-1-brass.jpg",
        "site-2-mosaic.jpg",
        "site-3-terrazzo.jpg",
    ]
    assert table[0]["label"] == "Brushed brass"
    assert all(row["status"] == "recognized" for row in table)

    # The batch is among the earlier ones.
    page.get_by_role("link", name="Back").click()
    earlier = page.get_by_role("region", name="Earlier batches")
    expect(earlier.get_by_role("row")).to_have_count(2)
    expect(earlier).to_contain_text("Done")
    assert_accessible(page, "recognize-batches-list")
    screenshot(page, "recognize-batches")


def test_reverse_image_search_finds_the_material_whose_photo_it_was(
    page: Page, kai_server: Server, catalog: Catalog
) -> None:
    log_in(page, catalog.person)
    page.goto("/recognize/search")
    expect(page.get_by_role("heading", level=1, name="Find look-alike materials")).to_be_visible()
    assert_accessible(page, "recognize-search")
    wanted = catalog.materials["Blue mosaic 2"]
    page.get_by_label("or choose a photo").set_input_files(
        _photo("sample.jpg", wanted["photos"][1])
    )
    results = page.get_by_role("region", name="Look-alikes").get_by_role("link")
    # Its own material among the two closest (its sibling's photos are nearly the same
    # pattern), the closest one of its kind, each with its thumbnail.
    expect(results.first).to_contain_text("Blue mosaic")
    expect(results.first.get_by_role("img")).to_have_attribute("src", re.compile("^blob:"))
    top_two = [results.nth(index).get_attribute("href") for index in range(2)]
    assert f"/catalog/materials/{wanted['id']}" in top_two
    expect(page.get_by_role("img", name="The photo you searched with")).to_be_visible()
    assert_accessible(page, "recognize-search-results")
    screenshot(page, "recognize-search")


def test_the_camera_screen_on_a_phone(page: Page, kai_server: Server, catalog: Catalog) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, catalog.person)
    page.goto("/recognize")
    button = page.locator("label.camera-button")
    expect(button).to_be_visible()
    box = button.bounding_box()
    assert box is not None
    # Big, near the top, and within the phone's width.
    assert box["height"] >= 64
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 390
    assert box["y"] < 300
    assert page.get_by_label("Take a photo").get_attribute("capture") == "environment"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_accessible(page, "recognize-phone")
    screenshot(page, "recognize-phone")

    page.get_by_label("Take a photo").set_input_files(_photo("phone.jpg", _brass_photo()))
    expect(page.get_by_text("Most likely Brushed brass")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "recognize-phone-result")
