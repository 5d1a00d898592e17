"""The web app at `/`: the files Vite built, served from memory with the headers a browser needs.

Every file of the build is read once at start (and gzipped when first asked for: an app made
only for its OpenAPI document, as tests and `make client` make it, compresses nothing), so a
request can only ever name one of them: there is no path to resolve and nothing else on disk
to reach. A path that is not a file of the build is one of the app's own routes and gets
`index.html`; paths under `/api/` keep their problem+json 404. Without a build (an API-only
`pip install`), `/` says how to build it.
"""

from __future__ import annotations

import functools
import gzip
import mimetypes
from dataclasses import dataclass
from pathlib import Path

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from kai.identity.dependencies import public
from kai.kit.errors import NotFound
from kai.kit.routing import IndexedRouter

log = structlog.get_logger(__name__)

# The checkout's build, for `make run` and an editable install.
CHECKOUT_BUILD = Path(__file__).resolve().parents[3] / "web" / "dist"
APP_ENTRY = "index.html"
# The links KAI emails: the app opens them once it is built, the plain pages until then.
EMAILED_LINKS = ("/verify-email", "/reset-password", "/invitations/accept", "/sso/confirm")
# Vite names these after their content: a changed file gets a new name.
IMMUTABLE_PREFIX = "assets/"
COMPRESSIBLE = {".html", ".js", ".css", ".json", ".svg", ".webmanifest", ".txt", ".map"}

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Images the app fetches with its token are shown as blob: URLs; QR codes as data:.
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # The camera is the app's own business (Recognize); nothing else is asked for.
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=(), payment=(), usb=()",
}
HSTS = "max-age=31536000; includeSubDomains"

NOT_BUILT_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>KAI</title></head>
<body style="font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem">
<h1>KAI is running</h1>
<p>The web app is not built on this server, so there is nothing to show here. The API works:
its reference is at <a href="/docs">/docs</a> and its description at
<a href="/openapi.json">/openapi.json</a>.</p>
<p>To build the app from a checkout, run <code>make run</code>, or
<code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>, then restart the server.</p>
</body></html>"""
# The page above is the only one with an inline style: its own policy allows just that.
NOT_BUILT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


@dataclass(frozen=True)
class BuiltFile:
    body: bytes
    compressible: bool
    media_type: str
    cache_control: str


@dataclass(frozen=True)
class WebBuild:
    files: dict[str, BuiltFile]

    @classmethod
    def load(cls, directory: Path) -> WebBuild | None:
        """The build in `directory`, or None when it holds no `index.html`."""
        if not (directory / APP_ENTRY).is_file():
            return None
        files: dict[str, BuiltFile] = {}
        for path in sorted(directory.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            name = path.relative_to(directory).as_posix()
            body = path.read_bytes()
            media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if name.endswith(".webmanifest"):
                media_type = "application/manifest+json"
            if media_type.startswith("text/") or media_type.endswith("javascript"):
                media_type += "; charset=utf-8"
            compress = path.suffix in COMPRESSIBLE and len(body) > 512
            files[name] = BuiltFile(
                body=body,
                compressible=compress,
                media_type=media_type,
                cache_control="public, max-age=31536000, immutable"
                if name.startswith(IMMUTABLE_PREFIX)
                else "no-cache",
            )
        log.info("webapp.loaded", directory=str(directory), files=len(files))
        return cls(files=files)


def router_for(build: WebBuild | None) -> APIRouter:
    """The routes of `/` and every app path; registered last, after the API's."""
    router = IndexedRouter(include_in_schema=False, dependencies=[Depends(public(rate_class=None))])

    if build is None:

        @router.get("/")
        async def not_built() -> HTMLResponse:
            return HTMLResponse(
                NOT_BUILT_PAGE,
                headers={**SECURITY_HEADERS, "Content-Security-Policy": NOT_BUILT_POLICY},
            )

        return router

    @router.api_route("/{path:path}", methods=["GET", "HEAD"])
    async def app_file(path: str, request: Request) -> Response:
        if path == "api" or path.startswith("api/"):
            raise NotFound("No such route. The API's routes are listed at /openapi.json.")
        built = build.files.get(path)
        if built is None:
            if "." in path.rsplit("/", 1)[-1]:
                # A missing file (an old asset, a typo), not a route of the app.
                raise NotFound("No such file.")
            built = build.files[APP_ENTRY]
        return _answer(built, request)

    return router


def emailed_links_router(build: WebBuild) -> APIRouter:
    """The emailed links' paths, answered by the app ahead of the plain pages."""
    router = IndexedRouter(include_in_schema=False, dependencies=[Depends(public(rate_class=None))])

    async def app_entry(request: Request) -> Response:
        return _answer(build.files[APP_ENTRY], request)

    for path in EMAILED_LINKS:
        router.add_api_route(path, app_entry, methods=["GET", "HEAD"])
    return router


def _answer(built: BuiltFile, request: Request) -> Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": built.cache_control, "Vary": "Accept-Encoding"}
    if request.url.scheme == "https":
        headers["Strict-Transport-Security"] = HSTS
    body = built.body
    if built.compressible and "gzip" in request.headers.get("accept-encoding", ""):
        body = _gzipped(built.body)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=built.media_type, headers=headers)


@functools.cache
def _gzipped(body: bytes) -> bytes:
    # Once per file of the build (a few dozen), on its first request.
    return gzip.compress(body, compresslevel=9, mtime=0)


def find_build(configured: Path | None) -> WebBuild | None:
    """The configured build, else the checkout's; None when neither was built."""
    return WebBuild.load(configured if configured is not None else CHECKOUT_BUILD)
