"""Typed FastAPI dependencies shared by every domain's endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from kai.kit.db import session_scope
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
