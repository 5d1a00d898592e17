"""The app as an installable app: manifest, service worker (the shell only), offline start,
phone layout, keyboard, dark mode."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from web.e2e.people import owner_of_new_organization
from web.e2e.support import Server, screenshot


def test_the_app_is_installable(kai_server: Server) -> None:
    manifest = httpx.get(f"{kai_server.url}/manifest.webmanifest").json()
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] == "/"
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in manifest["icons"]:
        answer = httpx.get(kai_server.url + icon["src"])
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("image/")
    assert any(icon.get("purpose") == "maskable" for icon in manifest["icons"])


def test_the_service_worker_keeps_the_shell_and_no_api_data(page: Page, kai_server: Server) -> None:
    owner_of_new_organization(page, kai_server, "offline")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    # The app's requests after install go through the worker; let a few happen.
    page.reload()
    expect(page.get_by_role("navigation", name="Menu")).to_be_visible()
    cached = page.evaluate(
        """async () => {
            const urls = [];
            for (const name of await caches.keys()) {
                const cache = await caches.open(name);
                for (const request of await cache.keys()) urls.push(request.url);
            }
            return urls;
        }"""
    )
    paths = {url.split("?")[0].removeprefix(kai_server.url) for url in cached}
    assert "/index.html" in paths, paths
    assert any(path.startswith("/assets/") and path.endswith(".js") for path in paths), paths
    assert not [url for url in cached if "/api/" in url], cached

    # Offline, the shell still starts and says what it can: it cannot renew the session.
    page.context.set_offline(True)
    try:
        page.reload()
        expect(page.locator("#root")).not_to_be_empty()
        expect(page.get_by_role("heading", name="Log in to KAI")).to_be_visible()
    finally:
        page.context.set_offline(False)


def test_a_phone_gets_the_bottom_navigation(page: Page, kai_server: Server) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    owner_of_new_organization(page, kai_server, "phone")
    navigation = page.get_by_role("navigation", name="Menu")
    expect(navigation).to_be_visible()
    box = navigation.bounding_box()
    assert box is not None
    # At the bottom of the screen, the full width: within the thumb's reach.
    assert box["y"] + box["height"] >= 844 - 2
    assert box["width"] >= 388
    screenshot(page, "phone-shell")


def test_keyboard_users_can_skip_to_the_content_and_see_focus(
    page: Page, kai_server: Server
) -> None:
    owner_of_new_organization(page, kai_server, "keyboard")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    outline = skip.evaluate("element => getComputedStyle(element).outlineStyle")
    assert outline != "none"
    skip.press("Enter")
    expect(page.locator("#main")).to_be_focused()


def test_dark_mode_follows_the_system(page: Page, kai_server: Server) -> None:
    page.emulate_media(color_scheme="dark")
    page.goto("/login")
    expect(page.get_by_role("heading", name="Log in to KAI")).to_be_visible()
    background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    red, green, blue = (int(part) for part in background[4:-1].split(",")[:3])
    assert red + green + blue < 120, background
    screenshot(page, "login-dark")
