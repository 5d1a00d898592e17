"""The recognition models of an organization: training a version and reading how it did,
activating it, the recognition thresholds and the uploaded backbones; in Chromium."""

from __future__ import annotations

import io
import random
import re
import time
from typing import Any

import httpx
from PIL import Image
from playwright.sync_api import Page, expect

from kai.vision import non_materials
from web.e2e.people import Person, owner_of_new_organization
from web.e2e.support import Server, assert_accessible, screenshot

# Three clearly different materials: a colour each, with grain so no two photos are alike.
COLOURS = {"Red granite": (178, 34, 34), "Green marble": (34, 139, 60), "Blue slate": (40, 70, 170)}
PHOTOS_PER_CLASS = 6
# One training on two cores, the handcrafted backbone only: seconds, with room to spare.
TRAINING_SECONDS = 240


def _api(server: Server, person: Person) -> httpx.Client:
    """The API as `person`, for setting up what the screens under test then show."""
    client = httpx.Client(base_url=server.url, timeout=60)
    answer = client.post(
        "/api/v1/auth/login", json={"email": person.email, "password": person.password}
    )
    assert answer.status_code == 200, answer.text
    client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return client


def _photo(colour: tuple[int, int, int], seed: int) -> bytes:
    rng = random.Random(seed)  # noqa: S311 - test photos' grain, not a secret
    side = 160
    pixels = bytearray()
    for _ in range(side * side):
        grain = rng.randint(-28, 28)
        pixels.extend(max(0, min(255, channel + grain + rng.randint(-6, 6))) for channel in colour)
    image = Image.frombytes("RGB", (side, side), bytes(pixels))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def _catalog_with_photos(client: httpx.Client) -> None:
    """A category and a material per colour, each material with a few photos; waits until
    every photo is processed, as a training needs."""
    for number, (name, colour) in enumerate(COLOURS.items()):
        category = client.post("/api/v1/categories", json={"name": name})
        assert category.status_code == 201, category.text
        material = client.post(
            "/api/v1/materials",
            json={"name": name, "code": f"M-{number}", "category_id": category.json()["id"]},
        )
        assert material.status_code == 201, material.text
        for shot in range(PHOTOS_PER_CLASS):
            uploaded = client.post(
                f"/api/v1/materials/{material.json()['id']}/images",
                files={"file": (f"{shot}.jpg", _photo(colour, number * 100 + shot), "image/jpeg")},
            )
            assert uploaded.status_code == 201, uploaded.text
    expected = len(COLOURS) * PHOTOS_PER_CLASS
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        jobs: dict[str, Any] = client.get(
            "/api/v1/jobs",
            params={"kind": "catalog.image_derivatives", "status": "succeeded", "limit": 200},
        ).json()
        if len(jobs["items"]) >= expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"{expected} photos not processed in time")


def test_train_a_version_read_its_evaluation_and_activate_it(
    page: Page, kai_server: Server
) -> None:
    owner = owner_of_new_organization(page, kai_server, "trainer")
    client = _api(kai_server, owner)
    try:
        _catalog_with_photos(client)
    finally:
        client.close()

    page.get_by_role("navigation", name="Menu").get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Model versions", level=1)).to_be_visible()
    expect(page.get_by_text("No model has been trained yet.")).to_be_visible()
    assert_accessible(page, "models-empty")

    page.get_by_role("button", name="Train a new version").click()
    dialog = page.get_by_role("dialog", name="Train a new version")
    expect(dialog.get_by_role("checkbox", name=re.compile("handcrafted"))).to_be_checked()
    # The handcrafted backbone alone keeps the training quick on the test machine.
    dialog.get_by_role("checkbox", name=re.compile("efficientnet-lite0")).uncheck()
    dialog.get_by_label("Make it the active version once trained").uncheck()
    assert_accessible(page, "models-train")
    screenshot(page, "models-train")
    dialog.get_by_role("button", name="Start training").click()

    expect(page.get_by_role("heading", name="Training version 1")).to_be_visible()
    expect(page.get_by_role("progressbar")).to_be_visible()
    screenshot(page, "models-training")
    expect(page.get_by_text("Version 1 is trained and ready.")).to_be_visible(
        timeout=TRAINING_SECONDS * 1000
    )
    expect(page.get_by_role("progressbar")).to_have_count(0)
    row = page.get_by_role("row", name=re.compile("Version 1"))
    expect(row).to_contain_text("Ready")
    expect(row).to_contain_text("handcrafted")
    expect(row).to_contain_text("%")
    expect(row.get_by_text("Active", exact=True)).to_have_count(0)
    assert_accessible(page, "models-versions")
    screenshot(page, "models-versions")

    page.get_by_role("link", name="See how version 1 did").click()
    expect(page.get_by_role("heading", name="Version 1", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Validation")).to_be_visible()
    expect(page.locator(".stat").filter(has_text="Accuracy")).to_contain_text("%")
    per_class = page.locator("table.per-class-table")
    for name in COLOURS:
        expect(per_class.get_by_role("rowheader", name=name)).to_be_visible()
    expect(per_class.get_by_role("columnheader", name="Precision")).to_be_visible()
    expect(per_class.get_by_role("row")).to_have_count(1 + len(COLOURS))
    # The heat map is drawn (an SVG, one square per cell) and its numbers are in a table.
    chart = page.get_by_role("img", name=re.compile("Confusion matrix as a heat map"))
    expect(chart.locator("svg").first).to_be_visible()
    expect(chart.locator("rect.cm-cell")).to_have_count(len(COLOURS) ** 2)
    matrix = page.get_by_role("table", name=re.compile("Confusion matrix: photos per actual"))
    expect(matrix.get_by_role("row")).to_have_count(1 + len(COLOURS))
    provenance = page.get_by_role("table", name="Backbones and their weights")
    weights = provenance.get_by_role("cell", name=re.compile(r"handcrafted:[0-9a-f]{12}"))
    expect(weights).to_be_visible()
    assert_accessible(page, "models-version")
    screenshot(page, "models-version")

    page.get_by_role("button", name="Activate", exact=True).click()
    confirm = page.get_by_role("dialog", name="Activate this version?")
    expect(confirm).to_contain_text("Every recognition will use version 1")
    confirm.get_by_role("button", name="Activate version 1").click()
    expect(confirm).to_be_hidden()
    header = page.locator(".page-header")
    expect(header.get_by_text("Active", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Activate", exact=True)).to_have_count(0)

    page.get_by_role("link", name="← All versions").click()
    row = page.get_by_role("row", name=re.compile("Version 1"))
    expect(row.get_by_text("Active", exact=True)).to_be_visible()
    page.reload()
    expect(
        page.get_by_role("row", name=re.compile("Version 1")).get_by_text("Active", exact=True)
    ).to_be_visible()

    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "models-versions-phone")
    page.get_by_role("link", name="Version 1", exact=True).click()
    heat_map = page.get_by_role("img", name=re.compile("heat map"))
    expect(heat_map.locator("svg").first).to_be_visible()
    assert_accessible(page, "models-version-phone")
    screenshot(page, "models-version-phone")


def test_training_with_too_little_data_fails_at_once_saying_why(
    page: Page, kai_server: Server
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    owner_of_new_organization(page, kai_server, "sparse")
    page.goto("/models")
    page.get_by_role("button", name="Train a new version").click()
    dialog = page.get_by_role("dialog", name="Train a new version")
    dialog.get_by_role("checkbox", name=re.compile("efficientnet-lite0")).uncheck()
    dialog.get_by_role("button", name="Start training").click()
    alert = page.get_by_role("alert").filter(has_text="could not be trained")
    expect(alert).to_contain_text("Version 1 could not be trained.", timeout=60_000)
    expect(alert).to_contain_text("at least two labels")
    expect(page.get_by_role("row", name=re.compile("Version 1"))).to_contain_text("Failed")
    assert_accessible(page, "models-failed-phone")
    screenshot(page, "models-failed-phone")


def test_a_recognition_threshold_is_kept_and_a_wrong_one_said_beside_its_field(
    page: Page, kai_server: Server
) -> None:
    owner_of_new_organization(page, kai_server, "tuner")
    page.goto("/models/settings")
    expect(page.get_by_role("heading", name="Recognition settings", level=1)).to_be_visible()
    confidence = page.get_by_label("Confidence threshold")
    expect(confidence).not_to_have_value("")
    assert_accessible(page, "models-settings")

    confidence.fill("1.5")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".field").filter(has=confidence).locator(".field-error")).to_contain_text(
        "less than or equal to 1"
    )
    expect(confidence).to_have_attribute("aria-invalid", "true")
    screenshot(page, "models-settings-error")

    confidence.fill("0.42")
    page.get_by_label("Near-duplicate threshold").fill("0.9")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Confidence threshold")).to_have_value("0.42")
    expect(page.get_by_label("Near-duplicate threshold")).to_have_value("0.9")
    screenshot(page, "models-settings")


def test_uploading_a_file_that_is_not_an_onnx_model_is_refused_in_a_sentence(
    page: Page, kai_server: Server
) -> None:
    owner_of_new_organization(page, kai_server, "uploader")
    page.goto("/models/backbones")
    expect(page.get_by_role("heading", name="Backbones", level=1)).to_be_visible()
    expect(page.get_by_role("rowheader", name="handcrafted")).to_be_visible()
    expect(page.get_by_role("rowheader", name="efficientnet-lite0")).to_be_visible()
    assert_accessible(page, "models-backbones")

    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("Choose an .onnx file.")).to_be_visible()

    page.get_by_label("ONNX file").set_input_files(
        {"name": "notes.onnx", "mimeType": "application/octet-stream", "buffer": b"not a model"}
    )
    page.get_by_label("Name", exact=True).fill("not-a-model")
    page.get_by_role("button", name="Upload").click()
    refusal = page.locator(".form-problem")
    expect(refusal).to_be_visible(timeout=60_000)
    expect(refusal).to_have_attribute("role", "alert")
    expect(refusal).to_have_text("The file is not an ONNX model.")
    expect(page.get_by_role("rowheader", name="custom:not-a-model")).to_have_count(0)
    screenshot(page, "models-backbones")


def _trained(client: httpx.Client, *, activate: bool) -> dict[str, Any]:
    """A version trained on the descriptor alone (quick here), once its training ended."""
    started = client.post(
        "/api/v1/models", json={"backbones": ["handcrafted"], "activate": activate}
    )
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + TRAINING_SECONDS
    while time.monotonic() < deadline:
        version: dict[str, Any] = client.get(f"/api/v1/models/{started.json()['id']}").json()
        if version["status"] != "training":
            assert version["status"] == "ready", version
            return version
        time.sleep(0.5)
    raise AssertionError("the training did not end in time")


def test_an_ab_test_is_started_watched_and_its_challenger_promoted(
    page: Page, kai_server: Server
) -> None:
    owner = owner_of_new_organization(page, kai_server, "tester")
    client = _api(kai_server, owner)
    try:
        _catalog_with_photos(client)
        _trained(client, activate=True)
        _trained(client, activate=False)

        page.goto("/models")
        page.get_by_role("link", name="A/B tests").click()
        expect(page.get_by_role("heading", name="A/B tests", level=1)).to_be_visible()
        expect(page.get_by_text("No A/B test has been run yet.")).to_be_visible()
        form = page.get_by_role("form", name="Start an A/B test")
        expect(form.get_by_role("combobox")).to_have_value(re.compile(".+"))
        form.get_by_label("People who see the challenger (%)").fill("50")
        assert_accessible(page, "models-experiments-start")
        form.get_by_role("button", name="Start the test").click()

        card = page.get_by_role("article", name="Version 1 against Version 2")
        expect(card.get_by_text("Running")).to_be_visible()
        expect(page.get_by_role("form", name="Start an A/B test")).to_have_count(0)
        # People recognize photos, each seeing one version, and say KAI was right.
        for index in range(6):
            colour = list(COLOURS.values())[index % len(COLOURS)]
            answered = client.post(
                "/api/v1/recognitions",
                files={"file": ("photo.jpg", _photo(colour, 900 + index), "image/jpeg")},
                data={"subject": f"visitor-{index}", "similar_k": "0"},
            )
            assert answered.status_code == 201, answered.text
            said = client.post(
                f"/api/v1/recognitions/{answered.json()['id']}/feedback", json={"correct": True}
            )
            assert said.status_code == 201, said.text

        card.get_by_role("button", name="Judge now").click()
        expect(card).to_contain_text("6 recognitions so far.")
        figures = card.get_by_role("table", name="Figures of each version in the test")
        expect(figures.get_by_role("row")).to_have_count(3)
        # Every answer was right: each version that answered shows 100 %.
        expect(figures.get_by_role("cell", name="100%").first).to_be_visible()
        expect(card).to_contain_text("with probability")
        # Too few answers for a result: it goes on until a person decides.
        expect(card.get_by_text("Running")).to_be_visible()
        assert_accessible(page, "models-experiments-running")
        screenshot(page, "models-experiments-running")

        card.get_by_role("button", name="Promote the challenger").click()
        expect(card.get_by_text("Challenger promoted")).to_be_visible()
        expect(card.get_by_role("button", name="Promote the challenger")).to_have_count(0)
        events = page.get_by_role("region", name="What happened")
        expect(events).to_contain_text("Version 2 was promoted and is now active.")
        expect(events).to_contain_text("A test of version 2 against version 1 started.")
        page.set_viewport_size({"width": 390, "height": 844})
        assert_accessible(page, "models-experiments-phone")
        screenshot(page, "models-experiments-phone")
        versions = client.get("/api/v1/models").json()["items"]
        assert {version["number"] for version in versions if version["active"]} == {2}
    finally:
        client.close()


def test_versions_are_compared_side_by_side(page: Page, kai_server: Server) -> None:
    owner = owner_of_new_organization(page, kai_server, "comparer")
    client = _api(kai_server, owner)
    try:
        _catalog_with_photos(client)
        first = _trained(client, activate=True)
        second = _trained(client, activate=False)

        page.goto("/models")
        compare = page.get_by_role("button", name="Compare selected (0)")
        expect(compare).to_be_disabled()
        page.get_by_role("checkbox", name="Compare version 1").check()
        page.get_by_role("checkbox", name="Compare version 2").check()
        page.get_by_role("button", name="Compare selected (2)").click()

        expect(page.get_by_role("heading", name="Versions side by side", level=1)).to_be_visible()
        figures = page.get_by_role("table", name="Versions side by side")
        expect(figures.get_by_role("columnheader", name="Version 1")).to_be_visible()
        expect(figures.get_by_role("columnheader", name="Version 2")).to_be_visible()
        accuracy = figures.get_by_role("row", name="Accuracy")
        for version in (first, second):
            shown = f"{version['metrics']['accuracy'] * 100:.1f}".removesuffix(".0") + "%"
            expect(accuracy).to_contain_text(shown)
        by_label = page.get_by_role("table", name="F1 by label")
        labels = sorted(label["label"] for label in first["labels"])
        expect(by_label.get_by_role("rowheader")).to_have_text(labels)
        expect(page.get_by_role("img", name="F1 of each label, a bar per version")).to_be_visible()
        assert_accessible(page, "models-compare")
        screenshot(page, "models-compare")
        page.set_viewport_size({"width": 390, "height": 844})
        assert_accessible(page, "models-compare-phone")
    finally:
        client.close()


def test_the_review_queue_is_labelled_by_keys_and_emptied(page: Page, kai_server: Server) -> None:
    owner = owner_of_new_organization(page, kai_server, "reviewer")
    client = _api(kai_server, owner)
    try:
        _catalog_with_photos(client)
        _trained(client, activate=True)
        # Noise and a flat colour: KAI does not know them, and queues them.
        odd = []
        for _, pixels in non_materials.non_materials(1, seed=5)[:2]:
            answered = client.post(
                "/api/v1/recognitions",
                files={"file": ("odd.png", non_materials.png(pixels), "image/png")},
            )
            assert answered.status_code == 201, answered.text
            odd.append(answered.json())
        assert all(recognition["unknown"] for recognition in odd), odd
    finally:
        client.close()

    page.goto("/recognize/review")
    expect(page.get_by_role("heading", name="Photos to review", level=1)).to_be_visible()
    item = page.get_by_role("article", name=re.compile("Photo to label"))
    expect(item).to_contain_text("2 photos waiting.")
    expect(item).to_contain_text("KAI did not know")
    first_guess = item.get_by_role("button").filter(has=page.locator("kbd", has_text="1"))
    expect(first_guess).to_be_visible()
    assert_accessible(page, "review-queue")
    screenshot(page, "review-queue")

    page.keyboard.press("1")
    expect(page.get_by_role("article", name=re.compile("Photo to label"))).to_contain_text(
        "1 photo waiting."
    )
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "review-queue-phone")
    page.keyboard.press("s")
    expect(page.get_by_text("No photo is waiting for a label.")).to_be_visible()


def test_drift_is_checked_and_read_over_time(page: Page, kai_server: Server) -> None:
    owner = owner_of_new_organization(page, kai_server, "watcher")
    client = _api(kai_server, owner)
    try:
        _catalog_with_photos(client)
        _trained(client, activate=True)
        page.goto("/models/drift")
        expect(page.get_by_role("heading", name="Drift", level=1)).to_be_visible()
        expect(page.get_by_text("No window yet")).to_be_visible()
        # New photos of the same materials: what the version was validated on.
        for index in range(30):
            colour = list(COLOURS.values())[index % len(COLOURS)]
            answered = client.post(
                "/api/v1/recognitions",
                files={"file": ("photo.jpg", _photo(colour, 2000 + index), "image/jpeg")},
                data={"similar_k": "0"},
            )
            assert answered.status_code == 201, answered.text
    finally:
        client.close()

    page.get_by_role("button", name="Check now").click()
    expect(page.get_by_role("status").filter(has_text="drift")).to_be_visible()
    table = page.get_by_role("table", name=re.compile("Windows of recognitions"))
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table).to_contain_text("30")
    chart = page.get_by_role("img", name=re.compile("Drift over time"))
    expect(chart.locator("svg").first).to_be_visible()
    assert_accessible(page, "models-drift")
    screenshot(page, "models-drift")
    page.set_viewport_size({"width": 390, "height": 844})
    assert_accessible(page, "models-drift-phone")
    screenshot(page, "models-drift-phone")
