"""The organization's administration: members and invitations, roles, API keys, the audit log."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Browser, Locator, Page, expect

from web.e2e.people import Person, log_in, new_person, owner_of_new_organization, sign_up
from web.e2e.support import Server, assert_accessible, screenshot


def _tab(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Administration").get_by_role("link", name=name).click()


def _create_role(page: Page, name: str, permissions: list[str]) -> None:
    page.goto("/admin/roles")
    page.get_by_role("button", name="New role").click()
    page.get_by_label("Role name").fill(name)
    for permission in permissions:
        page.get_by_role("checkbox", name=f"{permission} — {name}").check()
    page.get_by_role("button", name="Create role").click()
    expect(page.get_by_text(f"The role {name} is created.")).to_be_visible()


def _invite(page: Page, email: str, role: str) -> None:
    page.goto("/admin")
    invitations = page.get_by_role("region", name="Invitations")
    invitations.get_by_label("Email address").fill(email)
    invitations.get_by_label("Role").select_option(label=role)
    invitations.get_by_role("button", name="Send invitation").click()
    expect(invitations.get_by_text(f"An invitation is on its way to {email}.")).to_be_visible()
    expect(invitations.get_by_role("cell", name=email, exact=True)).to_be_visible()


_BROWSER = {"viewport": {"width": 1280, "height": 860}, "locale": "en-GB"}


def _join(page: Page, server: Server, person: Person) -> None:
    """`person` signs up, logs in and accepts the invitation emailed to them."""
    page.set_default_timeout(20_000)
    sign_up(page, server, person)
    log_in(page, person)
    page.goto(server.link(person.email, "/invitations/accept"))
    page.get_by_role("button", name="Accept the invitation").click()
    expect(page.get_by_role("navigation", name="Menu")).to_be_visible()


def test_invited_member_sees_only_what_their_role_allows(
    page: Page, browser: Browser, kai_server: Server
) -> None:
    owner = owner_of_new_organization(page, kai_server)
    # Every built-in role reads members and models: a narrower one shows what a role hides.
    _create_role(page, "Viewer", ["Read the catalog"])
    member = new_person("viewer")
    _invite(page, member.email, "Viewer")

    # The invited person, in a browser of their own.
    context = browser.new_context(base_url=kai_server.url, **_BROWSER)
    try:
        other = context.new_page()
        _join(other, kai_server, member)
        menu = other.get_by_role("navigation", name="Menu")
        expect(menu.get_by_role("link", name="Catalog")).to_be_visible()
        expect(menu.get_by_role("link", name="Organization")).to_have_count(0)
        expect(menu.get_by_role("link", name="Models")).to_have_count(0)
        expect(other.get_by_role("button", name="New material")).to_have_count(0)

        # Typing the address shows nothing of the organization's administration.
        other.goto("/admin")
        expect(other.get_by_text("Your role does not give access")).to_be_visible()
        expect(other.get_by_role("navigation", name="Administration")).to_have_count(0)
        expect(other.get_by_text(owner.email)).to_have_count(0)
        expect(other.get_by_role("table")).to_have_count(0)
        assert_accessible(other, "admin-no-access")
        screenshot(other, "admin-no-access")
    finally:
        context.close()

    # The owner sees the new member with the role, and no pending invitation any more.
    page.reload()
    members = page.get_by_role("region", name="Members")
    row = members.get_by_role("row").filter(has_text=member.email)
    expect(row.get_by_label(f"Role of {member.name}")).to_have_value("viewer")
    expect(page.get_by_text("No invitation is waiting for an answer.")).to_be_visible()

    # A new role is saved at once and kept.
    row.get_by_label(f"Role of {member.name}").select_option(label="Analyst")
    expect(members.get_by_text(f"{member.name} is now Analyst.")).to_be_visible()
    page.reload()
    expect(row.get_by_label(f"Role of {member.name}")).to_have_value("analyst")

    # Removal asks first.
    row.get_by_role("button", name="Remove").click()
    dialog = page.get_by_role("dialog", name="Remove member")
    expect(dialog).to_contain_text(member.name)
    dialog.get_by_role("button", name="Remove").click()
    expect(members.get_by_text(f"{member.name} was removed from the organization.")).to_be_visible()
    expect(members.get_by_role("row").filter(has_text=member.email)).to_have_count(0)


def test_owner_hands_the_organization_over(
    page: Page, browser: Browser, kai_server: Server
) -> None:
    owner = owner_of_new_organization(page, kai_server)
    heir = new_person("heir")
    _invite(page, heir.email, "Member")
    context = browser.new_context(base_url=kai_server.url, **_BROWSER)
    try:
        _join(context.new_page(), kai_server, heir)
    finally:
        context.close()

    page.reload()
    ownership = page.get_by_role("region", name="Ownership")
    ownership.get_by_label("New owner").select_option(label=_member_label(heir))
    ownership.get_by_role("button", name="Transfer ownership").click()
    dialog = page.get_by_role("dialog", name="Transfer ownership")
    expect(dialog).to_contain_text(heir.name)
    dialog.get_by_role("button", name="Transfer ownership").click()
    expect(ownership).to_have_count(0)
    page.reload()
    members = page.get_by_role("region", name="Members")
    expect(members.get_by_role("row").filter(has_text=heir.email)).to_contain_text("Owner")
    expect(members.get_by_role("row").filter(has_text=owner.email)).to_contain_text("Admin")


def test_api_key_is_shown_once_and_works(page: Page, kai_server: Server) -> None:
    owner_of_new_organization(page, kai_server)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto("/admin/api-keys")
    expect(page.get_by_text("No API key yet.")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Shop sync")
    picker = page.get_by_role("group", name="Permissions")
    expect(picker.get_by_role("checkbox", name=re.compile("^Read the catalog"))).to_be_checked()
    picker.get_by_role("checkbox", name=re.compile("^See models")).check()
    page.get_by_role("button", name="Create API key").click()

    dialog = page.get_by_role("dialog", name="Your new API key")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_text("it will not be shown again")).to_be_visible()
    secret = dialog.get_by_label("API key Shop sync").input_value()
    assert len(secret) > 20
    dialog.get_by_role("button", name="Copy the key").click()
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    assert_accessible(page, "admin-api-key-created")
    screenshot(page, "admin-api-key-created")
    dialog.get_by_role("button", name="I have stored it").click()
    expect(dialog).to_be_hidden()

    row = page.get_by_role("row").filter(has_text="Shop sync")
    expect(row).to_be_visible()
    assert secret not in page.content()
    page.reload()
    expect(page.get_by_role("row").filter(has_text="Shop sync")).to_be_visible()
    assert secret not in page.content()

    answer = httpx.get(f"{kai_server.url}/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["kind"] == "api_key"
    assert sorted(answer.json()["permissions"]) == ["materials:read", "models:read"]

    page.get_by_role("button", name="Revoke Shop sync").click()
    confirm = page.get_by_role("dialog", name="Revoke API key")
    confirm.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("The key Shop sync is revoked.")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="Shop sync")).to_contain_text("Revoked")
    answer = httpx.get(f"{kai_server.url}/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 401


def test_custom_role_made_in_the_matrix_is_kept(page: Page, kai_server: Server) -> None:
    owner_of_new_organization(page, kai_server)
    _create_role(page, "Site Surveyor", ["Read the catalog", "Run recognitions"])
    page.reload()
    header = page.get_by_role("columnheader", name=re.compile("Site Surveyor"))
    expect(header).to_be_visible()

    def cell(permission: str, role: str = "Site Surveyor") -> Locator:
        return page.get_by_role("checkbox", name=f"{permission} — {role}")

    expect(cell("Read the catalog")).to_be_checked()
    expect(cell("Run recognitions")).to_be_checked()
    expect(cell("Edit the catalog")).not_to_be_checked()
    # Built-in roles cannot be changed.
    expect(cell("Edit the catalog", "Editor")).to_be_disabled()

    # A change is saved and shown after a reload.
    page.get_by_role("checkbox", name="See models — Site Surveyor").check()
    page.get_by_role("button", name="Save Site Surveyor").click()
    expect(page.get_by_text("The role Site Surveyor is saved.")).to_be_visible()
    page.reload()
    expect(page.get_by_role("checkbox", name="See models — Site Surveyor")).to_be_checked()

    # Members can be given the role: it is offered wherever a role is chosen.
    page.goto("/admin")
    expect(
        page.get_by_role("region", name="Invitations").get_by_label("Role").locator("option")
    ).to_contain_text(["Site Surveyor"])

    page.goto("/admin/roles")
    page.get_by_role("button", name="Delete Site Surveyor").click()
    page.get_by_role("dialog", name="Delete role").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("The role Site Surveyor is deleted.")).to_be_visible()
    page.reload()
    expect(page.get_by_role("columnheader", name=re.compile("Site Surveyor"))).to_have_count(0)


def test_audit_log_lists_the_invitation(page: Page, kai_server: Server) -> None:
    owner_of_new_organization(page, kai_server)
    invited = new_person("audited")
    _invite(page, invited.email, "Analyst")
    _tab(page, "Audit log")
    events = page.get_by_role("region", name="Events")
    row = events.get_by_role("row").filter(has_text="invitation.created")
    expect(row).to_contain_text(invited.email)
    expect(row).to_contain_text("Success")

    # An action, or the beginning of one, narrows the list.
    page.get_by_label("Action").fill("role")
    page.get_by_role("button", name="Apply").click()
    expect(events.get_by_text("No event matches.")).to_be_visible()
    page.get_by_label("Action").fill("invitation")
    page.get_by_role("button", name="Apply").click()
    expect(events.get_by_role("row").filter(has_text="invitation.created")).to_be_visible()
    page.get_by_label("Outcome").select_option("failure")
    page.get_by_role("button", name="Apply").click()
    expect(events.get_by_text("No event matches.")).to_be_visible()
    page.get_by_role("button", name="Clear").click()
    expect(events.get_by_role("row").filter(has_text="invitation.created")).to_be_visible()
    expect(page.get_by_label("Action")).to_have_value("")

    # Revoking the invitation asks first, and is logged too.
    page.goto("/admin")
    page.get_by_role("button", name=f"Revoke the invitation to {invited.email}").click()
    confirm = page.get_by_role("dialog", name="Revoke invitation")
    confirm.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("No invitation is waiting for an answer.")).to_be_visible()
    _tab(page, "Audit log")
    expect(events.get_by_role("row").filter(has_text="invitation.revoked")).to_be_visible()


def test_each_tab_on_desktop_and_phone(page: Page, kai_server: Server) -> None:
    owner = owner_of_new_organization(page, kai_server)
    _invite(page, new_person("pending").email, "Member")

    # Settings are saved and shown after a reload.
    settings = page.get_by_role("region", name="Settings")
    settings.get_by_label("Session lifetime in hours").fill("12")
    settings.get_by_label("Allowed email domains").fill("not a domain")
    settings.get_by_role("button", name="Save").click()
    expect(settings.get_by_text("Enter domains such as example.com")).to_be_visible()
    settings.get_by_label("Allowed email domains").fill("quarry.example, stone.example")
    settings.get_by_role("button", name="Save").click()
    expect(settings.get_by_text("Saved")).to_be_visible()
    page.reload()
    expect(settings.get_by_label("Session lifetime in hours")).to_have_value("12")
    expect(settings.get_by_label("Allowed email domains")).to_have_value(
        "quarry.example, stone.example"
    )
    assert_accessible(page, "admin-members")
    screenshot(page, "admin-members")

    _tab(page, "Teams")
    expect(page.get_by_text("No team yet.")).to_be_visible()
    page.get_by_label("Team name").fill("Quarry crew")
    page.get_by_role("button", name="Create team").click()
    team = page.get_by_role("article", name="Quarry crew")
    team.get_by_label("Add a member to Quarry crew").select_option(label=_member_label(owner))
    team.get_by_role("button", name="Add").click()
    expect(team.get_by_role("button", name=f"Remove {owner.name} from Quarry crew")).to_be_visible()
    assert_accessible(page, "admin-teams")
    screenshot(page, "admin-teams")

    _tab(page, "Roles")
    expect(page.get_by_role("columnheader", name=re.compile("Analyst"))).to_be_visible()
    assert_accessible(page, "admin-roles")
    screenshot(page, "admin-roles")

    _tab(page, "API keys")
    expect(page.get_by_text("No API key yet.")).to_be_visible()
    assert_accessible(page, "admin-api-keys")
    screenshot(page, "admin-api-keys")

    _tab(page, "Single sign-on")
    expect(page.get_by_text("Not set up.")).to_be_visible()
    page.get_by_label("Issuer").fill("not an address")
    page.get_by_label("Client ID").fill("kai")
    page.get_by_role("button", name="Save").click()
    # The refusal stands beside the field it is about.
    issuer_error = (
        page.locator(".field").filter(has=page.get_by_label("Issuer")).locator(".field-error")
    )
    expect(issuer_error).to_have_text("Enter the provider's address, starting with https://.")
    expect(page.get_by_label("Issuer")).to_have_attribute("aria-invalid", "true")
    assert_accessible(page, "admin-sso")
    screenshot(page, "admin-sso")

    _tab(page, "Audit log")
    expect(page.get_by_role("row").filter(has_text="invitation.created")).to_be_visible()
    assert_accessible(page, "admin-audit")
    screenshot(page, "admin-audit")

    _tab(page, "Jobs")
    # Sending the invitation is a job of its own.
    expect(page.get_by_role("progressbar").first).to_be_visible()
    assert_accessible(page, "admin-jobs")
    screenshot(page, "admin-jobs")

    page.set_viewport_size({"width": 390, "height": 844})
    phone_screens = (("/admin", "members"), ("/admin/roles", "roles"), ("/admin/api-keys", "keys"))
    for path, name in phone_screens:
        page.goto(path)
        expect(page.get_by_role("heading", name="Organization", level=1)).to_be_visible()
        expect(page.get_by_role("navigation", name="Administration")).to_be_visible()
        assert_accessible(page, f"admin-{name}-phone")
        screenshot(page, f"admin-{name}-phone")
    # Nothing runs off the side of the phone's screen but the tables, which scroll.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390


def _member_label(person: Person) -> str:
    return f"{person.name} ({person.email})"
