"""The pages emailed links open: each shows a form that does its step (opening the link alone
changes nothing), and the links point at the server's own address unless told otherwise."""

from __future__ import annotations

import re

import pytest
from httpx import AsyncClient

from kai.config import AuthSettings, Settings
from kai.runtime import Runtime
from tests.identity.factories import PASSWORD, create_user, login, member, unique_email
from tests.identity.outbox import outbox_messages

pytestmark = pytest.mark.database

STRONG = "basalt staircase lantern 7"


def test_links_follow_the_servers_own_address_unless_a_public_url_is_set() -> None:
    assert Settings(port=8765).public_url == "http://127.0.0.1:8765"
    assert Settings(host="0.0.0.0", port=9000).public_url == "http://127.0.0.1:9000"  # noqa: S104
    assert Settings(host="::", port=9000).public_url == "http://[::1]:9000"
    assert Settings(host="kai.internal", port=80).public_url == "http://kai.internal:80"
    configured = Settings(port=8765, auth=AuthSettings(public_url="https://kai.example.com/"))
    assert configured.public_url == "https://kai.example.com"


async def _link(runtime: Runtime, to: str, kind: str) -> str:
    """The newest emailed link of a kind, as the path a browser opens on this server."""
    for message in reversed(await outbox_messages(runtime, to)):
        found = re.search(rf"(\S+)/{kind}\?token=([A-Za-z0-9_-]+)", message.get_content())
        if found:
            assert found.group(1) == runtime.settings.public_url
            return f"/{kind}?token={found.group(2)}"
    raise AssertionError(f"no {kind} link was sent to {to}")


def _token_of(page: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def test_the_confirmation_link_opens_a_page_whose_button_confirms(
    runtime: Runtime, client: AsyncClient
) -> None:
    address = unique_email("newcomer")
    signed_up = await client.post(
        "/api/v1/auth/signup",
        json={"email": address, "password": STRONG, "name": "Nia", "organization_name": "Nia"},
    )
    assert signed_up.status_code == 202
    link = await _link(runtime, address, "verify-email")

    page = await client.get(link)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "Confirm my address" in page.text
    # Opening the link (as a mail scanner does) confirmed nothing.
    not_yet = await client.post("/api/v1/auth/login", json={"email": address, "password": STRONG})
    assert not_yet.status_code == 403

    confirmed = await client.post("/verify-email", data={"token": _token_of(page.text)})
    assert confirmed.status_code == 200
    assert "Your address is confirmed" in confirmed.text
    await login(client, address, STRONG)

    again = await client.post("/verify-email", data={"token": _token_of(page.text)})
    assert again.status_code == 400
    assert "The link is not valid or has expired" in again.text
    assert (await client.get("/verify-email")).status_code == 400


async def test_the_reset_link_opens_a_page_that_sets_the_new_password(
    runtime: Runtime, client: AsyncClient
) -> None:
    user = await create_user(runtime)
    asking = await client.get("/reset-password")
    assert 'name="email"' in asking.text
    asked = await client.post("/reset-password", data={"email": user.email})
    assert asked.status_code == 200
    assert "a reset link is on its way" in asked.text

    page = await client.get(await _link(runtime, user.email, "reset-password"))
    assert 'name="new_password"' in page.text
    weak = await client.post(
        "/reset-password", data={"token": _token_of(page.text), "new_password": "password"}
    )
    assert weak.status_code == 422
    await login(client, user.email, PASSWORD)

    changed = await client.post(
        "/reset-password", data={"token": _token_of(page.text), "new_password": STRONG}
    )
    assert changed.status_code == 200, changed.text
    assert "Your password is changed" in changed.text
    await login(client, user.email, STRONG)


async def test_an_invitation_link_opens_a_page_that_joins_and_then_acts_there(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    guest = await member(runtime, client)
    invited = await client.post(
        "/api/v1/invitations",
        json={"email": guest.user.email, "role": "editor"},
        headers=owner.headers,
    )
    assert invited.status_code == 201
    messages = await outbox_messages(
        runtime, guest.user.email, organization_id=owner.organization_id
    )
    link = re.search(
        rf"{re.escape(runtime.settings.public_url)}(/invitations/accept\?token=\S+)",
        messages[-1].get_content(),
    )
    assert link, messages[-1].get_content()
    page = await client.get(link.group(1))
    assert 'name="password"' in page.text

    wrong = await client.post(
        "/invitations/accept",
        data={"token": _token_of(page.text), "email": guest.user.email, "password": "nope"},
    )
    assert wrong.status_code == 401
    joined = await client.post(
        "/invitations/accept",
        data={"token": _token_of(page.text), "email": guest.user.email, "password": PASSWORD},
    )
    assert joined.status_code == 200, joined.text
    assert "You joined" in joined.text
    assert "as editor" in joined.text

    # Signing in now acts for the organization joined.
    tokens = await login(client, guest.user.email)
    assert tokens["organization_id"] == str(owner.organization_id)
