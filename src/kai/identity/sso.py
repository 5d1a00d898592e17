"""Single sign-on with OpenID Connect, one identity provider per organization.

A login is the authorization code flow with PKCE (S256), a state that works once and a nonce
bound into the ID token. The ID token is believed only once its signature checks out against
the provider's published keys and its issuer, audience, lifetime and nonce match. The person it
names is found by (issuer, subject), else by a verified address among the organization's
members, else created; then made a member with the provider's default role.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import httpx
import jwt
import orjson
import structlog
from cryptography.exceptions import InvalidTag
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity import audit, organizations
from kai.identity.actor import Actor, Origin
from kai.identity.errors import PermissionDenied, RoleNotFound
from kai.identity.models import (
    Membership,
    Organization,
    SsoLoginAttempt,
    SsoProvider,
    User,
    UserIdentity,
)
from kai.identity.repository import MembershipRepository, OrganizationRepository, UserRepository
from kai.identity.sessions import TokenPair, open_session
from kai.kit.crypto import random_token, token_digest
from kai.kit.db import act_for
from kai.kit.errors import Conflict, KaiError, NotFound
from kai.runtime import Runtime

log = structlog.get_logger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
SCOPES = "openid email profile"
ATTEMPT_LIFETIME = timedelta(minutes=10)
# Asymmetric only: `none` proves nothing, and an HMAC key would be the client secret, which
# every holder of it could sign with.
ALLOWED_ALGORITHMS = frozenset({"RS256", "PS256", "ES256", "EdDSA"})
KEY_TYPES = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
CLOCK_LEEWAY_SECONDS = 60
METADATA_TTL_SECONDS = 3600.0
HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Discovery documents and key sets are a few KiB; a provider answering megabytes is broken.
MAX_DOCUMENT_BYTES = 512 * 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# An OAuth error code is safe to repeat to the caller; anything else the provider says is not.
OAUTH_ERROR_CODE = re.compile(r"[a-z_]{1,64}")
OWNER = "owner"


class SsoNotConfigured(NotFound):
    type, title = "sso-not-configured", "Single sign-on is not set up for this organization"


class SsoIssuerInvalid(KaiError):
    status, type, title = 422, "sso-issuer-invalid", "Not a usable OpenID Connect issuer"


class SsoClientSecretRequired(KaiError):
    status, type, title = 422, "sso-client-secret-required", "A client secret is required"


class SsoDefaultRoleNotAllowed(KaiError):
    status, type, title = 422, "sso-default-role-not-allowed", "SSO cannot make anyone an owner"


class SsoStateInvalid(KaiError):
    status, type, title = 400, "sso-state-invalid", "Unknown, expired or used login attempt"


class SsoCodeInvalid(KaiError):
    status, type, title = 400, "sso-code-invalid", "The provider refused the authorization code"


class SsoLoginDenied(KaiError):
    status, type, title = 401, "sso-login-denied", "The identity provider did not log you in"


class SsoIdTokenInvalid(KaiError):
    status, type, title = 401, "sso-id-token-invalid", "The identity provider's ID token is invalid"


class SsoEmailNotVerified(KaiError):
    status, type, title = 403, "sso-email-not-verified", "The provider vouched for no address"


class SsoEmailDomainNotAllowed(KaiError):
    status, type, title = 403, "sso-email-domain-not-allowed", "This email domain is not allowed"


class SsoAccountDisabled(KaiError):
    status, type, title = 403, "sso-account-disabled", "This account is disabled"


class SsoAccountExists(Conflict):
    type, title = "sso-account-exists", "An account with this address exists elsewhere"


class SsoMisconfigured(Conflict):
    type, title = "sso-misconfigured", "Single sign-on is misconfigured for this organization"


class SsoProviderUnavailable(KaiError):
    status, type, title = 502, "sso-provider-unavailable", "The identity provider could not be used"


# --- the provider's metadata, keys and token endpoint ----------------------------------------

T = TypeVar("T")


class TtlCache(Generic[T]):
    """Values by URL for a while, in this process only (each replica fetches its own)."""

    def __init__(self, ttl_seconds: float, max_entries: int = 1000) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.entries: dict[str, tuple[float, T]] = {}

    def get(self, key: str) -> T | None:
        entry = self.entries.get(key)
        if entry is None or time.monotonic() - entry[0] > self.ttl_seconds:
            return None
        return entry[1]

    def put(self, key: str, value: T) -> None:
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[key] = (time.monotonic(), value)


@dataclass(frozen=True)
class ProviderMetadata:
    """What KAI uses of a provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    # The allowed algorithms the provider says it signs ID tokens with.
    algorithms: frozenset[str]


metadata_cache: TtlCache[ProviderMetadata] = TtlCache(METADATA_TTL_SECONDS)
keys_cache: TtlCache[list[dict[str, Any]]] = TtlCache(METADATA_TTL_SECONDS)


async def _request_json(method: str, url: str, **options: Any) -> tuple[int, Any]:
    """Status and JSON body (None when not JSON) of one call; unreachable → 502."""
    body = bytearray()
    try:
        async with (
            httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False) as client,
            client.stream(method, url, **options) as response,
        ):
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise SsoProviderUnavailable(f"{url} answered more than 512 KiB.")
            status = response.status_code
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise SsoProviderUnavailable(
            f"{url} could not be reached ({type(error).__name__})."
        ) from error
    try:
        return status, orjson.loads(body)
    except orjson.JSONDecodeError:
        return status, None


def _check_url(url: str, what: str, *, allow_loopback_http: bool) -> None:
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = urlsplit("")
    if parts.fragment or not parts.hostname:
        raise SsoProviderUnavailable(f"The {what} {url!r} is not a usable URL.")
    if parts.scheme == "https":
        return
    if allow_loopback_http and parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return
    raise SsoProviderUnavailable(f"The {what} {url!r} must be an https:// URL.")


def allow_loopback_http(runtime: Runtime) -> bool:
    """Plain http to a provider on this machine, for development and tests only."""
    return runtime.settings.environment != "production"


async def discover(
    issuer: str, *, allow_loopback_http: bool, fresh: bool = False
) -> ProviderMetadata:
    """The provider's metadata from its discovery document, checked; cached for an hour."""
    _check_url(issuer, "issuer", allow_loopback_http=allow_loopback_http)
    cached = None if fresh else metadata_cache.get(issuer)
    if cached is not None:
        return cached
    url = issuer.rstrip("/") + DISCOVERY_PATH
    status, document = await _request_json("GET", url, headers={"Accept": "application/json"})
    if status != 200 or not isinstance(document, dict):
        raise SsoProviderUnavailable(f"{url} answered no discovery document (HTTP {status}).")
    # OpenID Connect Discovery 1.0, section 4.3: the document speaks for this exact issuer.
    if document.get("issuer") != issuer:
        named = str(document.get("issuer"))[:200]
        raise SsoProviderUnavailable(f"The discovery document names the issuer {named!r}.")
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(name)
        if not isinstance(value, str):
            raise SsoProviderUnavailable(f"The discovery document has no {name}.")
        _check_url(value, name, allow_loopback_http=allow_loopback_http)
        endpoints[name] = value
    response_types = document.get("response_types_supported")
    if isinstance(response_types, list) and "code" not in response_types:
        raise SsoProviderUnavailable("The provider does not offer the authorization code flow.")
    challenge_methods = document.get("code_challenge_methods_supported")
    if isinstance(challenge_methods, list) and "S256" not in challenge_methods:
        raise SsoProviderUnavailable("The provider does not offer PKCE with S256.")
    advertised = document.get("id_token_signing_alg_values_supported")
    algorithms = ALLOWED_ALGORITHMS & set(advertised if isinstance(advertised, list) else ())
    if not algorithms:
        raise SsoProviderUnavailable(
            f"The provider signs ID tokens with none of {', '.join(sorted(ALLOWED_ALGORITHMS))}."
        )
    metadata = ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=endpoints["authorization_endpoint"],
        token_endpoint=endpoints["token_endpoint"],
        jwks_uri=endpoints["jwks_uri"],
        algorithms=frozenset(algorithms),
    )
    metadata_cache.put(issuer, metadata)
    return metadata


async def _published_keys(jwks_uri: str, *, fresh: bool) -> list[dict[str, Any]]:
    cached = None if fresh else keys_cache.get(jwks_uri)
    if cached is not None:
        return cached
    status, document = await _request_json("GET", jwks_uri, headers={"Accept": "application/json"})
    if (
        status != 200
        or not isinstance(document, dict)
        or not isinstance(document.get("keys"), list)
    ):
        raise SsoProviderUnavailable(f"The provider's key set {jwks_uri} could not be read.")
    keys = [key for key in document["keys"] if isinstance(key, dict)]
    keys_cache.put(jwks_uri, keys)
    return keys


def _matching_key(keys: list[dict[str, Any]], algorithm: str, kid: object) -> dict[str, Any] | None:
    candidates = [
        key
        for key in keys
        if key.get("kty") == KEY_TYPES[algorithm]
        and key.get("use", "sig") == "sig"
        and key.get("alg", algorithm) == algorithm
        and (algorithm != "ES256" or key.get("crv") == "P-256")
        and (kid is None or key.get("kid") == kid)
    ]
    # Without a `kid`, only a provider with a single suitable key is unambiguous.
    return candidates[0] if len(candidates) == 1 else None


def _seconds(value: object) -> float | None:
    """A NumericDate claim as a number; None when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _check_claims(claims: dict[str, Any], *, client_id: str, nonce: str, now: datetime) -> None:
    moment = now.timestamp()
    expires, issued = _seconds(claims.get("exp")), _seconds(claims.get("iat"))
    if expires is None or issued is None:
        raise SsoIdTokenInvalid("The ID token has no valid `exp` or `iat`.")
    if expires + CLOCK_LEEWAY_SECONDS <= moment:
        raise SsoIdTokenInvalid("The ID token has expired.")
    if issued - CLOCK_LEEWAY_SECONDS > moment:
        raise SsoIdTokenInvalid("The ID token was issued in the future: check the clocks.")
    not_before = _seconds(claims.get("nbf", moment))
    if not_before is None or not_before - CLOCK_LEEWAY_SECONDS > moment:
        raise SsoIdTokenInvalid("The ID token is not valid yet.")
    audience = claims["aud"]
    audiences = [audience] if isinstance(audience, str) else list(audience)
    party = claims.get("azp")
    if party is not None and party != client_id:
        raise SsoIdTokenInvalid("The ID token was issued to another client (`azp`).")
    if len(audiences) > 1 and party is None:
        raise SsoIdTokenInvalid("The ID token has several audiences but no `azp`.")
    claimed_nonce = claims.get("nonce")
    if not isinstance(claimed_nonce, str) or not hmac.compare_digest(
        claimed_nonce.encode(), nonce.encode()
    ):
        raise SsoIdTokenInvalid("The ID token's nonce does not match this login attempt.")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 0 < len(subject) <= 255:
        raise SsoIdTokenInvalid("The ID token's `sub` is missing or too long.")


async def verify_id_token(
    id_token: str, *, metadata: ProviderMetadata, client_id: str, nonce: str, now: datetime
) -> dict[str, Any]:
    """The ID token's claims once signature, issuer, audience, lifetime and nonce check out."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as error:
        raise SsoIdTokenInvalid("The ID token is not a well-formed JWT.") from error
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in metadata.algorithms:
        raise SsoIdTokenInvalid(f"ID tokens signed with {str(algorithm)[:20]!r} are not accepted.")
    kid = header.get("kid")
    key = _matching_key(await _published_keys(metadata.jwks_uri, fresh=False), algorithm, kid)
    if key is None:
        # The provider may have rotated its keys since they were cached.
        key = _matching_key(await _published_keys(metadata.jwks_uri, fresh=True), algorithm, kid)
    if key is None:
        raise SsoIdTokenInvalid("No key the provider publishes matches the ID token.")
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key=jwt.PyJWK(key, algorithm=algorithm),
            algorithms=[algorithm],
            audience=client_id,
            issuer=metadata.issuer,
            # Times are checked against the runtime's clock below, which tests can move.
            options={
                "require": ["iss", "aud", "sub", "exp", "iat"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        raise SsoIdTokenInvalid(f"The ID token was refused: {error}.") from error
    _check_claims(claims, client_id=client_id, nonce=nonce, now=now)
    return claims


async def _exchange_code(
    metadata: ProviderMetadata,
    *,
    client_id: str,
    client_secret: str,
    code: str,
    code_verifier: str,
    redirect_uri: str,
) -> str:
    """The ID token the token endpoint gives for the code (client_secret_basic)."""
    # RFC 6749, section 2.3.1: both halves of the Basic credential are form-encoded first.
    credentials = httpx.BasicAuth(quote(client_id, safe=""), quote(client_secret, safe=""))
    status, document = await _request_json(
        "POST",
        metadata.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        },
        auth=credentials,
        headers={"Accept": "application/json"},
    )
    body = document if isinstance(document, dict) else {}
    id_token = body.get("id_token")
    if status == 200 and isinstance(id_token, str):
        return id_token
    error = body.get("error")
    if status in (400, 401) and error == "invalid_grant":
        raise SsoCodeInvalid("The code was used, has expired or is not this login's: log in again.")
    reason = error if isinstance(error, str) and OAUTH_ERROR_CODE.fullmatch(error) else None
    raise SsoProviderUnavailable(
        f"The token endpoint answered HTTP {status}"
        + (f" ({reason})." if reason else " without an ID token.")
    )


# --- SQL --------------------------------------------------------------------------------------


class SsoRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def provider(
        self, organization_id: uuid.UUID, *, for_update: bool = False
    ) -> SsoProvider | None:
        statement = select(SsoProvider).where(SsoProvider.organization_id == organization_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def save(self, provider: SsoProvider) -> SsoProvider:
        self.session.add(provider)
        await self.session.flush()
        await self.session.refresh(provider)
        return provider

    async def delete(self, provider: SsoProvider) -> None:
        await self.session.delete(provider)
        await self.session.execute(
            delete(SsoLoginAttempt).where(
                SsoLoginAttempt.organization_id == provider.organization_id
            )
        )
        await self.session.flush()

    async def add_attempt(self, attempt: SsoLoginAttempt) -> None:
        self.session.add(attempt)
        await self.session.flush()

    async def attempt(self, organization_id: uuid.UUID, digest: bytes) -> SsoLoginAttempt | None:
        statement = (
            select(SsoLoginAttempt)
            .where(
                SsoLoginAttempt.organization_id == organization_id,
                SsoLoginAttempt.state_digest == digest,
            )
            .with_for_update()
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def delete_expired_attempts(self, organization_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            delete(SsoLoginAttempt).where(
                SsoLoginAttempt.organization_id == organization_id,
                SsoLoginAttempt.expires_at <= now,
            )
        )

    async def identity(self, issuer: str, subject: str) -> UserIdentity | None:
        statement = select(UserIdentity).where(
            UserIdentity.issuer == issuer, UserIdentity.subject == subject
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def add_identity(self, identity: UserIdentity) -> None:
        self.session.add(identity)
        await self.session.flush()


# --- configuration ----------------------------------------------------------------------------


def _secret_context(organization_id: uuid.UUID) -> str:
    return f"sso:{organization_id}"


def _client_secret(runtime: Runtime, provider: SsoProvider) -> str:
    assert provider.sealed_client_secret is not None
    box = runtime.secret_box("sso")
    try:
        secret = box.open(
            provider.sealed_client_secret, context=_secret_context(provider.organization_id)
        )
    except InvalidTag as error:
        # Sealed under another secret key (KAI_SECRET_KEY changed, or a restored backup).
        raise SsoMisconfigured(
            "The stored client secret cannot be read: ask an administrator to enter it again."
        ) from error
    return secret.decode()


async def _check_default_role(session: AsyncSession, actor: Actor, role: str) -> None:
    # Everyone the provider vouches for gets this role: an owner by the back door is too much.
    if role == OWNER:
        raise SsoDefaultRoleNotAllowed("Choose a role without ownership, such as `member`.")
    granted = await organizations.role_permissions(session, actor.tenant_id, role)
    if not granted <= actor.permissions:
        missing = sorted(permission.value for permission in granted - actor.permissions)
        raise PermissionDenied(f"You cannot grant permissions you lack: {', '.join(missing)}.")


async def get_provider(session: AsyncSession, *, actor: Actor) -> SsoProvider:
    provider = await SsoRepository(session).provider(actor.tenant_id)
    if provider is None:
        raise SsoNotConfigured()
    return provider


async def configure_provider(
    session: AsyncSession,
    runtime: Runtime,
    *,
    actor: Actor,
    issuer: str,
    client_id: str,
    client_secret: str | None,
    default_role: str,
    allowed_email_domains: list[str],
    enabled: bool,
) -> SsoProvider:
    """Create or replace the organization's provider; the issuer must answer discovery now.

    Without `client_secret` the stored one is kept, as long as the client stays the same.
    """
    organization_id = actor.tenant_id
    await _check_default_role(session, actor, default_role)
    # Before the row is locked: the provider may take seconds to answer.
    try:
        await discover(issuer, allow_loopback_http=allow_loopback_http(runtime), fresh=True)
    except SsoProviderUnavailable as error:
        raise SsoIssuerInvalid(error.detail) from error
    repository = SsoRepository(session)
    provider = await repository.provider(organization_id, for_update=True)
    keeps_secret = (
        provider is not None
        and provider.sealed_client_secret is not None
        and provider.client_id == client_id
    )
    if client_secret is None and not keeps_secret:
        raise SsoClientSecretRequired("Send the `client_secret` the provider issued for KAI.")
    created = provider is None
    if provider is None:
        provider = SsoProvider(organization_id=organization_id)
    provider.issuer = issuer
    provider.client_id = client_id
    provider.default_role = default_role
    provider.allowed_email_domains = sorted({domain.lower() for domain in allowed_email_domains})
    provider.enabled = enabled
    if client_secret is not None:
        provider.sealed_client_secret = runtime.secret_box("sso").seal(
            client_secret.encode(), context=_secret_context(organization_id)
        )
    provider = await repository.save(provider)
    await audit.record(
        session,
        action="sso.provider.configured",
        organization_id=organization_id,
        actor=actor,
        target_type="sso_provider",
        target_id=str(provider.id),
        details={
            "created": created,
            "issuer": issuer,
            "client_id": client_id,
            "client_secret_changed": client_secret is not None,
            "default_role": default_role,
            "allowed_email_domains": provider.allowed_email_domains,
            "enabled": enabled,
        },
    )
    return provider


async def delete_provider(session: AsyncSession, *, actor: Actor) -> None:
    """Turn single sign-on off for good; accounts it created keep their memberships."""
    repository = SsoRepository(session)
    provider = await repository.provider(actor.tenant_id, for_update=True)
    if provider is None:
        raise SsoNotConfigured()
    await repository.delete(provider)
    await audit.record(
        session,
        action="sso.provider.deleted",
        organization_id=provider.organization_id,
        actor=actor,
        target_type="sso_provider",
        target_id=str(provider.id),
        details={"issuer": provider.issuer, "client_id": provider.client_id},
    )


# --- logging in -------------------------------------------------------------------------------


async def _enabled_provider(
    session: AsyncSession, organization_slug: str
) -> tuple[Organization, SsoProvider]:
    # Unknown organization, no provider, provider off: one answer, which tells nothing more.
    organization = await OrganizationRepository(session).by_slug(organization_slug)
    if organization is None:
        raise SsoNotConfigured()
    await act_for(session, organization_id=organization.id)
    provider = await SsoRepository(session).provider(organization.id)
    if provider is None or not provider.enabled or provider.sealed_client_secret is None:
        raise SsoNotConfigured()
    return organization, provider


def _code_challenge(code_verifier: str) -> str:
    digest = hashlib.sha256(code_verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def start_login(
    session: AsyncSession, runtime: Runtime, *, organization_slug: str, redirect_uri: str
) -> str:
    """Record a new login attempt; answer the provider's URL to send the browser to.

    `redirect_uri` is KAI's own callback URL, made by the server, never taken from a client.
    """
    organization, provider = await _enabled_provider(session, organization_slug)
    metadata = await discover(provider.issuer, allow_loopback_http=allow_loopback_http(runtime))
    state, nonce, code_verifier = random_token(32), random_token(32), random_token(48)
    now = runtime.clock()
    repository = SsoRepository(session)
    await repository.delete_expired_attempts(organization.id, now)
    await repository.add_attempt(
        SsoLoginAttempt(
            state_digest=token_digest(state),
            organization_id=organization.id,
            nonce=nonce,
            code_verifier=code_verifier,
            redirect_uri=redirect_uri,
            expires_at=now + ATTEMPT_LIFETIME,
        )
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPES,
            "state": state,
            "nonce": nonce,
            "code_challenge": _code_challenge(code_verifier),
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if urlsplit(metadata.authorization_endpoint).query else "?"
    return f"{metadata.authorization_endpoint}{separator}{query}"


@dataclass(frozen=True)
class _Attempt:
    organization_id: uuid.UUID
    nonce: str
    code_verifier: str
    redirect_uri: str


async def _use_attempt(
    runtime: Runtime, *, organization_slug: str, state: str, origin: Origin
) -> _Attempt:
    """Mark the attempt used in a transaction of its own: whatever follows, it works once."""
    async with runtime.session_factory.begin() as session:
        organization = await OrganizationRepository(session).by_slug(organization_slug)
        if organization is None:
            raise SsoNotConfigured()
        await act_for(session, organization_id=organization.id)
        attempt = await SsoRepository(session).attempt(organization.id, token_digest(state))
        now = runtime.clock()
        usable = attempt is not None and attempt.used_at is None and attempt.expires_at > now
        if attempt is not None and usable:
            attempt.used_at = now
            await session.flush()
            return _Attempt(
                organization_id=organization.id,
                nonce=attempt.nonce,
                code_verifier=attempt.code_verifier,
                redirect_uri=attempt.redirect_uri,
            )
    refusal = SsoStateInvalid("Start the login again.")
    await _record_refusal(runtime, organization.id, refusal, origin)
    raise refusal


async def _record_refusal(
    runtime: Runtime, organization_id: uuid.UUID, refusal: KaiError, origin: Origin
) -> None:
    log.info("sso.login_refused", reason=refusal.type, organization_id=str(organization_id))
    # In a transaction of its own, before the request's appends any event: that one is rolled
    # back by the refusal.
    await audit.record_detached(
        runtime.session_factory,
        action="sso.login.failed",
        outcome="failure",
        organization_id=organization_id,
        actor_type="anonymous",
        origin=origin,
        details={"reason": refusal.type, "detail": refusal.detail},
    )


@dataclass(frozen=True)
class _Person:
    subject: str
    email: str | None
    email_verified: bool
    name: str


def _person(claims: dict[str, Any]) -> _Person:
    email = claims.get("email")
    if isinstance(email, str):
        email = email.strip().lower()
    usable = isinstance(email, str) and len(email) <= 320 and email.count("@") == 1
    verified = claims.get("email_verified")
    name = claims.get("name")
    return _Person(
        subject=claims["sub"],
        email=email if usable else None,
        # Some providers send the string "true".
        email_verified=usable and (verified is True or verified == "true"),
        name=name.strip()[:200] if isinstance(name, str) else "",
    )


def _check_domain(person: _Person, organization: Organization, provider: SsoProvider) -> None:
    restrictions = [provider.allowed_email_domains]
    if organization.signup_policy == "email_domain":
        restrictions.append(organization.allowed_email_domains)
    restrictions = [domains for domains in restrictions if domains]
    if not restrictions:
        return
    if person.email is None or not person.email_verified:
        raise SsoEmailNotVerified("This organization takes only addresses of certain domains.")
    domain = person.email.rsplit("@", 1)[1]
    if any(domain not in {allowed.lower() for allowed in domains} for domains in restrictions):
        raise SsoEmailDomainNotAllowed(f"Addresses at {domain} cannot log in here.")


async def _find_or_create_user(
    session: AsyncSession,
    runtime: Runtime,
    *,
    organization: Organization,
    provider: SsoProvider,
    person: _Person,
) -> tuple[User, str | None]:
    """The user the ID token names, and how they came to be linked (None: linked before)."""
    repository = SsoRepository(session)
    users = UserRepository(session)
    identity = await repository.identity(provider.issuer, person.subject)
    if identity is not None:
        user = await users.get(identity.user_id)
        assert user is not None
        return user, None
    if person.email is None or not person.email_verified:
        raise SsoEmailNotVerified("KAI needs an address the provider has verified.")
    user = await users.by_email(person.email, for_update=True)
    now = runtime.clock()
    if user is None:
        user = await users.add(
            User(email=person.email, name=person.name, email_verified_at=now, password_hash=None)
        )
        how = "created"
    else:
        # An organization's provider speaks for its own people only: taking over any account
        # by its address would let whoever runs some organization's provider be anyone.
        await act_for(session, organization_id=organization.id, user_id=user.id)
        if await MembershipRepository(session).get(organization.id, user.id) is None:
            raise SsoAccountExists(
                "Log in with your password, or ask this organization to invite your account."
            )
        if user.email_verified_at is None:
            # Whoever set this unverified account's password may not be its address's owner.
            await users.update(
                user.id, email_verified_at=now, password_hash=None, sessions_valid_after=now
            )
        how = "linked"
    await repository.add_identity(
        UserIdentity(user_id=user.id, issuer=provider.issuer, subject=person.subject)
    )
    return user, how


async def _join(
    session: AsyncSession, organization: Organization, provider: SsoProvider, user: User
) -> bool:
    """Make the user a member with the provider's default role; False when one already."""
    await act_for(session, organization_id=organization.id, user_id=user.id)
    memberships = MembershipRepository(session)
    if await memberships.get(organization.id, user.id) is not None:
        return False
    try:
        await organizations.role_permissions(session, organization.id, provider.default_role)
    except RoleNotFound as error:
        raise SsoMisconfigured(
            f"The default role {provider.default_role!r} no longer exists: ask an administrator."
        ) from error
    await memberships.add(
        Membership(organization_id=organization.id, user_id=user.id, role=provider.default_role)
    )
    return True


async def finish_login(
    session: AsyncSession,
    runtime: Runtime,
    *,
    organization_slug: str,
    code: str | None,
    state: str,
    origin: Origin,
    issuer: str | None = None,
    error: str | None = None,
) -> TokenPair:
    """Complete a login from the provider's redirect: the user's first pair of KAI tokens.

    `issuer` is the redirect's `iss` (RFC 9207) and `error` its OAuth error, when present.
    """
    attempt = await _use_attempt(
        runtime, organization_slug=organization_slug, state=state, origin=origin
    )
    try:
        organization, provider = await _enabled_provider(session, organization_slug)
        if issuer is not None and issuer != provider.issuer:
            raise SsoStateInvalid("The answer came from another identity provider.")
        if error is not None or code is None:
            reason = error if error and OAUTH_ERROR_CODE.fullmatch(error) else "no code"
            raise SsoLoginDenied(f"The identity provider answered: {reason}.")
        metadata = await discover(provider.issuer, allow_loopback_http=allow_loopback_http(runtime))
        id_token = await _exchange_code(
            metadata,
            client_id=provider.client_id,
            client_secret=_client_secret(runtime, provider),
            code=code,
            code_verifier=attempt.code_verifier,
            redirect_uri=attempt.redirect_uri,
        )
        claims = await verify_id_token(
            id_token,
            metadata=metadata,
            client_id=provider.client_id,
            nonce=attempt.nonce,
            now=runtime.clock(),
        )
        person = _person(claims)
        _check_domain(person, organization, provider)
        user, how = await _find_or_create_user(
            session, runtime, organization=organization, provider=provider, person=person
        )
        if user.disabled:
            raise SsoAccountDisabled()
        joined = await _join(session, organization, provider, user)
    except KaiError as refusal:
        await _record_refusal(runtime, attempt.organization_id, refusal, origin)
        raise
    return await _open(
        session,
        runtime,
        organization=organization,
        provider=provider,
        user=user,
        how=how,
        joined=joined,
        origin=origin,
    )


async def _open(
    session: AsyncSession,
    runtime: Runtime,
    *,
    organization: Organization,
    provider: SsoProvider,
    user: User,
    how: str | None,
    joined: bool,
    origin: Origin,
) -> TokenPair:
    users = UserRepository(session)
    now = runtime.clock()
    if user.default_organization_id is None:
        await users.update(user.id, default_organization_id=organization.id)
    await users.update(user.id, last_login_at=now)
    await act_for(session, organization_id=organization.id, user_id=user.id)
    events: list[tuple[str, dict[str, Any]]] = []
    if how == "linked":
        events.append(("sso.identity_linked", {"issuer": provider.issuer}))
    if how == "created" or joined:
        role = provider.default_role if joined else None
        created = how == "created"
        events.append(
            (
                "sso.user_provisioned",
                {"issuer": provider.issuer, "account_created": created, "role": role},
            )
        )
    for action, details in events:
        await audit.record(
            session,
            action=action,
            organization_id=organization.id,
            actor_type="user",
            actor_id=str(user.id),
            target_type="user",
            target_id=str(user.id),
            origin=origin,
            details=details,
        )
    return await open_session(
        session, runtime, user=user, organization=organization, methods=["sso"], origin=origin
    )
