"""From a bearer credential to an Actor: access tokens and API keys.

Runs on every authenticated request, so it goes through the driver (`kai.kit.driver`), not
the ORM: one JWT check and one statement for a token, two statements for an API key (and a
write once a minute, its last use), none while the process still keeps the answer
(`kai.identity.access_cache`). What it finds scopes the request's own database session when
that begins (`kai.deps.get_session`), which row-level security then enforces.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from kai.identity.actor import Actor, Origin
from kai.identity.errors import NotAuthenticated
from kai.identity.permissions import BUILT_IN_ROLES, Permission, parse_permissions
from kai.identity.repository import ACCESS_SQL, AccessRow
from kai.identity.sessions import ACCESS_TOKEN_TYPE
from kai.kit.crypto import equal, token_digest
from kai.kit.expiring import ExpiringCache
from kai.kit.jws import InvalidToken
from kai.runtime import Runtime

API_KEY_PREFIX = "kai_"
API_KEY_PATTERN = re.compile(r"^kai_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})$")
# Writing last_used_at on every call would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


# Tables whose rows decide what a credential allows: the statements below read them.
ACCESS_TABLES = frozenset(
    {
        "auth_sessions",
        "users",
        "memberships",
        "roles",
        "api_keys",
        "organizations",
        "totp_credentials",
    }
)


def access_cache(runtime: Runtime) -> ExpiringCache[Any]:
    """What credentials were found to allow, kept `KAI_AUTH__ACCESS_CACHE_SECONDS` by the
    process (`kai.kit.expiring`): a refusal is never kept, and a change to who may do what
    that this process commits (a session revoked, a member removed, a role changed, a key
    revoked, a person disabled) empties it at once."""
    cache = runtime.caches.get("access")
    if cache is None:
        cache = ExpiringCache(runtime.settings.auth.access_cache_seconds, watch=ACCESS_TABLES)
        runtime.caches["access"] = cache
    return cache


def role_permissions(role: str | None, custom: list[str] | None) -> frozenset[Permission]:
    if role is None:
        return frozenset()
    built_in = BUILT_IN_ROLES.get(role)
    if built_in is not None:
        return built_in
    return parse_permissions(custom or [])


async def authenticate(runtime: Runtime, *, credential: str, origin: Origin) -> Actor:
    if credential.startswith(API_KEY_PREFIX):
        return await _api_key(runtime, credential, origin)
    return await _access_token(runtime, credential, origin)


async def _access_token(runtime: Runtime, token: str, origin: Origin) -> Actor:
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

    cache = access_cache(runtime)
    key = ("session", session_id, user_id, organization_id)
    access: AccessRow | None = cache.get(key)
    read_in = cache.generation
    found = access is None
    if found:
        rows = await runtime.driver.rows(ACCESS_SQL, (session_id, user_id, organization_id))
        access = AccessRow(*rows[0]) if rows else None
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
    if found:
        cache.put(key, access, read_in=read_in)
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
        units=access.units,
    )


# The key, and its creator's role in its organization (a key never outranks its creator).
_API_KEY_SQL = (
    "SELECT k.id, k.secret_digest, k.revoked_at, k.expires_at, k.permissions, k.created_by,"
    " k.last_used_at, k.last_write_at, m.role, r.permissions"
    " FROM api_keys k"
    " LEFT JOIN memberships m"
    "   ON m.organization_id = k.organization_id AND m.user_id = k.created_by"
    " LEFT JOIN roles r ON r.organization_id = m.organization_id AND r.key = m.role"
    " WHERE k.organization_id = %s AND k.prefix = %s"
)
_API_KEY_USED_SQL = "UPDATE api_keys SET last_used_at = %s WHERE id = %s"


async def _api_key(runtime: Runtime, credential: str, origin: Origin) -> Actor:
    match = API_KEY_PATTERN.fullmatch(credential)
    if match is None:
        raise NotAuthenticated("The API key is not valid.")
    prefix, secret = match.groups()
    driver = runtime.driver
    cache = access_cache(runtime)
    key = ("api_key", prefix)
    read_in = cache.generation
    cached: tuple[uuid.UUID, tuple[Any, ...]] | None = cache.get(key)
    found = cached is None
    if cached is not None:
        organization_id, row = cached
    else:
        owners = await driver.rows("SELECT kai_api_key_organization(%s)", (prefix,))
        if not owners or owners[0][0] is None:
            raise NotAuthenticated("The API key is not valid.")
        organization_id = owners[0][0]
        rows = await driver.scoped_rows(
            _API_KEY_SQL, (organization_id, prefix), organization_id=organization_id
        )
        if not rows:
            raise NotAuthenticated("The API key is not valid.")
        row = rows[0]
    now = runtime.clock()
    (
        key_id,
        secret_digest,
        revoked_at,
        expires_at,
        key_permissions,
        created_by,
        last_used_at,
        last_write_at,
        creator_role,
        creator_custom,
    ) = row
    if not equal(bytes(secret_digest), token_digest(secret)):
        raise NotAuthenticated("The API key is not valid.")
    if revoked_at is not None:
        raise NotAuthenticated("The API key was revoked.")
    if expires_at is not None and expires_at <= now:
        raise NotAuthenticated("The API key has expired.")
    permissions = parse_permissions(key_permissions)
    # A key never outlives or outranks its creator's own access.
    if created_by is not None:
        permissions &= role_permissions(creator_role, creator_custom)
    if last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION:
        await driver.scoped_write(_API_KEY_USED_SQL, (now, key_id), organization_id=organization_id)
        # What the cache keeps says so too: the next minute's calls write nothing.
        row = (*row[:6], now, *row[7:])
        if not found:
            cache.update(key, (organization_id, row))
    if found:
        cache.put(key, (organization_id, row), read_in=read_in)
    return Actor(
        kind="api_key",
        organization_id=organization_id,
        permissions=permissions,
        api_key_id=key_id,
        user_id=None,
        origin=origin,
        last_write_at=last_write_at,
    )
