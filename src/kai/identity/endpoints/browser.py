"""Sessions held by a browser: the refresh token in a cookie the page's scripts cannot read.

The web app keeps its access token in memory only. Its refresh token travels in an
`HttpOnly`, `SameSite=Strict` cookie sent to the auth routes alone, `Secure` everywhere but
plain-HTTP loopback (where a browser would not store a secure cookie). A request that the
cookie authenticates must also carry the `X-Requested-With: kai` header and, when the browser
names one, an `Origin` equal to the server's own: a page of another origin can neither set
that header without a CORS preflight (which KAI never grants) nor hide where it comes from.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from fastapi import Request, Response

from kai.kit.errors import KaiError

REFRESH_COOKIE = "kai_refresh"
COOKIE_PATH = "/api/v1/auth"
CSRF_HEADER = "X-Requested-With"
CSRF_VALUE = "kai"


class CookieRequestRefused(KaiError):
    status, type, title = 403, "csrf-check-failed", "The request's origin could not be confirmed"


def cookie_token(request: Request) -> str | None:
    """The refresh token of the request's cookie, once the request proves it is the app's."""
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        return None
    if request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        raise CookieRequestRefused(
            f"A request that a session cookie authenticates sends `{CSRF_HEADER}: {CSRF_VALUE}`."
        )
    origin = request.headers.get("origin")
    if origin is not None and not _same_origin(origin, request):
        raise CookieRequestRefused("Session cookies work only on pages of this server.")
    return token


def holds_cookie(request: Request) -> bool:
    return bool(request.cookies.get(REFRESH_COOKIE))


def set_refresh_cookie(response: Response, request: Request, token: str, *, days: int) -> None:
    """Hand the browser `token`, kept as long as a refresh token lives (`days`)."""
    response.set_cookie(
        REFRESH_COOKIE,
        token,
        max_age=days * 86400,
        path=COOKIE_PATH,
        httponly=True,
        secure=needs_secure(request),
        samesite="strict",
    )


def clear_refresh_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        REFRESH_COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        secure=needs_secure(request),
        samesite="strict",
    )


def _same_origin(origin: str, request: Request) -> bool:
    parts = urlsplit(origin)
    host = request.headers.get("host", "")
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def clearing_headers(request: Request) -> dict[str, str]:
    """The header that drops the cookie, for an error answer (which is built anew)."""
    cleared = Response()
    clear_refresh_cookie(cleared, request)
    return {"set-cookie": cleared.headers["set-cookie"]}


def needs_secure(request: Request) -> bool:
    """Whether a cookie for this request must be `Secure`: everywhere but plain loopback."""
    if request.url.scheme == "https":
        return True
    host = (request.url.hostname or "").strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True
