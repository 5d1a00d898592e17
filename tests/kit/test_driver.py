"""Statements on the driver (`kai.kit.driver`): each read sees only the organization it acts
for, and its scope ends with it, whichever request uses the connection next."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from kai.config import DatabaseSettings, Settings
from kai.kit.db import APP_ROLE, libpq_url, new_id
from kai.kit.driver import PooledDriver

pytestmark = pytest.mark.database

TEAMS = "SELECT organization_id, name FROM teams WHERE name LIKE %s ORDER BY name"


async def _two_organizations(owner_engine: AsyncEngine) -> tuple[uuid.UUID, uuid.UUID]:
    first, second = new_id(), new_id()
    async with owner_engine.begin() as connection:
        for organization_id, team in ((first, "Driver Alpha"), (second, "Driver Beta")):
            await connection.execute(
                text("INSERT INTO organizations (id, name, slug) VALUES (:id, 'Driver', :slug)"),
                {"id": organization_id, "slug": f"driver-{organization_id.hex[-12:]}"},
            )
            await connection.execute(
                text("INSERT INTO teams (id, organization_id, name) VALUES (:id, :org, :name)"),
                {"id": new_id(), "org": organization_id, "name": team},
            )
    return first, second


async def _forget(owner_engine: AsyncEngine, *organizations: uuid.UUID) -> None:
    async with owner_engine.begin() as connection:
        for organization_id in organizations:
            await connection.execute(
                text("DELETE FROM teams WHERE organization_id = :id"), {"id": organization_id}
            )
            await connection.execute(
                text("DELETE FROM organizations WHERE id = :id"), {"id": organization_id}
            )


async def test_a_scoped_read_sees_its_organization_only_and_its_scope_ends_with_it(
    settings: Settings, owner_engine: AsyncEngine
) -> None:
    first, second = await _two_organizations(owner_engine)
    assert settings.database_url is not None
    # One connection: every statement below runs on the same one, one after the other.
    one = DatabaseSettings(pool_size=1)
    driver = PooledDriver(
        libpq_url(settings.database_url.get_secret_value()), one, app_role=APP_ROLE
    )
    try:
        for organization_id, team in ((first, "Driver Alpha"), (second, "Driver Beta")):
            rows = await driver.scoped_rows(TEAMS, ("Driver %",), organization_id=organization_id)
            assert rows == [(organization_id, team)]
            # Plans PostgreSQL keeps for a statement run often scope it the same way.
            for _ in range(6):
                again = await driver.scoped_rows(
                    TEAMS, ("Driver %",), organization_id=organization_id
                )
                assert again == rows
        # The same connection, next: no scope left over from the read before.
        assert await driver.rows(TEAMS, ("Driver %",)) == []
        assert await driver.scoped_rows(TEAMS, ("Driver %",), organization_id=None) == []
        # The connection acts as the app role, whom row-level security restricts.
        assert await driver.rows("SELECT current_user", ()) == [(APP_ROLE,)]
    finally:
        await driver.close()
        await _forget(owner_engine, first, second)


async def test_a_scoped_write_changes_its_organizations_rows_only(
    settings: Settings, owner_engine: AsyncEngine
) -> None:
    first, second = await _two_organizations(owner_engine)
    assert settings.database_url is not None
    driver = PooledDriver(
        libpq_url(settings.database_url.get_secret_value()), settings.database, app_role=APP_ROLE
    )
    try:
        await driver.scoped_write(
            "UPDATE teams SET name = name || ' (renamed)'", (), organization_id=first
        )
        async with owner_engine.connect() as connection:
            names = (
                await connection.execute(
                    text("SELECT name FROM teams WHERE name LIKE 'Driver %' ORDER BY name")
                )
            ).scalars()
            assert list(names) == ["Driver Alpha (renamed)", "Driver Beta"]
    finally:
        await driver.close()
        await _forget(owner_engine, first, second)
