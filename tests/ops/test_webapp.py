"""The web app at `/`: its files, its routes' fallback, its headers, and life without a build."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient

from kai.app import create_app
from kai.config import Settings
from kai.runtime import Runtime

INDEX = '<!doctype html><html><head><script type="module" src="/assets/app-1a2b.js"></script>'
INDEX += '</head><body><div id="root"></div></body></html>'
SCRIPT = "console.log('KAI');\n" * 100


@pytest.fixture
def build(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "app-1a2b.js").write_text(SCRIPT)
    (dist / "sw.js").write_text("self.addEventListener('fetch', () => {});")
    (dist / "manifest.webmanifest").write_text('{"name": "KAI"}')
    return dist


async def _client(settings: Settings, runtime: Runtime, web_dir: Path) -> AsyncClient:
    app = create_app(settings.model_copy(update={"web_dir": web_dir}), runtime=runtime)
    return AsyncClient(transport=ASGITransport(app=app), base_url="http://kai.test")


@pytest.fixture
async def web(settings: Settings, runtime: Runtime, build: Path) -> AsyncIterator[AsyncClient]:
    async with await _client(settings, runtime, build) as client:
        yield client


@pytest.mark.parametrize(
    "path", ["/", "/index.html", "/catalog", "/catalog/materials/0193-abc", "/account"]
)
async def test_every_app_route_answers_the_app_with_its_security_headers(
    web: AsyncClient, path: str
) -> None:
    answer = await web.get(path)
    assert answer.status_code == 200
    assert answer.text == INDEX
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["cache-control"] == "no-cache"
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cross-origin-opener-policy"] == "same-origin"
    assert "camera=(self)" in answer.headers["permissions-policy"]


async def test_emailed_links_open_the_app_once_it_is_built(web: AsyncClient) -> None:
    for path in ("/verify-email", "/reset-password", "/invitations/accept", "/sso/confirm"):
        answer = await web.get(f"{path}?token=abc")
        assert answer.status_code == 200
        assert answer.text == INDEX


async def test_hashed_assets_are_cached_for_good_and_sent_compressed(web: AsyncClient) -> None:
    answer = await web.get("/assets/app-1a2b.js", headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert answer.headers["content-type"].startswith("text/javascript")
    assert answer.text == SCRIPT  # httpx inflates it
    assert int(answer.headers["content-length"]) < len(gzip.compress(SCRIPT.encode())) + 50
    worker = await web.get("/sw.js")
    assert worker.headers["cache-control"] == "no-cache"
    manifest = await web.get("/manifest.webmanifest")
    assert manifest.headers["content-type"] == "application/manifest+json"


async def test_a_missing_file_is_a_404_not_the_app(web: AsyncClient) -> None:
    answer = await web.get("/assets/app-old.js")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


async def test_api_paths_keep_their_problem_404(web: AsyncClient) -> None:
    for path in ("/api/v1/no-such-thing", "/api", "/api/v2/materials"):
        answer = await web.get(path)
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "path", ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/assets/../../pyproject.toml"]
)
async def test_no_path_reaches_a_file_outside_the_build(web: AsyncClient, path: str) -> None:
    answer = await web.get(path)
    assert "root:" not in answer.text
    assert "[project]" not in answer.text
    assert answer.status_code in (200, 404)


async def test_without_a_build_the_root_says_how_to_build_it(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    async with await _client(settings, runtime, tmp_path / "never-built") as client:
        root = await client.get("/")
        assert root.status_code == 200
        assert "web app is not built" in root.text
        assert "make run" in root.text
        assert root.headers["x-frame-options"] == "DENY"
        # The plain pages keep the emailed links working.
        page = await client.get("/verify-email?token=abc")
        assert page.status_code == 200
        assert "<form" in page.text
        missing = await client.get("/catalog")
        assert missing.status_code == 404
        assert (await client.get("/healthz")).status_code == 200
