"""Objects written for a transaction's rows live exactly as long as the rows: kept when it
commits, removed when it rolls back, fails to commit, or only a savepoint of it rolls back;
kept when nobody can tell whether it committed."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from kai.kit.db import scoped_transaction, session_scope
from kai.kit.jobs.models import Job
from kai.kit.storage.transactional import discard_uncommitted, put_for_transaction
from kai.runtime import Runtime

pytestmark = pytest.mark.database


class Refused(Exception):
    pass


def _key(name: str) -> str:
    return f"{uuid.uuid4()}/users/uploads/{name}"


async def test_a_committed_unit_of_work_keeps_its_objects(runtime: Runtime) -> None:
    key = _key("kept.jpg")

    async with session_scope(runtime.session_factory) as session:
        await put_for_transaction(session, runtime.storage, key, b"photo")

    assert await runtime.storage.read(key) == b"photo"


async def test_a_failed_unit_of_work_leaves_no_object_behind(runtime: Runtime) -> None:
    key = _key("orphan.jpg")

    async def store_then_fail() -> None:
        async with session_scope(runtime.session_factory) as session:
            await put_for_transaction(session, runtime.storage, key, b"photo")
            raise Refused

    with pytest.raises(Refused):
        await store_then_fail()

    assert not await runtime.storage.exists(key)


async def test_a_commit_that_fails_leaves_no_object_behind(runtime: Runtime) -> None:
    key = _key("orphan.jpg")

    async def store_then_fail_to_commit() -> None:
        async with scoped_transaction(runtime.session_factory, organization_id=None) as session:
            await put_for_transaction(session, runtime.storage, key, b"photo")
            # Refused by a check constraint only when the commit flushes it.
            session.add(Job(kind="tests.bogus", status="bogus", max_attempts=1))

    with pytest.raises(IntegrityError):
        await store_then_fail_to_commit()

    assert not await runtime.storage.exists(key)


async def test_a_savepoint_rolled_back_takes_only_its_own_objects(runtime: Runtime) -> None:
    before, inside, released = _key("before.jpg"), _key("inside.jpg"), _key("released.jpg")

    async with session_scope(runtime.session_factory) as session:
        await put_for_transaction(session, runtime.storage, before, b"1")
        savepoint = await session.begin_nested()
        await put_for_transaction(session, runtime.storage, inside, b"2")
        await savepoint.rollback()
        async with session.begin_nested():
            await put_for_transaction(session, runtime.storage, released, b"3")

    assert await runtime.storage.exists(before)
    assert not await runtime.storage.exists(inside)
    assert await runtime.storage.exists(released)


async def test_objects_of_a_transaction_still_open_are_left_alone(runtime: Runtime) -> None:
    key = _key("open.jpg")

    async with runtime.session_factory() as session:
        await put_for_transaction(session, runtime.storage, key, b"photo")
        # Asked too early, with the transaction still going: nothing is decided yet.
        assert await discard_uncommitted(session) == []
        assert await runtime.storage.exists(key)
        await session.rollback()
        assert await discard_uncommitted(session) == [key]

    assert not await runtime.storage.exists(key)


async def test_a_commit_whose_outcome_is_unknown_keeps_its_objects(
    committed_runtime: Runtime, owner_engine: AsyncEngine
) -> None:
    storage = committed_runtime.storage
    key = _key("unsure.jpg")

    async def store_then_lose_the_connection() -> None:
        async with scoped_transaction(
            committed_runtime.session_factory, organization_id=None
        ) as session:
            await put_for_transaction(session, storage, key, b"photo")
            backend = await session.scalar(text("SELECT pg_backend_pid()"))
            async with owner_engine.connect() as admin:
                await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})

    with pytest.raises(DBAPIError) as lost:
        await store_then_lose_the_connection()

    assert lost.value.connection_invalidated
    # Whether it committed nobody can tell: a file nobody names beats a row naming none.
    assert await storage.read(key) == b"photo"
    await storage.delete(key)
