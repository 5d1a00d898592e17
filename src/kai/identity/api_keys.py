"""API keys: an organization's credentials for programs, scoped to chosen permissions.

A key reads `kai_<prefix>_<secret>`. The prefix finds it; only a digest of the secret is
kept, so the key is shown once, when made.
"""

from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity import audit
from kai.identity.actor import Actor
from kai.identity.errors import ApiKeyNotFound, PermissionDenied
from kai.identity.models import ApiKey
from kai.identity.permissions import Permission
from kai.identity.repository import ApiKeyRepository
from kai.kit.crypto import random_token, token_digest
from kai.kit.errors import InvalidValue
from kai.kit.pagination import PageParams
from kai.runtime import Runtime

_PREFIX_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class NewApiKey:
    key: ApiKey
    secret: str  # the whole key, shown this once


async def create_api_key(
    session: AsyncSession,
    runtime: Runtime,
    *,
    actor: Actor,
    name: str,
    permissions: set[Permission],
    expires_at: datetime | None,
) -> NewApiKey:
    organization_id = actor.tenant_id
    if actor.kind != "user":
        raise PermissionDenied("API keys are made by people, not by other keys.")
    actor.refuse_beyond_own(permissions, what="A key cannot hold")
    if expires_at is not None and expires_at <= runtime.clock():
        raise InvalidValue("`expires_at` must be in the future.")
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(12))
    secret = random_token(32)
    key = await ApiKeyRepository(session).add(
        ApiKey(
            organization_id=organization_id,
            name=name,
            prefix=prefix,
            secret_digest=token_digest(secret),
            permissions=sorted(permission.value for permission in permissions),
            created_by=actor.user_id,
            expires_at=expires_at,
        )
    )
    await audit.record(
        session,
        action="api_key.created",
        organization_id=organization_id,
        actor=actor,
        target_type="api_key",
        target_id=str(key.id),
        details={"name": name, "permissions": key.permissions, "prefix": prefix},
    )
    return NewApiKey(key=key, secret=f"kai_{prefix}_{secret}")


async def list_api_keys(
    session: AsyncSession, *, actor: Actor, params: PageParams
) -> tuple[list[ApiKey], str | None]:
    return await ApiKeyRepository(session).list_page(actor.tenant_id, params)


async def get_api_key(session: AsyncSession, *, actor: Actor, key_id: uuid.UUID) -> ApiKey:
    key = await ApiKeyRepository(session).get(actor.tenant_id, key_id)
    if key is None:
        raise ApiKeyNotFound(f"No API key {key_id} in this organization.")
    return key


async def revoke_api_key(
    session: AsyncSession, runtime: Runtime, *, actor: Actor, key_id: uuid.UUID
) -> ApiKey:
    key = await get_api_key(session, actor=actor, key_id=key_id)
    if key.revoked_at is None:
        key.revoked_at = runtime.clock()
        await session.flush()
        await audit.record(
            session,
            action="api_key.revoked",
            organization_id=key.organization_id,
            actor=actor,
            target_type="api_key",
            target_id=str(key.id),
            details={"name": key.name, "prefix": key.prefix},
        )
    return key
