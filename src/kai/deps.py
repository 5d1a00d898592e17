"""Typed FastAPI dependencies shared by every domain's endpoints."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from kai.kit.db import act_for_each_transaction, release_connection, session_scope
from kai.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, and that
    # hop cost more than everything else a health probe does.
    return runtime_of(request)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the endpoint returns, rolled back on error."""
    async with session_scope(runtime_of(request).session_factory) as session:
        yield session


# scope="function": commit before the response is sent, so a failed commit is reported.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

# What the route's access dependency learnt of the caller, for `get_read_session`: the
# organization it acts for, and when it last wrote.
READER_STATE = "kai_reader"


@dataclass(frozen=True)
class Reader:
    organization_id: uuid.UUID | None
    last_write_at: datetime | None


async def get_read_session(request: Request, session: DbSession) -> AsyncIterator[AsyncSession]:
    """For searches and listings: a session on the read replica when there is one, it is close
    enough behind, and it holds the caller's last write (the caller would miss its own writes
    there otherwise); else the request's own session on the primary."""
    runtime = runtime_of(request)
    replica = runtime.replica
    reader: Reader | None = getattr(request.state, READER_STATE, None)
    if replica is None or reader is None:
        yield session
        return
    if not await replica.serves(reader.last_write_at):
        yield session
        return
    # The caller's authentication is done: its primary connection goes back to the pool
    # while the replica answers.
    await release_connection(session, organization_id=reader.organization_id)
    async with replica.session_factory() as read:
        act_for_each_transaction(read, organization_id=reader.organization_id)
        yield read


ReadSession = Annotated[AsyncSession, Depends(get_read_session, scope="function")]
