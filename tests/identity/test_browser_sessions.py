"""A browser's session: the refresh token in an HttpOnly cookie, and requests it authenticates
protected from other sites."""

from __future__ import annotations

from http.cookies import SimpleCookie

from httpx import AsyncClient, Response

from kai.runtime import Runtime
from tests.identity.factories import PASSWORD, create_organization, create_user

APP = {"X-Requested-With": "kai"}


def _set_cookie(response: Response) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        cookie.load(header)
    return cookie


async def _browser_login(client: AsyncClient, email: str) -> tuple[Response, str]:
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": PASSWORD, "refresh_token_in": "cookie"},
    )
    assert response.status_code == 200, response.text
    return response, _set_cookie(response)["kai_refresh"].value


async def _owner(runtime: Runtime) -> str:
    user = await create_user(runtime)
    await create_organization(runtime, owner=user)
    return user.email


async def test_a_browser_login_puts_the_refresh_token_in_an_httponly_cookie_only(
    client: AsyncClient, runtime: Runtime
) -> None:
    response, token = await _browser_login(client, await _owner(runtime))
    assert response.json()["refresh_token"] is None
    assert response.json()["access_token"]
    assert token.startswith("kai_rt_")
    cookie = _set_cookie(response)["kai_refresh"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "strict"
    assert cookie["path"] == "/api/v1/auth"
    # Served under a name that is not loopback, over plain HTTP: still only over HTTPS.
    assert cookie["secure"]


async def test_the_cookie_is_not_secure_only_on_plain_loopback(
    client: AsyncClient, runtime: Runtime
) -> None:
    email = await _owner(runtime)
    response = await client.post(
        "http://127.0.0.1:8000/api/v1/auth/login",
        json={"email": email, "password": PASSWORD, "refresh_token_in": "cookie"},
    )
    assert not _set_cookie(response)["kai_refresh"]["secure"]


async def test_the_cookie_refreshes_the_session_and_is_replaced(
    client: AsyncClient, runtime: Runtime
) -> None:
    _, token = await _browser_login(client, await _owner(runtime))
    refreshed = await client.post(
        "/api/v1/auth/refresh", headers={**APP, "Cookie": f"kai_refresh={token}"}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] is None
    renewed = _set_cookie(refreshed)["kai_refresh"].value
    assert renewed.startswith("kai_rt_")
    assert renewed != token
    me = await client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    )
    assert me.status_code == 200


async def test_a_cookie_without_the_apps_header_is_refused(
    client: AsyncClient, runtime: Runtime
) -> None:
    # What a form on another site could send: the cookie (were SameSite to fail), no header.
    _, token = await _browser_login(client, await _owner(runtime))
    forged = await client.post("/api/v1/auth/refresh", headers={"Cookie": f"kai_refresh={token}"})
    assert forged.status_code == 403
    assert forged.json()["type"].endswith("/csrf-check-failed")
    # The refusal used nothing up: the app's own request still works.
    own = await client.post(
        "/api/v1/auth/refresh", headers={**APP, "Cookie": f"kai_refresh={token}"}
    )
    assert own.status_code == 200


async def test_a_cookie_sent_from_another_origin_is_refused(
    client: AsyncClient, runtime: Runtime
) -> None:
    _, token = await _browser_login(client, await _owner(runtime))
    answer = await client.post(
        "/api/v1/auth/refresh",
        headers={**APP, "Cookie": f"kai_refresh={token}", "Origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    same = await client.post(
        "/api/v1/auth/refresh",
        headers={**APP, "Cookie": f"kai_refresh={token}", "Origin": "http://kai.test"},
    )
    assert same.status_code == 200


async def test_a_spent_cookie_is_cleared_so_the_app_shows_its_login(
    client: AsyncClient, runtime: Runtime
) -> None:
    _, token = await _browser_login(client, await _owner(runtime))
    headers = {**APP, "Cookie": f"kai_refresh={token}"}
    assert (await client.post("/api/v1/auth/refresh", headers=headers)).status_code == 200
    reused = await client.post("/api/v1/auth/refresh", headers=headers)
    assert reused.status_code == 401
    cleared = _set_cookie(reused)["kai_refresh"]
    assert cleared.value == ""
    assert cleared["max-age"] == "0"


async def test_refresh_without_token_or_cookie_is_a_clear_401(client: AsyncClient) -> None:
    answer = await client.post("/api/v1/auth/refresh", headers=APP)
    assert answer.status_code == 401
    assert "refresh_token" in answer.json()["detail"]
    empty_body = await client.post("/api/v1/auth/refresh", json={})
    assert empty_body.status_code == 401


async def test_logout_clears_the_cookie_and_ends_the_session(
    client: AsyncClient, runtime: Runtime
) -> None:
    response, token = await _browser_login(client, await _owner(runtime))
    access = response.json()["access_token"]
    out = await client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {access}"})
    assert out.status_code == 204
    assert _set_cookie(out)["kai_refresh"].value == ""
    after = await client.post(
        "/api/v1/auth/refresh", headers={**APP, "Cookie": f"kai_refresh={token}"}
    )
    assert after.status_code == 401


async def test_api_clients_keep_the_token_in_the_body(
    client: AsyncClient, runtime: Runtime
) -> None:
    email = await _owner(runtime)
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.json()["refresh_token"].startswith("kai_rt_")
    assert "kai_refresh" not in _set_cookie(response)
