"""HTTP routes of single sign-on: signing in, and setting up an organization's provider."""

from __future__ import annotations

from typing import Annotated, Literal

import structlog
from fastapi import Depends, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from kai.deps import DbSession, RuntimeDep
from kai.identity import organizations, sso
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, origin_of, public, require
from kai.identity.endpoints import browser
from kai.identity.models import SsoProvider
from kai.identity.permissions import Permission
from kai.identity.schemas import TokenRequest, TokenResponse
from kai.identity.sso_schemas import (
    SsoLinkConfirmed,
    SsoLinkSent,
    SsoLoginStart,
    SsoProviderRead,
    SsoProviderWrite,
)
from kai.kit.db import release_connection
from kai.kit.errors import KaiError, problem_responses
from kai.kit.routing import IndexedRouter
from kai.runtime import Runtime

log = structlog.get_logger(__name__)

router = IndexedRouter(prefix="/auth/sso", tags=["sso"])
management_router = IndexedRouter(
    prefix="/organization/sso", tags=["sso"], responses=AUTH_RESPONSES
)

AuthPublic = Depends(public(rate_class="auth"))
SsoManage = Annotated[Actor, Depends(require(Permission.SSO_MANAGE))]
OrganizationSlug = Annotated[
    str, Path(max_length=63, pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
]
# The authorization URL and the tokens are for this browser only: no cache may keep them.
NO_STORE = {"Cache-Control": "no-store"}
LOGIN_ROUTE, CALLBACK_ROUTE = "sso_login", "sso_callback"
# A login the web app started: the callback answers with the session cookie and a redirect to
# the app rather than JSON. Lax, not Strict: the provider's redirect back is a navigation
# from another site, and must carry it.
WEB_LOGIN_COOKIE = "kai_sso_web"
WEB_LOGIN_PATH = "/api/v1/auth/sso"
WEB_LOGIN_SECONDS = 600
# What OAuth 2.0 allows in codes and error codes (RFC 6749, appendix A).
VISIBLE_ASCII = r"^[\x20-\x7e]+$"


def _url(request: Request, runtime: Runtime, route: str, organization_slug: str) -> str:
    # From the configured public URL, never the request's Host header: the provider matches
    # the redirect URI exactly, and a forged host must not choose where codes go.
    path = request.app.url_path_for(route, organization_slug=organization_slug)
    return runtime.settings.public_url + str(path)


async def _start(
    organization_slug: str, request: Request, session: AsyncSession, runtime: Runtime
) -> str:
    return await sso.start_login(
        session,
        runtime,
        organization_slug=organization_slug,
        redirect_uri=_url(request, runtime, CALLBACK_ROUTE, organization_slug),
    )


@router.get(
    "/{organization_slug}/login",
    name=LOGIN_ROUTE,
    summary="Sign in through the organization's identity provider",
    description=(
        "Redirects the browser to the provider. After signing in there, the provider sends it "
        "to the callback, which answers KAI tokens. `POST` answers the URL as JSON instead. "
        "With `client=web` (the web app), the callback instead sets the session cookie and "
        "redirects to the app: to `/`, or to `/login?sso=sent` or `/login?sso=failed`."
    ),
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    dependencies=[AuthPublic],
    responses={
        302: {"description": "To the provider's authorization endpoint"},
        **problem_responses(404, 429, 502),
    },
)
async def login(
    organization_slug: OrganizationSlug,
    request: Request,
    session: DbSession,
    runtime: RuntimeDep,
    client: Literal["web"] | None = None,
) -> RedirectResponse:
    url = await _start(organization_slug, request, session, runtime)
    redirect = RedirectResponse(url, status_code=status.HTTP_302_FOUND, headers=NO_STORE)
    if client == "web":
        redirect.set_cookie(
            WEB_LOGIN_COOKIE,
            "1",
            max_age=WEB_LOGIN_SECONDS,
            path=WEB_LOGIN_PATH,
            httponly=True,
            secure=browser.needs_secure(request),
            samesite="lax",
        )
    return redirect


@router.post(
    "/{organization_slug}/login",
    summary="Start signing in through the organization's identity provider, as JSON",
    description="For applications that navigate to the provider themselves.",
    dependencies=[AuthPublic],
    responses=problem_responses(404, 429, 502),
)
async def start_login(
    organization_slug: OrganizationSlug,
    request: Request,
    response: Response,
    session: DbSession,
    runtime: RuntimeDep,
) -> SsoLoginStart:
    response.headers.update(NO_STORE)
    url = await _start(organization_slug, request, session, runtime)
    return SsoLoginStart(authorization_url=url)


@router.get(
    "/{organization_slug}/callback",
    name=CALLBACK_ROUTE,
    summary="Finish signing in: where the provider sends the browser back",
    description=(
        "Each login's `state` works once. Someone the organization's provider linked before "
        "gets KAI tokens. A first sign-in answers 202: a link went to the address the provider "
        "vouched for, and following it (`POST /auth/sso/confirm`) creates the account or links "
        "the existing one, and joins the organization with the provider's default role. The "
        "202 is the same whether or not the address has an account."
    ),
    response_model=TokenResponse,
    dependencies=[AuthPublic],
    responses={
        202: {"model": SsoLinkSent, "description": "A link to finish signing in was emailed"},
        **problem_responses(400, 401, 403, 404, 409, 429, 502),
    },
)
async def callback(
    organization_slug: OrganizationSlug,
    state: Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")],
    request: Request,
    response: Response,
    session: DbSession,
    runtime: RuntimeDep,
    code: Annotated[str | None, Query(max_length=2000, pattern=VISIBLE_ASCII)] = None,
    iss: Annotated[
        str | None, Query(max_length=500, pattern=VISIBLE_ASCII, description="RFC 9207")
    ] = None,
    error: Annotated[str | None, Query(max_length=200, pattern=VISIBLE_ASCII)] = None,
) -> TokenResponse | JSONResponse | RedirectResponse:
    if request.cookies.get(WEB_LOGIN_COOKIE) == "1":
        return await _finish_in_the_app(
            organization_slug, state, request, session, runtime, code=code, iss=iss, error=error
        )
    outcome = await sso.finish_login(
        session,
        runtime,
        organization_slug=organization_slug,
        code=code,
        state=state,
        issuer=iss,
        error=error,
        origin=origin_of(request),
    )
    if isinstance(outcome, sso.LinkSent):
        sent = SsoLinkSent(
            email=outcome.email,
            detail=f"We sent a link to {outcome.email} to finish signing in.",
        )
        return JSONResponse(
            sent.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED, headers=NO_STORE
        )
    response.headers.update(NO_STORE)
    return TokenResponse(
        access_token=outcome.access_token,
        refresh_token=outcome.refresh_token,
        expires_in=outcome.expires_in,
        organization_id=outcome.organization_id,
    )


async def _finish_in_the_app(
    organization_slug: str,
    state: str,
    request: Request,
    session: AsyncSession,
    runtime: Runtime,
    *,
    code: str | None,
    iss: str | None,
    error: str | None,
) -> RedirectResponse:
    """The callback of a login the web app started: the session goes into its cookie."""
    try:
        outcome = await sso.finish_login(
            session,
            runtime,
            organization_slug=organization_slug,
            code=code,
            state=state,
            issuer=iss,
            error=error,
            origin=origin_of(request),
        )
    except KaiError as refusal:
        # The app says it in a fixed sentence: nothing of the provider's text reaches the page.
        await session.rollback()
        log.info("sso.web_login_refused", problem=refusal.type)
        return _to_app(request, "/login?sso=failed")
    if isinstance(outcome, sso.LinkSent):
        return _to_app(request, "/login?sso=sent")
    answer = _to_app(request, "/")
    assert outcome.refresh_token is not None
    browser.set_refresh_cookie(
        answer,
        request,
        outcome.refresh_token,
        days=runtime.settings.auth.refresh_token_days,
    )
    return answer


def _to_app(request: Request, path: str) -> RedirectResponse:
    answer = RedirectResponse(path, status_code=status.HTTP_303_SEE_OTHER, headers=NO_STORE)
    answer.delete_cookie(
        WEB_LOGIN_COOKIE,
        path=WEB_LOGIN_PATH,
        httponly=True,
        secure=browser.needs_secure(request),
        samesite="lax",
    )
    return answer


@router.post(
    "/confirm",
    summary="Finish a first single sign-on with the emailed link",
    description=(
        "Creates the account (or links the existing one) to the organization's provider and "
        "joins the organization. Then sign in at `login_url`: the provider signs this person "
        "in directly from now on."
    ),
    dependencies=[AuthPublic],
    responses=problem_responses(400, 403, 404, 409, 429),
)
async def confirm(
    body: TokenRequest, request: Request, session: DbSession, runtime: RuntimeDep
) -> SsoLinkConfirmed:
    organization = await sso.confirm_link(
        session, runtime, token=body.token, origin=origin_of(request)
    )
    return SsoLinkConfirmed(
        organization_id=organization.id,
        login_url=_url(request, runtime, LOGIN_ROUTE, organization.slug),
    )


# --- management -------------------------------------------------------------------------------


async def _read(
    provider: SsoProvider, actor: Actor, request: Request, session: AsyncSession, runtime: Runtime
) -> SsoProviderRead:
    slug = (await organizations.get_organization(session, actor=actor)).slug
    return SsoProviderRead(
        issuer=provider.issuer,
        client_id=provider.client_id,
        has_client_secret=provider.sealed_client_secret is not None,
        default_role=provider.default_role,
        allowed_email_domains=provider.allowed_email_domains,
        enabled=provider.enabled,
        redirect_uri=_url(request, runtime, CALLBACK_ROUTE, slug),
        login_url=_url(request, runtime, LOGIN_ROUTE, slug),
        created_at=provider.created_at,
        updated_at=provider.updated_at,
    )


@management_router.get(
    "", summary="The organization's identity provider", responses=problem_responses(404)
)
async def get_provider(
    actor: SsoManage, request: Request, session: DbSession, runtime: RuntimeDep
) -> SsoProviderRead:
    provider = await sso.get_provider(session, actor=actor)
    return await _read(provider, actor, request, session, runtime)


@management_router.put(
    "",
    summary="Set up or replace the organization's identity provider",
    description=(
        "The issuer's discovery document is fetched and checked now. The client secret is "
        "stored encrypted and never answered."
    ),
    responses=problem_responses(404, 422),
)
async def configure_provider(
    body: SsoProviderWrite,
    actor: SsoManage,
    request: Request,
    session: DbSession,
    runtime: RuntimeDep,
) -> SsoProviderRead:
    # The service asks the issuer first, which may take the provider seconds: any transaction
    # the request began ends now, so no pooled connection waits on a server an organization
    # chose.
    await release_connection(session)
    provider = await sso.configure_provider(
        session,
        runtime,
        actor=actor,
        issuer=body.issuer,
        client_id=body.client_id,
        client_secret=body.client_secret,
        default_role=body.default_role,
        allowed_email_domains=body.allowed_email_domains,
        enabled=body.enabled,
    )
    return await _read(provider, actor, request, session, runtime)


@management_router.delete(
    "",
    summary="Remove the organization's identity provider",
    description="Accounts made through it stay, with their memberships.",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def delete_provider(actor: SsoManage, session: DbSession) -> None:
    await sso.delete_provider(session, actor=actor)
