"""Configuring an organization's identity provider, and logging in through it."""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import structlog
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity import audit, organizations
from kai.identity.actor import Actor, Origin
from kai.identity.models import Organization, SsoLoginAttempt, SsoProvider, User
from kai.identity.repository import ApiKeyRepository, OrganizationRepository, UserRepository
from kai.identity.sessions import TokenPair, open_session
from kai.identity.sso.client import (
    ATTEMPT_LIFETIME,
    OAUTH_ERROR_CODE,
    OWNER,
    SCOPES,
    _exchange_code,
    discover,
    verify_id_token,
)
from kai.identity.sso.errors import (
    SsoAccountDisabled,
    SsoClientSecretRequired,
    SsoDefaultRoleNotAllowed,
    SsoIssuerInvalid,
    SsoLoginDenied,
    SsoMisconfigured,
    SsoNotConfigured,
    SsoProviderUnavailable,
    SsoStateInvalid,
)
from kai.identity.sso.provisioning import (
    LinkSent,
    check_domain,
    join,
    person_from_claims,
    request_link,
)
from kai.identity.sso.repository import SsoRepository
from kai.kit.crypto import random_token, token_digest
from kai.kit.db import act_for
from kai.kit.errors import KaiError
from kai.runtime import Runtime

log = structlog.get_logger(__name__)

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
    actor.refuse_beyond_own(granted, what="You cannot grant")


async def _person_behind(session: AsyncSession, actor: Actor) -> uuid.UUID | None:
    """Whose permissions cap the role newcomers get: the actor, or the person who minted the
    API key acting (a key never holds more than they did)."""
    if actor.kind == "api_key" and actor.api_key_id is not None:
        key = await ApiKeyRepository(session).get(actor.tenant_id, actor.api_key_id)
        return key.created_by if key is not None else None
    return actor.user_id


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
    Discovery comes before any use of `session`: a caller that has ended its transaction
    holds no connection while the provider answers, and the transaction begun after it is
    scoped to the actor here.
    """
    organization_id = actor.tenant_id
    try:
        await discover(issuer, outbound=runtime.outbound, fresh=True)
    except SsoProviderUnavailable as error:
        raise SsoIssuerInvalid(error.detail) from error
    await act_for(session, organization_id=organization_id, user_id=actor.user_id)
    await _check_default_role(session, actor, default_role)
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
    provider.configured_by = await _person_behind(session, actor)
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
    runtime: Runtime, organization_slug: str
) -> tuple[Organization, SsoProvider]:
    """The organization and its provider, read in a transaction of their own that is over
    before the provider is asked anything: anyone may start logins, and no pooled connection
    waits while a provider (which its organization chose) takes its time to answer."""
    async with runtime.session_factory.begin() as session:
        # Unknown organization, no provider, provider off: one answer, which tells no more.
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
    organization, provider = await _enabled_provider(runtime, organization_slug)
    metadata = await discover(provider.issuer, outbound=runtime.outbound)
    await act_for(session, organization_id=organization.id)
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
) -> TokenPair | LinkSent:
    """Complete a login from the provider's redirect.

    A subject this organization's provider linked before gets the user's first pair of KAI
    tokens. Any other is a first sign-in: its address is sent a link that finishes it
    (`LinkSent`), whoever has that address. `issuer` is the redirect's `iss` (RFC 9207) and
    `error` its OAuth error, when present.
    """
    attempt = await _use_attempt(
        runtime, organization_slug=organization_slug, state=state, origin=origin
    )
    try:
        organization, provider = await _enabled_provider(runtime, organization_slug)
        if issuer is not None and issuer != provider.issuer:
            raise SsoStateInvalid("The answer came from another identity provider.")
        if error is not None or code is None:
            reason = error if error and OAUTH_ERROR_CODE.fullmatch(error) else "no code"
            raise SsoLoginDenied(f"The identity provider answered: {reason}.")
        metadata = await discover(provider.issuer, outbound=runtime.outbound)
        id_token = await _exchange_code(
            metadata,
            outbound=runtime.outbound,
            client_id=provider.client_id,
            client_secret=_client_secret(runtime, provider),
            code=code,
            code_verifier=attempt.code_verifier,
            redirect_uri=attempt.redirect_uri,
        )
        claims = await verify_id_token(
            id_token,
            metadata=metadata,
            outbound=runtime.outbound,
            client_id=provider.client_id,
            nonce=attempt.nonce,
            now=runtime.clock(),
        )
        person = person_from_claims(claims)
        check_domain(person, organization, provider)
        # The provider has had its say: only now does `session` begin its transaction.
        await act_for(session, organization_id=organization.id)
        identity = await SsoRepository(session).identity(
            organization.id, provider.issuer, person.subject
        )
        if identity is None:
            return await request_link(
                session, runtime, organization=organization, provider=provider, person=person
            )
        user = await UserRepository(session).get(identity.user_id)
        assert user is not None
        if user.disabled:
            raise SsoAccountDisabled()
        joined = await join(session, organization, provider, user)
    except KaiError as refusal:
        await _record_refusal(runtime, attempt.organization_id, refusal, origin)
        raise
    return await _open(
        session,
        runtime,
        organization=organization,
        provider=provider,
        user=user,
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
    joined: bool,
    origin: Origin,
) -> TokenPair:
    users = UserRepository(session)
    now = runtime.clock()
    if user.default_organization_id is None:
        await users.update(user.id, default_organization_id=organization.id)
    await users.update(user.id, last_login_at=now)
    await act_for(session, organization_id=organization.id, user_id=user.id)
    if joined:
        # A linked person whose membership had ended, back through the provider.
        await audit.record(
            session,
            action="sso.user_provisioned",
            organization_id=organization.id,
            actor_type="user",
            actor_id=str(user.id),
            target_type="user",
            target_id=str(user.id),
            origin=origin,
            details={
                "issuer": provider.issuer,
                "account_created": False,
                "role": provider.default_role,
            },
        )
    return await open_session(
        session, runtime, user=user, organization=organization, methods=["sso"], origin=origin
    )
