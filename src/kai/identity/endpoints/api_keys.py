"""HTTP routes of API keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, status

from kai.deps import DbSession, RuntimeDep
from kai.identity import api_keys
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.identity.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from kai.kit.errors import problem_responses
from kai.kit.pagination import Page, PageParams, page_params
from kai.kit.routing import IndexedRouter

router = IndexedRouter(prefix="/api-keys", tags=["api keys"], responses=AUTH_RESPONSES)

KeysManage = Annotated[Actor, Depends(require(Permission.API_KEYS_MANAGE))]


@router.get("", summary="API keys of the organization")
async def list_api_keys(
    actor: KeysManage, session: DbSession, page: Annotated[PageParams, Depends(page_params)]
) -> Page[ApiKeyRead]:
    keys, cursor = await api_keys.list_api_keys(session, actor=actor, params=page)
    return Page[ApiKeyRead](items=[ApiKeyRead.model_validate(k) for k in keys], next_cursor=cursor)


@router.post(
    "",
    summary="Create an API key; the key is in this answer only",
    status_code=status.HTTP_201_CREATED,
)
async def create_api_key(
    body: ApiKeyCreate, actor: KeysManage, session: DbSession, runtime: RuntimeDep
) -> ApiKeyCreated:
    created = await api_keys.create_api_key(
        session,
        runtime,
        actor=actor,
        name=body.name,
        permissions=set(body.permissions),
        expires_at=body.expires_at,
    )
    read = ApiKeyRead.model_validate(created.key)
    return ApiKeyCreated(**read.model_dump(), key=created.secret)


@router.get("/{key_id}", summary="One API key (never its secret)", responses=problem_responses(404))
async def get_api_key(key_id: uuid.UUID, actor: KeysManage, session: DbSession) -> ApiKeyRead:
    return ApiKeyRead.model_validate(
        await api_keys.get_api_key(session, actor=actor, key_id=key_id)
    )


@router.delete(
    "/{key_id}",
    summary="Revoke an API key",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def revoke_api_key(
    key_id: uuid.UUID, actor: KeysManage, session: DbSession, runtime: RuntimeDep
) -> None:
    await api_keys.revoke_api_key(session, runtime, actor=actor, key_id=key_id)
