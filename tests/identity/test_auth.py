"""Logging in, access tokens, refresh tokens, logout and switching organization."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from httpx import AsyncClient

from kai.config import AuthSettings, PasswordHashSettings
from kai.kit.jws import KeySet, SigningKey
from kai.kit.passwords import Passwords
from kai.runtime import Runtime
from tests.identity.conftest import Clock
from tests.identity.factories import (
    PASSWORD,
    add_member,
    create_organization,
    create_user,
    login,
    member,
)

pytestmark = pytest.mark.database


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_unauthenticated(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"].endswith("/not-authenticated")


async def test_login_answers_a_short_lived_access_token_and_an_opaque_refresh_token(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    tokens = await login(client, owner.user.email)

    assert tokens["token_type"] == "Bearer"
    assert 0 < tokens["expires_in"] <= 15 * 60
    assert tokens["refresh_token"].startswith("kai_rt_")
    assert len(tokens["refresh_token"]) >= len("kai_rt_") + 43  # 256 random bits
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["kid"] == runtime.token_keys.signing_kid
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["iss"] == "kai"
    assert claims["aud"] == "kai-api"
    assert claims["sub"] == str(owner.user.id)
    assert claims["org"] == str(owner.organization_id)
    assert claims["exp"] - claims["iat"] <= 15 * 60
    assert claims["jti"]

    me = await client.get("/api/v1/me", headers=_bearer(tokens["access_token"]))
    assert me.status_code == 200
    body = me.json()
    assert body["user"]["email"] == owner.user.email
    assert body["organization"]["id"] == str(owner.organization_id)
    assert body["role"] == "owner"
    assert "members:manage" in body["permissions"]
    assert body["authentication_methods"] == ["pwd"]


async def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(
    runtime: Runtime, client: AsyncClient
) -> None:
    user = await create_user(runtime)
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": "not the password"}
    )
    unknown = await client.post(
        "/api/v1/auth/login",
        json={"email": "nobody@tiles.example", "password": "not the password"},
    )
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda body: {k: v for k, v in body.items() if k != "request_id"}  # noqa: E731
    assert strip(wrong.json()) == strip(unknown.json())
    assert wrong.json()["type"].endswith("/invalid-credentials")


async def test_an_unverified_address_cannot_log_in_yet(
    runtime: Runtime, client: AsyncClient
) -> None:
    user = await create_user(runtime, verified=False)
    response = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert response.status_code == 403
    assert response.json()["type"].endswith("/email-not-verified")


async def test_a_login_with_an_outdated_hash_rehashes_it(
    runtime: Runtime, client: AsyncClient
) -> None:
    older = Passwords(
        AuthSettings(password_hash=PasswordHashSettings(memory_kib=2048, iterations=2))
    )
    user = await create_user(runtime)
    async with runtime.session_factory.begin() as session:
        from kai.identity.repository import UserRepository

        await UserRepository(session).update(user.id, password_hash=older.hash(PASSWORD))
    await login(client, user.email)
    async with runtime.session_factory() as session:
        from kai.identity.repository import UserRepository

        stored = await UserRepository(session).get(user.id)
    assert stored is not None
    assert stored.password_hash is not None
    assert "m=1024,t=1,p=1" in stored.password_hash


# --- access tokens that must be refused ----------------------------------------------------


def _forge(runtime: Runtime, claims: dict[str, Any], **header: Any) -> str:
    key = runtime.token_keys._signer
    return jwt.encode(
        claims,
        key.signing_key,
        algorithm=key.algorithm,
        headers={"kid": key.kid, "typ": "at+jwt", **header},
    )


@pytest.fixture
async def valid_claims(runtime: Runtime, client: AsyncClient) -> dict[str, Any]:
    owner = await member(runtime, client)
    claims: dict[str, Any] = jwt.decode(owner.access_token, options={"verify_signature": False})
    # The claims are good: signed again by the platform, they work.
    assert (
        await client.get("/api/v1/me", headers=_bearer(_forge(runtime, claims)))
    ).status_code == 200
    return claims


async def test_an_unsigned_token_is_refused(
    runtime: Runtime, client: AsyncClient, valid_claims: dict[str, Any]
) -> None:
    unsigned = jwt.encode(
        valid_claims,
        None,
        algorithm="none",
        headers={"typ": "at+jwt", "kid": runtime.token_keys.signing_kid},
    )
    _assert_unauthenticated(await client.get("/api/v1/me", headers=_bearer(unsigned)))


async def test_an_hs256_token_keyed_with_the_public_key_is_refused(
    runtime: Runtime, client: AsyncClient
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    runtime.token_keys = KeySet(
        [SigningKey.asymmetric("rsa-1", "RS256", public_pem=None, private_pem=private_pem)],
        allowed_algorithms=["RS256", "HS256"],
    )
    owner = await member(runtime, client)
    claims = jwt.decode(owner.access_token, options={"verify_signature": False})
    assert (await client.get("/api/v1/me", headers=owner.headers)).status_code == 200

    # The attacker knows the public key and signs HS256 with it as the HMAC secret.
    import hashlib
    import hmac

    header = jwt.utils.base64url_encode(b'{"alg":"HS256","kid":"rsa-1","typ":"at+jwt"}')
    payload = jwt.utils.base64url_encode(jwt.api_jws.json.dumps(claims).encode())
    signing_input = header + b"." + payload
    signature = jwt.utils.base64url_encode(
        hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    )
    forged = (signing_input + b"." + signature).decode()
    _assert_unauthenticated(await client.get("/api/v1/me", headers=_bearer(forged)))


@pytest.mark.parametrize(
    "change",
    [
        {"exp": int(time.time()) - 30, "iat": int(time.time()) - 930},
        {"aud": "another-api"},
        {"iss": "https://issuer.example"},
        {"sid": str(uuid.uuid4())},
        {"org": str(uuid.uuid4())},
        {"sub": str(uuid.uuid4())},
    ],
    ids=["expired", "wrong-aud", "wrong-iss", "unknown-session", "other-org", "other-user"],
)
async def test_tokens_with_a_wrong_claim_are_refused(
    runtime: Runtime, client: AsyncClient, valid_claims: dict[str, Any], change: dict[str, Any]
) -> None:
    token = _forge(runtime, {**valid_claims, **change})
    _assert_unauthenticated(await client.get("/api/v1/me", headers=_bearer(token)))


async def test_a_token_of_another_type_is_refused(
    runtime: Runtime, client: AsyncClient, valid_claims: dict[str, Any]
) -> None:
    token = _forge(runtime, valid_claims, typ="JWT")
    _assert_unauthenticated(await client.get("/api/v1/me", headers=_bearer(token)))


async def test_a_refresh_token_is_not_an_access_token(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    assert owner.refresh_token is not None
    _assert_unauthenticated(await client.get("/api/v1/me", headers=_bearer(owner.refresh_token)))


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt", "Bearer kai_nope"],
)
async def test_missing_or_malformed_credentials_are_refused(
    client: AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    _assert_unauthenticated(await client.get("/api/v1/me", headers=headers))


# --- refresh, logout, switching -------------------------------------------------------------


async def test_a_refresh_token_works_once_and_reuse_revokes_its_whole_family(
    committed_runtime: Runtime, committed_client: AsyncClient
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)

    first = await client.post("/api/v1/auth/refresh", json={"refresh_token": owner.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != owner.refresh_token
    assert (
        await client.get("/api/v1/me", headers=_bearer(rotated["access_token"]))
    ).status_code == 200

    # The first token again: someone copied it. Everything of that login stops working.
    again = await client.post("/api/v1/auth/refresh", json={"refresh_token": owner.refresh_token})
    assert again.status_code == 401
    assert again.json()["type"].endswith("/invalid-refresh-token")
    later = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert later.status_code == 401
    _assert_unauthenticated(
        await client.get("/api/v1/me", headers=_bearer(rotated["access_token"]))
    )
    _assert_unauthenticated(await client.get("/api/v1/me", headers=owner.headers))

    # Other logins of the same person are untouched.
    other = await login(client, owner.user.email)
    assert (
        await client.get("/api/v1/me", headers=_bearer(other["access_token"]))
    ).status_code == 200


async def test_unknown_refresh_tokens_are_refused(client: AsyncClient) -> None:
    for token in ("kai_rt_" + "A" * 43, "something-else"):
        response = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
        assert response.status_code == 401


async def test_a_session_ends_at_its_absolute_lifetime_whatever_the_refreshes(
    runtime: Runtime, client: AsyncClient, clock: Clock
) -> None:
    owner = await member(runtime, client)
    await client.patch(
        "/api/v1/organization", json={"session_lifetime_hours": 2}, headers=owner.headers
    )
    tokens = await login(client, owner.user.email)
    refresh_token = tokens["refresh_token"]
    for _ in range(3):
        clock.advance(minutes=30)
        response = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
        assert response.status_code == 200
        refresh_token = response.json()["refresh_token"]
    clock.advance(minutes=31)
    ended = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert ended.status_code == 401
    assert "lifetime" in ended.json()["detail"]


async def test_logout_ends_this_session_only(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    other = await login(client, owner.user.email)

    response = await client.post("/api/v1/auth/logout", headers=owner.headers)
    assert response.status_code == 204
    _assert_unauthenticated(await client.get("/api/v1/me", headers=owner.headers))
    refused = await client.post("/api/v1/auth/refresh", json={"refresh_token": owner.refresh_token})
    assert refused.status_code == 401
    assert (
        await client.get("/api/v1/me", headers=_bearer(other["access_token"]))
    ).status_code == 200


async def test_logout_everywhere_ends_every_session(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    other = await login(client, owner.user.email)

    response = await client.post("/api/v1/auth/logout-everywhere", headers=owner.headers)
    assert response.status_code == 200
    assert response.json()["sessions_revoked"] == 2
    for token in (owner.access_token, other["access_token"]):
        _assert_unauthenticated(await client.get("/api/v1/me", headers=_bearer(token)))
    refused = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]}
    )
    assert refused.status_code == 401


async def test_switching_organization_changes_what_the_token_acts_for(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    second_owner = await create_user(runtime)
    second = await create_organization(runtime, owner=second_owner, name="Oak Floors")
    await add_member(runtime, second, owner.user, "analyst")

    switched = await client.post(
        "/api/v1/auth/switch-organization",
        json={"organization_id": str(second.id)},
        headers=owner.headers,
    )
    assert switched.status_code == 200
    token = switched.json()["access_token"]
    me = (await client.get("/api/v1/me", headers=_bearer(token))).json()
    assert me["organization"]["id"] == str(second.id)
    assert me["role"] == "analyst"
    assert "members:manage" not in me["permissions"]
    # The token minted for the first organization no longer matches the session.
    _assert_unauthenticated(await client.get("/api/v1/me", headers=owner.headers))
    # The session's refresh token follows the switch.
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": owner.refresh_token}
    )
    claims = jwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})
    assert claims["org"] == str(second.id)

    listed = await client.get("/api/v1/me/organizations", headers=_bearer(token))
    assert {item["organization"]["id"] for item in listed.json()["items"]} == {
        str(owner.organization_id),
        str(second.id),
    }


async def test_switching_to_an_organization_one_is_not_in_is_a_404(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    stranger = await create_user(runtime)
    elsewhere = await create_organization(runtime, owner=stranger, name="Elsewhere")
    response = await client.post(
        "/api/v1/auth/switch-organization",
        json={"organization_id": str(elsewhere.id)},
        headers=owner.headers,
    )
    assert response.status_code == 404
