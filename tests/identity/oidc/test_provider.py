"""The loopback OIDC provider, used the way a relying party uses it: code flow with PKCE."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from .harness import OidcClient, OidcUser, ProviderHandle, login_through_browserless_flow
from .parties import ANNA, BASIC_CLIENT, BRUNO, POST_CLIENT, REDIRECT_URI

Discovery = dict[str, Any]


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    nonce: str
    code_verifier: str


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


@pytest.fixture
async def discovery(http: httpx.AsyncClient, oidc_provider: ProviderHandle) -> Discovery:
    response = await http.get(oidc_provider.discovery_url)
    response.raise_for_status()
    document: Discovery = response.json()
    return document


def authorization_request(
    discovery: Discovery, client: OidcClient, *, pkce: bool = True
) -> AuthorizationRequest:
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    code_verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email profile",
        "state": state,
        "nonce": nonce,
    }
    if pkce:
        digest = hashlib.sha256(code_verifier.encode()).digest()
        params["code_challenge"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        params["code_challenge_method"] = "S256"
    url = f"{discovery['authorization_endpoint']}?{urlencode(params)}"
    return AuthorizationRequest(url=url, state=state, nonce=nonce, code_verifier=code_verifier)


async def code_for(request: AuthorizationRequest, user: OidcUser) -> str:
    callback = parse_qs(urlsplit(await login_through_browserless_flow(request.url, user.sub)).query)
    assert callback["state"] == [request.state]
    return callback["code"][0]


async def exchange(
    http: httpx.AsyncClient,
    discovery: Discovery,
    client: OidcClient,
    *,
    code: str,
    code_verifier: str,
    client_secret: str | None = None,
) -> httpx.Response:
    secret = client.client_secret if client_secret is None else client_secret
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": code_verifier,
    }
    if client.token_endpoint_auth_method == "client_secret_post":
        form |= {"client_id": client.client_id, "client_secret": secret}
        return await http.post(discovery["token_endpoint"], data=form)
    auth = httpx.BasicAuth(client.client_id, secret)
    return await http.post(discovery["token_endpoint"], data=form, auth=auth)


async def verified_claims(
    http: httpx.AsyncClient, discovery: Discovery, id_token: str, client: OidcClient
) -> dict[str, Any]:
    jwks = (await http.get(discovery["jwks_uri"])).raise_for_status().json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(id_token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        id_token,
        key,
        algorithms=["RS256"],
        audience=client.client_id,
        issuer=discovery["issuer"],
    )
    return claims


async def test_discovery_announces_code_flow_with_pkce(
    discovery: Discovery, oidc_provider: ProviderHandle
) -> None:
    assert discovery["issuer"] == oidc_provider.issuer
    assert discovery["issuer"].startswith("http://127.0.0.1:")
    assert discovery["response_types_supported"] == ["code"]
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert set(discovery["scopes_supported"]) >= {"openid", "email", "profile"}
    assert set(discovery["claims_supported"]) >= {"sub", "email", "email_verified", "name"}
    assert set(discovery["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256"]


async def test_jwks_publishes_only_a_public_rs256_key(
    http: httpx.AsyncClient, discovery: Discovery
) -> None:
    jwks = (await http.get(discovery["jwks_uri"])).raise_for_status().json()

    [key] = jwks["keys"]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    assert key["kid"]
    assert "d" not in key


async def test_login_redirects_to_relying_party_with_code_and_issuer(
    discovery: Discovery, oidc_provider: ProviderHandle
) -> None:
    request = authorization_request(discovery, BASIC_CLIENT)

    callback = await login_through_browserless_flow(request.url, ANNA.sub)

    assert callback.startswith(f"{REDIRECT_URI}?")
    query = parse_qs(urlsplit(callback).query)
    assert query["state"] == [request.state]
    assert query["iss"] == [oidc_provider.issuer]
    assert query["code"][0]


@pytest.mark.parametrize("client", [BASIC_CLIENT, POST_CLIENT], ids=lambda c: c.client_id)
async def test_code_exchange_yields_id_token_verified_by_jwks(
    http: httpx.AsyncClient, discovery: Discovery, client: OidcClient
) -> None:
    request = authorization_request(discovery, client)
    code = await code_for(request, ANNA)

    response = await exchange(
        http, discovery, client, code=code, code_verifier=request.code_verifier
    )

    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"].lower() == "bearer"
    claims = await verified_claims(http, discovery, tokens["id_token"], client)
    assert claims["iss"] == discovery["issuer"]
    assert claims["aud"] == client.client_id
    assert claims["nonce"] == request.nonce
    assert (claims["sub"], claims["email"], claims["email_verified"], claims["name"]) == (
        ANNA.sub,
        ANNA.email,
        True,
        ANNA.name,
    )


async def test_id_token_says_when_email_is_unverified(
    http: httpx.AsyncClient, discovery: Discovery
) -> None:
    request = authorization_request(discovery, BASIC_CLIENT)
    code = await code_for(request, BRUNO)

    response = await exchange(
        http, discovery, BASIC_CLIENT, code=code, code_verifier=request.code_verifier
    )

    claims = await verified_claims(http, discovery, response.json()["id_token"], BASIC_CLIENT)
    assert (claims["sub"], claims["email"], claims["email_verified"]) == (
        BRUNO.sub,
        BRUNO.email,
        False,
    )


async def test_code_cannot_be_exchanged_twice(
    http: httpx.AsyncClient, discovery: Discovery
) -> None:
    request = authorization_request(discovery, BASIC_CLIENT)
    code = await code_for(request, ANNA)
    first = await exchange(
        http, discovery, BASIC_CLIENT, code=code, code_verifier=request.code_verifier
    )
    assert first.status_code == 200, first.text

    second = await exchange(
        http, discovery, BASIC_CLIENT, code=code, code_verifier=request.code_verifier
    )

    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"


async def test_wrong_code_verifier_is_refused(
    http: httpx.AsyncClient, discovery: Discovery
) -> None:
    request = authorization_request(discovery, BASIC_CLIENT)
    code = await code_for(request, ANNA)

    response = await exchange(
        http, discovery, BASIC_CLIENT, code=code, code_verifier=secrets.token_urlsafe(48)
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_wrong_client_secret_is_refused(
    http: httpx.AsyncClient, discovery: Discovery
) -> None:
    request = authorization_request(discovery, BASIC_CLIENT)
    code = await code_for(request, ANNA)

    response = await exchange(
        http,
        discovery,
        BASIC_CLIENT,
        code=code,
        code_verifier=request.code_verifier,
        client_secret="not-the-secret",
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_authorization_without_pkce_is_refused(discovery: Discovery) -> None:
    request = authorization_request(discovery, BASIC_CLIENT, pkce=False)

    callback = await login_through_browserless_flow(request.url, ANNA.sub)

    query = parse_qs(urlsplit(callback).query)
    assert query["error"] == ["invalid_request"]
    assert "code" not in query
    assert query["state"] == [request.state]


async def test_unknown_login_is_denied(discovery: Discovery) -> None:
    request = authorization_request(discovery, BASIC_CLIENT)

    callback = await login_through_browserless_flow(request.url, "nobody")

    query = parse_qs(urlsplit(callback).query)
    assert query["error"] == ["access_denied"]
    assert "code" not in query
    assert query["state"] == [request.state]
