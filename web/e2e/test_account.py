"""A person's own account: profile, preferences, password, two-factor, sessions, organizations."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from web.e2e.people import (
    api_login,
    log_in,
    new_person,
    owner_of_new_organization,
    sign_up,
    totp,
)
from web.e2e.support import Server, assert_accessible, screenshot


def _open_account(page: Page, name: str) -> None:
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name="Your account", level=1)).to_be_visible()


def test_name_language_and_units_are_saved_and_followed(page: Page, kai_server: Server) -> None:
    person = owner_of_new_organization(page, kai_server, "profile")
    _open_account(page, person.name)
    expect(page.get_by_text(person.email)).to_be_visible()
    assert_accessible(page, "account-profile")
    screenshot(page, "account-profile")

    page.get_by_label("Name", exact=True).fill("Renamed Tester")
    page.get_by_role("button", name="Save the name").click()
    expect(page.get_by_role("status").filter(has_text="Your name is saved.")).to_be_visible()
    expect(page.get_by_role("banner").get_by_role("link", name="Renamed Tester")).to_be_visible()

    page.get_by_label("Imperial (in, ft², lb)").check()
    page.get_by_label("a weekly summary is ready").check()
    page.get_by_label("Language").select_option(label="Deutsch")
    page.get_by_role("button", name="Save the preferences").click()
    # The whole app follows at once, the account screen itself included.
    menu = page.get_by_role("navigation", name="Menü")
    expect(menu.get_by_role("link", name="Katalog")).to_be_visible()
    expect(page.get_by_role("heading", name="Ihr Konto", level=1)).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "de")

    page.reload()
    expect(menu.get_by_role("link", name="Katalog")).to_be_visible()
    expect(page.get_by_label("Angloamerikanisch (in, ft², lb)")).to_be_checked()
    expect(page.get_by_label("eine Wochenübersicht bereitsteht")).to_be_checked()
    expect(page.get_by_label("Name", exact=True)).to_have_value("Renamed Tester")
    assert_accessible(page, "account-profile-de")
    screenshot(page, "account-profile-de")

    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.get_by_role("heading", name="Ihr Konto", level=1)).to_be_visible()
    assert_accessible(page, "account-profile-phone")
    screenshot(page, "account-profile-phone")


def test_changed_password_logs_in(page: Page, kai_server: Server) -> None:
    person = owner_of_new_organization(page, kai_server, "password")
    page.goto("/account/security")
    expect(page.get_by_role("heading", name="Password")).to_be_visible()
    assert_accessible(page, "account-security")
    screenshot(page, "account-security")

    new_password = "basalt-Column-93-quarry"
    page.get_by_label("Current password").fill(person.password)
    page.get_by_label("New password", exact=True).fill(new_password)
    page.get_by_label("Repeat the new password").fill("not-the-same-Password-1")
    page.get_by_role("button", name="Change the password").click()
    expect(page.get_by_text("The two new passwords are not the same.")).to_be_visible()

    page.get_by_label("Repeat the new password").fill(new_password)
    page.get_by_role("button", name="Change the password").click()
    expect(page.get_by_role("status").filter(has_text="Your password is changed")).to_be_visible()

    page.get_by_role("button", name="Log out", exact=True).click()
    expect(page.get_by_role("heading", name="Log in to KAI")).to_be_visible()
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("not correct")
    log_in(page, dataclasses.replace(person, password=new_password))


def test_two_factor_enrolment_then_login_asks_for_the_code(page: Page, kai_server: Server) -> None:
    person = owner_of_new_organization(page, kai_server, "totp")
    page.goto("/account/security")
    mfa = page.get_by_role("region", name="Two-factor authentication")
    expect(mfa.get_by_text("Off", exact=True)).to_be_visible()
    mfa.get_by_role("button", name="Turn on two-factor authentication").click()

    expect(mfa.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    secret = mfa.get_by_test_id("totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    assert_accessible(page, "account-totp-enrol")
    screenshot(page, "account-totp-enrol")

    confirmed_at = time.time()
    mfa.get_by_label("Code the app shows now").fill(totp(secret, at=confirmed_at))
    mfa.get_by_role("button", name="Confirm and turn on").click()
    expect(mfa.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = mfa.get_by_role("list", name="Recovery codes").get_by_role("listitem")
    expect(codes).to_have_count(10)
    expect(mfa.get_by_role("alert")).to_contain_text("shown only now")
    with page.expect_download() as download:
        mfa.get_by_role("button", name="Download as a text file").click()
    assert download.value.suggested_filename == "kai-recovery-codes.txt"
    saved = Path(download.value.path()).read_text(encoding="utf-8").split()
    assert saved == [code.strip() for code in codes.all_inner_texts()]
    assert_accessible(page, "account-recovery-codes")
    screenshot(page, "account-recovery-codes")
    mfa.get_by_role("button", name="I have saved the codes").click()
    expect(mfa.get_by_text("On", exact=True)).to_be_visible()
    expect(mfa.get_by_text("Recovery codes left: 10")).to_be_visible()

    page.get_by_role("button", name="Log out", exact=True).click()
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Log in").click()
    # The code of the step after the one used to confirm: each code works once.
    page.get_by_label("Code from your authenticator app").fill(totp(secret, at=confirmed_at + 30))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("link", name=person.name)).to_be_visible()

    # New recovery codes, proved with an old one; the old ones stop working.
    page.goto("/account/security")
    mfa.get_by_role("button", name="New recovery codes").click()
    dialog = page.get_by_role("dialog", name="Replace your recovery codes")
    expect(dialog.get_by_label("Your password")).to_be_visible()
    assert_accessible(page, "account-recovery-codes-dialog")
    screenshot(page, "account-recovery-codes-dialog")
    dialog.get_by_label("Your password").fill(person.password)
    dialog.get_by_label("Code from your authenticator app or a recovery code").fill(saved[0])
    dialog.get_by_role("button", name="Make new codes").click()
    expect(mfa.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    expect(codes).to_have_count(10)
    fresh = [code.strip() for code in codes.all_inner_texts()]
    assert not set(fresh) & set(saved)
    mfa.get_by_role("button", name="I have saved the codes").click()
    expect(mfa.get_by_text("Recovery codes left: 10")).to_be_visible()

    # Turning it off needs the password and a code too.
    mfa.get_by_role("button", name="Turn off two-factor authentication").click()
    dialog = page.get_by_role("dialog", name="Turn off two-factor authentication")
    dialog.get_by_label("Your password").fill(person.password)
    dialog.get_by_label("Code from your authenticator app or a recovery code").fill(saved[1])
    dialog.get_by_role("button", name="Turn it off").click()
    expect(dialog.get_by_role("alert")).to_be_visible()
    dialog.get_by_label("Code from your authenticator app or a recovery code").fill(fresh[1])
    dialog.get_by_role("button", name="Turn it off").click()
    expect(mfa.get_by_text("Off", exact=True)).to_be_visible()


def test_log_out_everywhere_ends_every_session(
    page: Page, browser: Browser, kai_server: Server
) -> None:
    person = owner_of_new_organization(page, kai_server, "everywhere")
    other_device = browser.new_context(base_url=kai_server.url)
    try:
        other = other_device.new_page()
        log_in(other, person)

        page.goto("/account/security")
        page.get_by_role("button", name="Log out everywhere").click()
        expect(page.get_by_role("heading", name="Log in to KAI")).to_be_visible()
        page.reload()
        expect(page.get_by_role("heading", name="Log in to KAI")).to_be_visible()

        other.reload()
        expect(other.get_by_role("heading", name="Log in to KAI")).to_be_visible()
    finally:
        other_device.close()


IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def test_another_session_is_listed_and_signed_out(page: Page, kai_server: Server) -> None:
    person = owner_of_new_organization(page, kai_server, "devices")
    phone = api_login(kai_server, person, user_agent=IPHONE_SAFARI)

    page.goto("/account/security")
    sessions = page.get_by_role("list", name="Your sessions").get_by_role("listitem")
    expect(sessions).to_have_count(2)
    this_device = sessions.filter(has_text="This device")
    expect(this_device).to_contain_text("Active now")
    expect(this_device.get_by_role("button")).to_have_count(0)
    other = sessions.filter(has_text="Safari on iOS")
    expect(other).to_contain_text("Last active")
    expect(other).to_contain_text("IP address 127.0.0.1")
    assert_accessible(page, "account-sessions")
    screenshot(page, "account-sessions")

    other.get_by_role("button", name="Sign out Safari on iOS").click()
    dialog = page.get_by_role("dialog", name="Sign out this session?")
    expect(dialog).to_contain_text("Safari on iOS is signed out at once")
    assert_accessible(page, "account-sessions-confirm")
    screenshot(page, "account-sessions-confirm")
    dialog.get_by_role("button", name="Sign out").click()
    ended = page.get_by_role("status").filter(has_text="Safari on iOS is signed out.")
    expect(ended).to_be_visible()
    expect(sessions).to_have_count(1)

    # The phone's login is over: its refresh token no longer renews it.
    refused = httpx.post(
        f"{kai_server.url}/api/v1/auth/refresh",
        json={"refresh_token": phone["refresh_token"]},
        timeout=30,
    )
    assert refused.status_code == 401, refused.text
    # This one goes on.
    page.reload()
    expect(sessions).to_have_count(1)
    expect(sessions.first).to_contain_text("This device")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "account-sessions-phone")


def test_a_person_without_an_organization_creates_one(page: Page, kai_server: Server) -> None:
    person = new_person("loner")
    sign_up(page, kai_server, person)
    log_in(page, person)
    expect(page.get_by_text("You do not belong to an organization yet.")).to_be_visible()
    screenshot(page, "account-no-organization")
    page.get_by_role("link", name="Create an organization").click()

    expect(page.get_by_role("heading", name="Create an organization", level=1)).to_be_visible()
    assert_accessible(page, "account-create-organization")
    screenshot(page, "account-create-organization")
    page.get_by_label("Name", exact=True).fill("Loner Marble Works")
    page.get_by_role("button", name="Create the organization").click()

    # Now acting for it, as its owner: its name in the top bar, its screens in the menu.
    expect(page.get_by_role("banner").get_by_text("Loner Marble Works")).to_be_visible()
    expect(
        page.get_by_role("navigation", name="Menu").get_by_role("link", name="Catalog")
    ).to_be_visible()

    page.goto("/account/organizations")
    organizations = page.get_by_role("region", name="Organizations")
    expect(organizations.get_by_text("Loner Marble Works", exact=True)).to_be_visible()
    expect(organizations.get_by_text("Current")).to_be_visible()
    # The organization it acts for offers no switch to itself.
    expect(organizations.get_by_role("button", name=re.compile("Switch to"))).to_have_count(0)
    assert_accessible(page, "account-organizations")
    screenshot(page, "account-organizations")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "account-organizations-phone")
