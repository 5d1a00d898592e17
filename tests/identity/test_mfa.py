"""Two-factor authentication with TOTP and recovery codes."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest
from httpx import AsyncClient

from kai.kit import totp
from kai.runtime import Runtime
from tests.identity.conftest import Clock
from tests.identity.factories import PASSWORD, Member, member

pytestmark = pytest.mark.database


def _secret(uri: str) -> bytes:
    value = parse_qs(urlsplit(uri).query)["secret"][0]
    return base64.b32decode(value + "=" * (-len(value) % 8))


async def _enrol(client: AsyncClient, person: Member, clock: Clock) -> tuple[bytes, list[str]]:
    enrolment = await client.post("/api/v1/auth/mfa/totp/enrol", headers=person.headers)
    assert enrolment.status_code == 200
    uri = enrolment.json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/KAI%3A")
    secret = _secret(uri)
    code = totp.totp(secret, clock.now.timestamp())
    confirmed = await client.post(
        "/api/v1/auth/mfa/totp/confirm", json={"code": code}, headers=person.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


async def _login(client: AsyncClient, email: str, **extra: str) -> int:
    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD, **extra}
    )
    return response.status_code


async def test_with_totp_on_a_login_needs_a_fresh_code_each_time(
    runtime: Runtime, client: AsyncClient, clock: Clock
) -> None:
    person = await member(runtime, client)
    secret, recovery = await _enrol(client, person, clock)
    assert len(recovery) == 10

    without = await client.post(
        "/api/v1/auth/login", json={"email": person.user.email, "password": PASSWORD}
    )
    assert without.status_code == 401
    assert without.json()["type"].endswith("/mfa-required")
    # The code used to confirm is spent, and the answer says so; the next step's code works,
    # once.
    spent = totp.totp(secret, clock.now.timestamp())
    reused = await client.post(
        "/api/v1/auth/login",
        json={"email": person.user.email, "password": PASSWORD, "totp_code": spent},
    )
    assert reused.status_code == 401
    assert reused.json()["type"].endswith("/mfa-code-used")
    assert "wait for the next one" in reused.json()["detail"]
    wrong = await client.post(
        "/api/v1/auth/login",
        json={"email": person.user.email, "password": PASSWORD, "totp_code": "000000"},
    )
    assert wrong.json()["type"].endswith("/invalid-mfa-code")
    clock.advance(seconds=30)
    fresh = totp.totp(secret, clock.now.timestamp())
    ok = await client.post(
        "/api/v1/auth/login",
        json={"email": person.user.email, "password": PASSWORD, "totp_code": fresh},
    )
    assert ok.status_code == 200
    me = await client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {ok.json()['access_token']}"}
    )
    assert me.json()["authentication_methods"] == ["pwd", "otp"]
    assert await _login(client, person.user.email, totp_code=fresh) == 401
    # A code a step old still works (clock drift), two steps old does not.
    clock.advance(seconds=60)
    assert (
        await _login(
            client, person.user.email, totp_code=totp.totp(secret, clock.now.timestamp() - 60)
        )
        == 401
    )
    assert (
        await _login(
            client, person.user.email, totp_code=totp.totp(secret, clock.now.timestamp() - 30)
        )
        == 200
    )


async def test_recovery_codes_work_once_each(
    runtime: Runtime, client: AsyncClient, clock: Clock
) -> None:
    person = await member(runtime, client)
    _, recovery = await _enrol(client, person, clock)
    assert await _login(client, person.user.email, recovery_code=recovery[0]) == 200
    assert await _login(client, person.user.email, recovery_code=recovery[0]) == 401
    assert await _login(client, person.user.email, recovery_code=recovery[1].upper()) == 200
    status = (await client.get("/api/v1/auth/mfa", headers=person.headers)).json()
    assert status == {
        "totp_enabled": True,
        "recovery_codes_left": 8,
        "required_by_organization": False,
    }


async def test_turning_totp_off_needs_the_password_and_a_code(
    runtime: Runtime, client: AsyncClient, clock: Clock
) -> None:
    person = await member(runtime, client)
    secret, _ = await _enrol(client, person, clock)
    clock.advance(seconds=30)
    code = totp.totp(secret, clock.now.timestamp())
    wrong_password = await client.post(
        "/api/v1/auth/mfa/totp/disable",
        json={"password": "not the password", "code": code},
        headers=person.headers,
    )
    assert wrong_password.status_code == 401
    wrong_code = await client.post(
        "/api/v1/auth/mfa/totp/disable",
        json={"password": PASSWORD, "code": "000000"},
        headers=person.headers,
    )
    assert wrong_code.status_code == 401
    off = await client.post(
        "/api/v1/auth/mfa/totp/disable",
        json={"password": PASSWORD, "code": code},
        headers=person.headers,
    )
    assert off.status_code == 204
    assert await _login(client, person.user.email) == 200


async def test_confirming_needs_a_good_code_and_an_enrolment(
    runtime: Runtime, client: AsyncClient
) -> None:
    person = await member(runtime, client)
    nothing = await client.post(
        "/api/v1/auth/mfa/totp/confirm", json={"code": "123456"}, headers=person.headers
    )
    assert nothing.status_code == 409
    await client.post("/api/v1/auth/mfa/totp/enrol", headers=person.headers)
    wrong = await client.post(
        "/api/v1/auth/mfa/totp/confirm", json={"code": "123456"}, headers=person.headers
    )
    assert wrong.status_code == 401
    assert wrong.json()["type"].endswith("/invalid-mfa-code")


async def test_an_organization_requiring_mfa_lets_members_only_enrol_first(
    runtime: Runtime, client: AsyncClient, clock: Clock
) -> None:
    owner = await member(runtime, client)
    colleague = await member(runtime, client, role="editor", organization=owner.organization)
    assert (
        await client.patch(
            "/api/v1/organization", json={"mfa_required": True}, headers=owner.headers
        )
    ).status_code == 200

    blocked = await client.get("/api/v1/members", headers=colleague.headers)
    assert blocked.status_code == 403
    assert blocked.json()["type"].endswith("/mfa-enrolment-required")
    me = (await client.get("/api/v1/me", headers=colleague.headers)).json()
    assert me["mfa_enrolment_required"] is True

    await _enrol(client, colleague, clock)
    assert (await client.get("/api/v1/members", headers=colleague.headers)).status_code == 200
