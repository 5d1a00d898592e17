"""Typed FastAPI dependencies shared by every domain's endpoints."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from kai.kit.db import (
    act_for_each_transaction,
    release_connection,
    scope_each_transaction,
    session_scope,
)
from kai.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, and that
    # hop cost more than everything else a health probe does.
    return runtime_of(request)


# What the route's access dependency learnt of the caller (`kai.identity.dependencies`): the
# organization and person its database work acts for, when it last wrote, and whether its
# writes are to be recorded (`kai.identity.writes`, with a read replica).
CALLER_STATE = "kai_caller"
# `session.info` key of the Actor whose writes a request's session records.
WRITER_INFO = "kai.writer"


@dataclass(frozen=True)
class Caller:
    organization_id: uuid.UUID | None
    user_id: uuid.UUID | None
    last_write_at: datetime | None
    writer: object | None = None


def caller_of(request: Request) -> Caller | None:
    caller: Caller | None = getattr(request.state, CALLER_STATE, None)
    return caller


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the endpoint returns, rolled back on error.

    Each transaction it begins acts for the caller (`kai.kit.db.act_for`), as the route's
    access dependency found it: a statement the endpoint runs comes after that dependency,
    whatever order the route declares them in. A public route's session acts for nobody."""
    async with session_scope(runtime_of(request).session_factory) as session:

        def scope() -> tuple[uuid.UUID | None, uuid.UUID | None] | None:
            caller = caller_of(request)
            if caller is None:
                return None
            if caller.writer is not None:
                session.info[WRITER_INFO] = caller.writer
            return caller.organization_id, caller.user_id

        scope_each_transaction(session, scope)
        yield session


# scope="function": commit before the response is sent, so a failed commit is reported.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_read_session(request: Request, session: DbSession) -> AsyncIterator[AsyncSession]:
    """For searches and listings: a session on the read replica when there is one, it is close
    enough behind, and it holds the caller's last write (the caller would miss its own writes
    there otherwise); else the request's own session on the primary."""
    runtime = runtime_of(request)
    replica = runtime.replica
    caller = caller_of(request)
    if replica is None or caller is None:
        yield session
        return
    if not await replica.serves(caller.last_write_at):
        yield session
        return
    # The caller's primary connection, if it took one, goes back to the pool while the
    # replica answers.
    await release_connection(session)
    async with replica.session_factory() as read:
        act_for_each_transaction(read, organization_id=caller.organization_id)
        yield read


ReadSession = Annotated[AsyncSession, Depends(get_read_session, scope="function")]
