"""Sign-up, proving the address, resetting and changing the password, the profile."""

from __future__ import annotations

import re

import pytest
from httpx import AsyncClient

from kai.identity import emails
from kai.runtime import Runtime
from tests.identity.conftest import Clock
from tests.identity.factories import PASSWORD, create_user, login, member, unique_email
from tests.identity.outbox import latest_token, outbox_messages

pytestmark = pytest.mark.database

STRONG = "basalt staircase lantern 7"


async def test_signing_up_verifying_and_logging_in(runtime: Runtime, client: AsyncClient) -> None:
    address = unique_email("newcomer")
    response = await client.post(
        "/api/v1/auth/signup",
        json={
            "email": address,
            "password": STRONG,
            "name": "Nia Stone",
            "organization_name": "Stone Works",
        },
    )
    assert response.status_code == 202

    refused = await client.post("/api/v1/auth/login", json={"email": address, "password": STRONG})
    assert refused.status_code == 403  # not verified yet

    token = await latest_token(runtime, address, "verify-email")
    assert (
        await client.post("/api/v1/auth/verify-email", json={"token": token})
    ).status_code == 204
    again = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 400  # single use
    assert again.json()["type"].endswith("/invalid-token")

    tokens = await login(client, address, STRONG)
    me = (
        await client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
    ).json()
    assert me["user"]["email_verified"] is True
    assert me["organization"]["name"] == "Stone Works"
    assert me["organization"]["slug"] == "stone-works"
    assert me["role"] == "owner"


async def test_signing_up_with_a_taken_address_looks_the_same_and_tells_its_owner(
    runtime: Runtime, client: AsyncClient
) -> None:
    existing = await create_user(runtime)
    response = await client.post(
        "/api/v1/auth/signup", json={"email": existing.email, "password": STRONG, "name": "X"}
    )
    assert response.status_code == 202
    fresh = await client.post(
        "/api/v1/auth/signup", json={"email": unique_email(), "password": STRONG, "name": "X"}
    )
    assert response.json() == fresh.json()
    assert "tried to sign up" in (await outbox_messages(runtime, existing.email))[-1]["Subject"]
    await login(client, existing.email)  # the account is unchanged


@pytest.mark.parametrize("password", ["password1", "12345678", "short", "niastone1"])
async def test_weak_passwords_are_refused_at_sign_up(client: AsyncClient, password: str) -> None:
    response = await client.post(
        "/api/v1/auth/signup",
        json={"email": unique_email(), "password": password, "name": "Nia Stone"},
    )
    assert response.status_code == 422
    assert response.json()["type"].endswith("/weak-password")


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-address", "password": STRONG, "name": "X"},
        {"email": unique_email(), "password": STRONG, "name": ""},
        {"email": unique_email(), "password": STRONG},
        {"email": unique_email(), "password": "x" * 2000, "name": "X"},
    ],
)
async def test_malformed_sign_ups_are_refused(client: AsyncClient, body: dict[str, str]) -> None:
    response = await client.post("/api/v1/auth/signup", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_password_reset_works_once_and_ends_every_session(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    unknown = await client.post("/api/v1/auth/password-reset", json={"email": unique_email()})
    known = await client.post("/api/v1/auth/password-reset", json={"email": owner.user.email})
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()

    token = await latest_token(runtime, owner.user.email, "reset-password")
    weak = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": "password1"}
    )
    assert weak.status_code == 422
    done = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": STRONG}
    )
    assert done.status_code == 204
    reused = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": STRONG + "!"}
    )
    assert reused.status_code == 400

    assert (await client.get("/api/v1/me", headers=owner.headers)).status_code == 401
    bad = await client.post(
        "/api/v1/auth/login", json={"email": owner.user.email, "password": PASSWORD}
    )
    assert bad.status_code == 401
    await login(client, owner.user.email, STRONG)


async def test_asking_again_sends_no_link_for_a_while_and_keeps_the_last_few_working(
    runtime: Runtime, client: AsyncClient, clock: Clock
) -> None:
    user = await create_user(runtime)
    # Only the sending job's rules here; the limit on requests per address is another wall
    # (tests/security/test_email.py).
    runtime.settings = runtime.settings.model_copy(
        update={"rate_limits": runtime.settings.rate_limits.model_copy(update={"enabled": False})}
    )

    async def ask() -> list[str]:
        await client.post("/api/v1/auth/password-reset", json={"email": user.email})
        return [
            re.findall(r"/reset-password\?token=([A-Za-z0-9_-]+)", message.get_content())[0]
            for message in await outbox_messages(runtime, user.email)
        ]

    first = await ask()
    assert len(first) == 1
    # A moment later: nothing new, the link already sent stays the one to use.
    assert await ask() == first
    links = first
    for _ in range(3):
        clock.advance(seconds=emails.RESEND_AFTER.total_seconds())
        links = await ask()
    assert len(links) == 4

    # The newest LINKS_KEPT work; older ones were voided by the newer.
    void = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": links[0], "password": STRONG}
    )
    assert void.status_code == 400
    kept = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": links[1], "password": STRONG}
    )
    assert kept.status_code == 204
    await login(client, user.email, STRONG)


async def test_asking_for_links_never_sent_does_not_use_up_the_budget_of_those_that_are(
    runtime: Runtime, client: AsyncClient
) -> None:
    user = await create_user(runtime)  # confirmed: a confirmation link is never sent
    for _ in range(5):
        resent = await client.post("/api/v1/auth/verify-email/resend", json={"email": user.email})
        assert resent.status_code == 202

    await client.post("/api/v1/auth/password-reset", json={"email": user.email})

    [reset] = await outbox_messages(runtime, user.email)
    assert "/reset-password?token=" in reset.get_content()


async def test_changing_ones_password_keeps_this_session_and_ends_the_others(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    other = await login(client, owner.user.email)
    wrong = await client.post(
        "/api/v1/me/password",
        json={"current_password": "not it at all", "new_password": STRONG},
        headers=owner.headers,
    )
    assert wrong.status_code == 401
    changed = await client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": STRONG},
        headers=owner.headers,
    )
    assert changed.status_code == 204
    assert (await client.get("/api/v1/me", headers=owner.headers)).status_code == 200
    gone = await client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {other['access_token']}"}
    )
    assert gone.status_code == 401


async def test_the_profile_and_preferences(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    response = await client.patch(
        "/api/v1/me",
        json={
            "name": "Ada Marble",
            "locale": "it-IT",
            "units": "imperial",
            "notification_settings": {"weekly_summary": True, "training_finished": False},
        },
        headers=owner.headers,
    )
    assert response.status_code == 200
    user = (await client.get("/api/v1/me", headers=owner.headers)).json()["user"]
    assert user["name"] == "Ada Marble"
    assert user["locale"] == "it-IT"
    assert user["units"] == "imperial"
    assert user["notification_settings"]["weekly_summary"] is True
    assert user["notification_settings"]["training_finished"] is False
    assert user["notification_settings"]["security_alerts"] is True

    for bad in ({"units": "cubits"}, {"locale": "not a locale"}, {"email": "x@y.z"}):
        refused = await client.patch("/api/v1/me", json=bad, headers=owner.headers)
        assert refused.status_code == 422, bad
