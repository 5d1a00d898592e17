"""From a bearer credential to an Actor: access tokens and API keys.

Runs on every authenticated request, so it costs one JWT check and one query for a token,
two queries for an API key. The query also scopes the transaction to the caller's
organization, which row-level security then enforces.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity.actor import Actor, Origin
from kai.identity.errors import NotAuthenticated
from kai.identity.models import Membership, Role
from kai.identity.permissions import BUILT_IN_ROLES, Permission, parse_permissions
from kai.identity.repository import ApiKeyRepository, SessionRepository
from kai.identity.sessions import ACCESS_TOKEN_TYPE
from kai.kit.crypto import equal, token_digest
from kai.kit.db import act_for
from kai.kit.jws import InvalidToken
from kai.runtime import Runtime

API_KEY_PREFIX = "kai_"
API_KEY_PATTERN = re.compile(r"^kai_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})$")
# Writing last_used_at on every call would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def role_permissions(role: str | None, custom: list[str] | None) -> frozenset[Permission]:
    if role is None:
        return frozenset()
    built_in = BUILT_IN_ROLES.get(role)
    if built_in is not None:
        return built_in
    return parse_permissions(custom or [])


async def authenticate(
    session: AsyncSession, runtime: Runtime, *, credential: str, origin: Origin
) -> Actor:
    if credential.startswith(API_KEY_PREFIX):
        return await _api_key(session, runtime, credential, origin)
    return await _access_token(session, runtime, credential, origin)


async def _access_token(
    session: AsyncSession, runtime: Runtime, token: str, origin: Origin
) -> Actor:
    settings = runtime.settings.auth
    try:
        claims = runtime.token_keys.verify(
            token,
            typ=ACCESS_TOKEN_TYPE,
            audience=settings.audience,
            issuer=settings.issuer,
            required=("exp", "iat", "sub", "jti", "sid"),
        )
        user_id = uuid.UUID(str(claims["sub"]))
        session_id = uuid.UUID(str(claims["sid"]))
        organization_id = uuid.UUID(str(claims["org"])) if claims.get("org") else None
    except (InvalidToken, ValueError) as exc:
        raise NotAuthenticated("The access token is not valid.") from exc

    access = await SessionRepository(session).access(
        session_id=session_id, user_id=user_id, organization_id=organization_id
    )
    now = runtime.clock()
    if (
        access is None
        or access.session_revoked
        or access.session_expires_at <= now
        or access.user_disabled
        or (access.sessions_valid_after and access.session_created_at < access.sessions_valid_after)
    ):
        raise NotAuthenticated("The session has ended: log in again.")
    # A token minted for the organization the session acted for before a switch is stale.
    if access.session_organization_id != organization_id or (
        organization_id is not None and access.role is None
    ):
        raise NotAuthenticated("The access token is for another organization: refresh it.")
    methods = tuple(str(method) for method in claims.get("amr", ()))
    # An organization that requires two-factor authentication asks it of password sessions;
    # a single sign-on session's second factor is its identity provider's business. (Its
    # TOTP could not be enrolled from there anyway: that provider is not the person's.)
    needs_mfa_enrolment = access.mfa_required and not access.mfa_enrolled and "sso" not in methods
    return Actor(
        kind="user",
        organization_id=organization_id,
        permissions=role_permissions(access.role, access.custom_permissions),
        user_id=user_id,
        role=access.role,
        session_id=session_id,
        methods=methods,
        needs_mfa_enrolment=needs_mfa_enrolment,
        origin=origin,
        last_write_at=access.last_write_at,
    )


async def _api_key(
    session: AsyncSession, runtime: Runtime, credential: str, origin: Origin
) -> Actor:
    match = API_KEY_PATTERN.fullmatch(credential)
    if match is None:
        raise NotAuthenticated("The API key is not valid.")
    prefix, secret = match.groups()
    keys = ApiKeyRepository(session)
    organization_id = await keys.organization_of_prefix(prefix)
    if organization_id is None:
        raise NotAuthenticated("The API key is not valid.")
    await act_for(session, organization_id=organization_id)
    key = await keys.by_prefix(organization_id, prefix)
    now = runtime.clock()
    if key is None or not equal(key.secret_digest, token_digest(secret)):
        raise NotAuthenticated("The API key is not valid.")
    if key.revoked_at is not None:
        raise NotAuthenticated("The API key was revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise NotAuthenticated("The API key has expired.")
    permissions = parse_permissions(key.permissions)
    # A key never outlives or outranks its creator's own access.
    if key.created_by is not None:
        permissions &= await _member_permissions(session, organization_id, key.created_by)
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        await keys.touch(key.id, now)
    return Actor(
        kind="api_key",
        organization_id=organization_id,
        permissions=permissions,
        api_key_id=key.id,
        user_id=None,
        origin=origin,
        last_write_at=key.last_write_at,
    )


async def _member_permissions(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID
) -> frozenset[Permission]:
    row = (
        await session.execute(
            select(Membership.role, Role.permissions)
            .outerjoin(
                Role,
                (Role.organization_id == Membership.organization_id)
                & (Role.key == Membership.role),
            )
            .where(Membership.organization_id == organization_id, Membership.user_id == user_id)
        )
    ).one_or_none()
    if row is None:
        return frozenset()
    return role_permissions(row[0], row[1])
