"""Signing up, confirming the address, logging in and out: in Chromium, as a person does."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from web.e2e.people import log_in, new_person, sign_up
from web.e2e.support import Server, assert_accessible, screenshot


def test_sign_up_verify_from_the_email_log_in_and_out(page: Page, kai_server: Server) -> None:
    person = new_person("signup")
    page.goto("/signup")
    assert_accessible(page, "sign-up")
    screenshot(page, "sign-up")
    sign_up(page, kai_server, person, organization="Signup Stone")
    log_in(page, person)
    expect(
        page.get_by_role("navigation", name="Menu").get_by_role("link", name="Catalog")
    ).to_be_visible()

    # The session survives a reload: the refresh cookie brings it back, nothing in storage.
    page.reload()
    expect(page.get_by_role("link", name=person.name)).to_be_visible()
    stored = page.evaluate(
        "() => JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage})"
    )
    assert "ey" not in stored
    assert "kai_" not in stored
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    refresh = cookies["kai_refresh"]
    assert refresh["httpOnly"]
    assert refresh["sameSite"] == "Strict"
    assert refresh["path"] == "/api/v1/auth"
    assert page.evaluate("() => document.cookie") == ""

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to KAI")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Log in to KAI")).to_be_visible()


def test_wrong_password_is_said_in_a_sentence(page: Page, kai_server: Server) -> None:
    person = new_person("wrong")
    sign_up(page, kai_server, person)
    page.goto("/login")
    assert_accessible(page, "login")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill("not-the-password-at-all")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("not correct")
    screenshot(page, "login-error")


def test_password_reset_from_the_emailed_link(page: Page, kai_server: Server) -> None:
    person = new_person("reset")
    sign_up(page, kai_server, person)
    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill(person.email)
    page.get_by_role("button", name="Send me a reset link").click()
    expect(page.get_by_role("status")).to_contain_text("reset link is on its way")

    page.goto(kai_server.link(person.email, "/reset-password"))
    # The token leaves the address bar at once.
    expect(page).to_have_url(f"{kai_server.url}/reset-password")
    page.get_by_label("New password").fill("another-Quartzite-77-slab")
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_role("status")).to_contain_text("password is changed")

    page.goto("/login")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill("another-Quartzite-77-slab")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name=person.name)).to_be_visible()


def test_the_app_is_served_with_its_security_headers(kai_server: Server) -> None:
    for path in ("/", "/catalog/some/deep/route", "/verify-email?token=x"):
        answer = httpx.get(kai_server.url + path)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert '<div id="root">' in answer.text
    missing = httpx.get(kai_server.url + "/api/v1/no-such-route")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
