"""Fixtures of identity tests: apps over a runtime that really commits, a movable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from httpx import ASGITransport, AsyncClient

from kai.app import create_app
from kai.runtime import Runtime


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(runtime: Runtime) -> Clock:
    clock = Clock()
    runtime.clock = clock
    return clock


@pytest.fixture
async def committed_client(committed_runtime: Runtime) -> AsyncIterator[AsyncClient]:
    """A client of an app whose requests commit, as in production (refusals that must
    outlive their request's rollback are only visible this way)."""
    app = create_app(committed_runtime.settings, runtime=committed_runtime)
    async with AsyncClient(
        transport=ASGITransport(app=app, raise_app_exceptions=False), base_url="http://kai.test"
    ) as client:
        yield client
