"""What every route declares: who may call it, and at which rate. One of `require(...)`,
`authenticated()`, `password_session()`, `other_organizations()`, `recently_authenticated()`
or `public()`, each with
its `rate_class`; a test walks the app and fails on a route that declares none, and on
expensive work declared at the standard rate.

The factories return plain functions (not callable objects) so that FastAPI can read their
annotations; each carries `kai_access` and `kai_rate_class` for those tests and for the
OpenAPI document.
"""

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from kai.config import RatePolicy
from kai.deps import CALLER_STATE, Caller, DbSession, RuntimeDep
from kai.identity import audit, step_up, writes  # noqa: F401 (writes: its listener)
from kai.identity.actor import Actor, Origin
from kai.identity.authentication import authenticate
from kai.identity.errors import (
    MfaEnrolmentRequired,
    NoActiveOrganization,
    NotAuthenticated,
    PermissionDenied,
    RateLimited,
)
from kai.identity.permissions import Permission
from kai.kit.errors import problem_responses
from kai.kit.ratelimit import RateLimit, address_key, binding_decision, declared_rate_class
from kai.runtime import Runtime

RateClass = Literal["standard", "auth", "expensive"]
# Methods that write nothing (RFC 9110): the others record their writes with a replica.
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_of(request: Request) -> Origin:
    return Origin(
        client_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        request_id=request.scope.get("state", {}).get("request_id"),
    )


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise NotAuthenticated()
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or len(credential) > 4096:
        raise NotAuthenticated("Use `Authorization: Bearer <access token or API key>`.")
    return credential


async def _limit(
    runtime: Runtime,
    response: Response | None,
    rate_class: RateClass,
    subject: str,
    organization_id: uuid.UUID | None = None,
) -> None:
    """Spend the caller's bucket of `rate_class`, and its organization's when it acts for one:
    both, or neither when either refuses (429 naming the bucket that ran out)."""
    declared_rate_class.set(rate_class)
    policy = runtime.settings.rate_limits.policy(rate_class)
    if policy is None:
        return
    # (policy name in the headers, bucket key, limit); the organization's bucket comes last.
    buckets: list[tuple[str, str, RateLimit]] = [
        (rate_class, f"{rate_class}:{subject}", _rate_limit(policy))
    ]
    if organization_id is not None:
        multiple = runtime.settings.rate_limits.organization_multiple
        buckets.append(
            (
                f"{rate_class} per organization",
                f"{rate_class}:organization:{organization_id}",
                _rate_limit(policy, multiple),
            )
        )
    decisions = await runtime.rate_limiter.hit_all([(key, limit) for _, key, limit in buckets])
    binding = binding_decision(decisions)
    name, _, limit = buckets[binding]
    headers = decisions[binding].headers(name, limit)
    if not decisions[binding].allowed:
        per = f"{limit.limit} `{rate_class}` requests per {policy.period_seconds:g} seconds"
        raise RateLimited(
            f"Your organization's limit is {per}, shared by all its members and API keys."
            if organization_id is not None and binding == len(buckets) - 1
            else f"The limit is {per}.",
            headers=headers,
        )
    if response is not None:
        response.headers.update(headers)


def _rate_limit(policy: RatePolicy, multiple: int = 1) -> RateLimit:
    burst = policy.burst * multiple if policy.burst is not None else None
    return RateLimit(policy.limit * multiple, policy.period_seconds, burst)


async def _actor(request: Request, runtime: Runtime) -> Actor:
    credential = _bearer(request)
    try:
        actor = await authenticate(runtime, credential=credential, origin=origin_of(request))
    except NotAuthenticated:
        # Each credential tried cost lookups: a wrong one spends its address's `auth` bucket.
        await _limit(runtime, None, "auth", _address(request))
        raise
    records_writes = (
        runtime.settings.database.replica_url is not None and request.method not in _SAFE
    )
    caller = Caller(
        organization_id=actor.organization_id,
        user_id=actor.user_id,
        last_write_at=actor.last_write_at,
        writer=actor if records_writes else None,
    )
    setattr(request.state, CALLER_STATE, caller)
    return actor


def _address(request: Request) -> str:
    return address_key(request.client.host if request.client else None)


def require(permission: Permission, *, rate_class: RateClass = "standard") -> Any:
    """The caller must hold `permission` in the organization it acts for."""

    async def dependency(request: Request, response: Response, runtime: RuntimeDep) -> Actor:
        actor = await _actor(request, runtime)
        await _limit(runtime, response, rate_class, actor.author, actor.organization_id)
        if actor.needs_mfa_enrolment:
            raise MfaEnrolmentRequired()
        if actor.organization_id is None or not actor.can(permission):
            await audit.record_detached(
                runtime.session_factory,
                action="access.denied",
                outcome="failure",
                organization_id=actor.organization_id,
                actor=actor,
                details={"permission": permission.value, "path": request.url.path[:300]},
            )
            if actor.organization_id is None:
                raise NoActiveOrganization(
                    "You act for no organization yet: choose one of yours "
                    "(`GET /api/v1/me/organizations`, then "
                    "`POST /api/v1/auth/switch-organization`) or create one "
                    "(`POST /api/v1/organizations`)."
                )
            raise PermissionDenied(f"This needs the permission `{permission.value}`.")
        return actor

    dependency.kai_access = ("permission", permission.value)  # type: ignore[attr-defined]
    dependency.kai_rate_class = rate_class  # type: ignore[attr-defined]
    return dependency


def authenticated(*, rate_class: RateClass = "standard") -> Any:
    """Any authenticated person or key, whatever its permissions (their own profile, say)."""

    async def dependency(request: Request, response: Response, runtime: RuntimeDep) -> Actor:
        actor = await _actor(request, runtime)
        await _limit(runtime, response, rate_class, actor.author, actor.organization_id)
        return actor

    dependency.kai_access = ("authenticated", None)  # type: ignore[attr-defined]
    dependency.kai_rate_class = rate_class  # type: ignore[attr-defined]
    return dependency


def _person(
    kind: str,
    rate_class: RateClass,
    proof: Callable[[AsyncSession, Runtime, Actor], Awaitable[None]],
) -> Any:
    """A signed-in person (never an API key) whose session shows `proof`."""

    async def dependency(
        request: Request, response: Response, session: DbSession, runtime: RuntimeDep
    ) -> Actor:
        actor = await _actor(request, runtime)
        await _limit(runtime, response, rate_class, actor.author, actor.organization_id)
        person = user_only(actor)
        await proof(session, runtime, person)
        return person

    dependency.kai_access = (kind, None)  # type: ignore[attr-defined]
    dependency.kai_rate_class = rate_class  # type: ignore[attr-defined]
    return dependency


def password_session(*, rate_class: RateClass = "standard") -> Any:
    """A person whose session proved their password, at its login or by a step-up since: for
    what reaches beyond the organization a single sign-on session acts for."""

    async def proof(session: AsyncSession, _runtime: Runtime, person: Actor) -> None:
        await step_up.require_password_session(session, actor=person)

    return _person("password-session", rate_class, proof)


def other_organizations(*, rate_class: RateClass = "standard") -> Any:
    """A person who may act beyond the organization their session acts for (switch to, create
    or join another): a session begun with the password, or a single sign-on session whose
    password proof (`POST /auth/step-up`) is recent."""

    async def proof(session: AsyncSession, runtime: Runtime, person: Actor) -> None:
        await step_up.require_reach_beyond(session, runtime, actor=person)

    return _person("other-organizations", rate_class, proof)


def recently_authenticated(*, rate_class: RateClass = "standard") -> Any:
    """A person whose session proved their password within the last few minutes (a password
    login, or `POST /auth/step-up`): for changes to the account's credentials and sessions."""

    async def proof(session: AsyncSession, runtime: Runtime, person: Actor) -> None:
        await step_up.require_recent_password(session, runtime, actor=person)

    return _person("step-up", rate_class, proof)


def public(*, rate_class: RateClass | None = "standard") -> Any:
    """No credential needed; limited per client address (not at all with `rate_class=None`:
    health probes and metric scrapes must always get through)."""

    async def dependency(request: Request, response: Response, runtime: RuntimeDep) -> None:
        if rate_class is None:
            return
        await _limit(runtime, response, rate_class, _address(request))

    dependency.kai_access = ("public", None)  # type: ignore[attr-defined]
    dependency.kai_rate_class = rate_class  # type: ignore[attr-defined]
    return dependency


def user_only(actor: Actor) -> Actor:
    if actor.kind != "user" or actor.user_id is None:
        raise PermissionDenied("Only a person can do this, not an API key.")
    return actor


# The statuses these dependencies may answer, for each route's OpenAPI entry.
AUTH_RESPONSES = problem_responses(401, 403, 429)
PUBLIC_RESPONSES = problem_responses(429)

CurrentUser = Annotated[Actor, Depends(authenticated())]
