"""The web app in Chromium against a real `kai serve`: one server per test worker.

The server runs as a user starts it (`python -m kai serve`, in-process worker, outbox email),
on a free port, with a fresh data dir and a fresh database migrated to head. Each test signs up
its own people and organizations, so tests share the server but nothing else. A module that
needs a server with other settings starts its own and overrides `app_server` with it.
Chromium is Debian's (`/usr/bin/chromium`, installed by `make test`); screenshots of each main
screen land in `web/screenshots/` for a reviewer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from web.e2e.serving import serving
from web.e2e.support import CHROMIUM, Server

# The database server, worker name and image-model store come from the repository's root
# conftest.py, shared with tests/. On a busy machine a screen can take more than the default
# 5 s to show; a real failure still shows within this.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def kai_server(
    tmp_path_factory: pytest.TempPathFactory, server_url: str, worker_name: str, model_dir: Path
) -> Iterator[Server]:
    with serving(
        data_dir=tmp_path_factory.mktemp("e2e-data"),
        server_url=server_url,
        database=f"kai_e2e_{worker_name}",
        model_dir=model_dir,
    ) as server:
        yield server


@pytest.fixture
def app_server(kai_server: Server) -> Server:
    """The server the test's pages open on; a module whose server needs other settings
    overrides this with its own."""
    return kai_server


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: `make test` installs it.")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            # A fake camera, so "Recognize" can open one in a headless browser.
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
        ],
    }


@pytest.fixture
def browser_context_args(
    browser_context_args: dict[str, Any], app_server: Server
) -> dict[str, Any]:
    return {
        **browser_context_args,
        "base_url": app_server.url,
        "viewport": {"width": 1280, "height": 860},
        "locale": "en-GB",
    }


@pytest.fixture(autouse=True)
def _page_timeouts(page: Page) -> None:
    # Generous for a busy two-core machine; a real failure still shows within the test's time.
    page.set_default_timeout(20_000)
    page.set_default_navigation_timeout(30_000)
