"""HTTP routes of logging in, tokens, sign-up, email proofs, password resets and MFA."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response, status

from kai.deps import DbSession, RuntimeDep
from kai.identity import accounts, mfa, sessions, step_up
from kai.identity.actor import Actor
from kai.identity.dependencies import (
    AUTH_RESPONSES,
    PUBLIC_RESPONSES,
    authenticated,
    origin_of,
    other_organizations,
    password_session,
    public,
    recently_authenticated,
    user_only,
)
from kai.identity.endpoints import browser
from kai.identity.errors import InvalidRefreshToken
from kai.identity.repository import OrganizationRepository
from kai.identity.schemas import (
    Accepted,
    EmailRequest,
    LoginRequest,
    LogoutEverywhereResponse,
    MfaReauth,
    MfaStatus,
    PasswordResetConfirm,
    RecoveryCodes,
    RefreshRequest,
    SignupRequest,
    StepUpRequest,
    StepUpResponse,
    SwitchOrganizationRequest,
    TokenRequest,
    TokenResponse,
    TotpConfirm,
    TotpEnrolment,
)
from kai.kit.errors import problem_responses
from kai.kit.routing import IndexedRouter
from kai.runtime import Runtime

router = IndexedRouter(prefix="/auth", tags=["auth"])

AuthPublic = Depends(public(rate_class="auth"))
Person = Annotated[Actor, Depends(authenticated())]
# Changes to the account's credentials and sessions: a password proof of the last minutes.
SteppedUp = Annotated[Actor, Depends(recently_authenticated())]
# Reaches another organization: a single sign-on session's password proof must be recent.
BeyondOrganization = Annotated[Actor, Depends(other_organizations())]
# Beyond the organization a single sign-on session acts for: the password proved in session.
AccountHolder = Annotated[Actor, Depends(password_session())]
# Takes the password: limited like the login form, on top of the per-address count.
PasswordChecked = Annotated[Actor, Depends(authenticated(rate_class="auth"))]


def _tokens(
    pair: sessions.TokenPair, delivery: tuple[Request, Response, Runtime] | None = None
) -> TokenResponse:
    """The answer; with `delivery`, the refresh token goes into the browser's cookie instead."""
    refresh_token = pair.refresh_token
    if delivery is not None and refresh_token is not None:
        request, response, runtime = delivery
        browser.set_refresh_cookie(
            response,
            request,
            refresh_token,
            days=runtime.settings.auth.refresh_token_days,
        )
        refresh_token = None
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=refresh_token,
        expires_in=pair.expires_in,
        organization_id=pair.organization_id,
    )


def _cookie_delivery(
    request: Request, response: Response, runtime: Runtime
) -> tuple[Request, Response, Runtime] | None:
    # A session the browser holds by cookie keeps it there through every renewal.
    return (request, response, runtime) if browser.holds_cookie(request) else None


@router.post(
    "/login",
    summary="Log in with email and password (and a one-time code when MFA is on)",
    dependencies=[AuthPublic],
    responses=problem_responses(401, 403, 429),
)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    session: DbSession,
    runtime: RuntimeDep,
) -> TokenResponse:
    pair = await sessions.login(
        session,
        runtime,
        email=body.email,
        password=body.password,
        totp_code=body.totp_code,
        recovery_code=body.recovery_code,
        origin=origin_of(request),
    )
    in_cookie = body.refresh_token_in == "cookie"  # noqa: S105 - a delivery, not a secret
    return _tokens(pair, (request, response, runtime) if in_cookie else None)


@router.post(
    "/refresh",
    summary="Exchange a refresh token (once) for a new pair",
    description=(
        "With `refresh_token` in the body, the new one comes back in the body. Without it, the "
        "session cookie's token is used (the request sends `X-Requested-With: kai`) and the new "
        "one replaces the cookie."
    ),
    dependencies=[AuthPublic],
    responses=problem_responses(401, 403, 429),
)
async def refresh(
    request: Request,
    response: Response,
    session: DbSession,
    runtime: RuntimeDep,
    body: RefreshRequest | None = None,
) -> TokenResponse:
    token = body.refresh_token if body is not None else None
    delivery = None
    if token is None:
        token = browser.cookie_token(request)
        if token is None:
            raise InvalidRefreshToken("Send `refresh_token`, or the session cookie.")
        delivery = (request, response, runtime)
    try:
        pair = await sessions.refresh(
            session, runtime, refresh_token=token, origin=origin_of(request)
        )
    except InvalidRefreshToken as error:
        if delivery is not None:
            # A cookie that no longer works is dropped, so the app shows its login at once.
            error.headers = {**(error.headers or {}), **browser.clearing_headers(request)}
        raise
    return _tokens(pair, delivery)


@router.post(
    "/logout",
    summary="End this session",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=AUTH_RESPONSES,
)
async def logout(actor: Person, request: Request, response: Response, session: DbSession) -> None:
    await sessions.logout(session, actor=user_only(actor))
    browser.clear_refresh_cookie(response, request)


@router.post(
    "/logout-everywhere",
    summary="End every session of this account",
    description="In every organization, this one included.",
    responses=AUTH_RESPONSES,
)
async def logout_everywhere(
    actor: SteppedUp, request: Request, response: Response, session: DbSession, runtime: RuntimeDep
) -> LogoutEverywhereResponse:
    revoked = await sessions.logout_everywhere(session, runtime, actor=user_only(actor))
    browser.clear_refresh_cookie(response, request)
    return LogoutEverywhereResponse(sessions_revoked=revoked)


@router.post(
    "/step-up",
    summary="Confirm your password in this session, before changes to your whole account",
    description=(
        "With the password (and a one-time or recovery code when two-factor authentication "
        "is on), this session may change the account's password, two-factor settings and "
        "sessions for a few minutes, and a single sign-on session may reach beyond its "
        "organization from now on. Wrong passwords count with failed logins. Answers a new "
        "access token that carries the proof; a person without a password (single sign-on "
        "only) sets one with a password reset by email first."
    ),
    responses=problem_responses(401, 403, 429),
)
async def confirm_password(
    body: StepUpRequest,
    actor: PasswordChecked,
    request: Request,
    response: Response,
    session: DbSession,
    runtime: RuntimeDep,
) -> StepUpResponse:
    stepped_up = await step_up.step_up(
        session,
        runtime,
        actor=user_only(actor),
        password=body.password,
        totp_code=body.totp_code,
        recovery_code=body.recovery_code,
    )
    tokens = _tokens(stepped_up.tokens, _cookie_delivery(request, response, runtime))
    return StepUpResponse(**tokens.model_dump(), step_up_expires_at=stepped_up.until)


@router.post(
    "/switch-organization",
    summary="Act for another organization you belong to",
    description=(
        "Answers a new access token; the session's refresh token follows the switch. A "
        "single sign-on session confirms the password first (`POST /api/v1/auth/step-up`, "
        "within the last few minutes)."
    ),
    responses=problem_responses(401, 403, 404, 429),
)
async def switch_organization(
    body: SwitchOrganizationRequest,
    actor: BeyondOrganization,
    request: Request,
    response: Response,
    session: DbSession,
    runtime: RuntimeDep,
) -> TokenResponse:
    pair = await sessions.switch_organization(
        session, runtime, actor=user_only(actor), organization_id=body.organization_id
    )
    return _tokens(pair, _cookie_delivery(request, response, runtime))


@router.post(
    "/signup",
    summary="Create an account",
    description=(
        "Always answers 202: whether the address already had an account is told only to "
        "its owner, by email. The new account logs in once its address is verified."
    ),
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[AuthPublic],
    responses=problem_responses(403, 422, 429, 503),
)
async def signup(
    body: SignupRequest, request: Request, session: DbSession, runtime: RuntimeDep
) -> Accepted:
    await accounts.signup(
        session,
        runtime,
        email=body.email,
        password=body.password,
        name=body.name,
        organization_name=body.organization_name,
        origin=origin_of(request),
    )
    return Accepted(detail="Check your inbox for a link to confirm your address.")


@router.post(
    "/verify-email",
    summary="Confirm an email address with the emailed token",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[AuthPublic],
    responses=PUBLIC_RESPONSES,
)
async def verify_email(
    body: TokenRequest, request: Request, session: DbSession, runtime: RuntimeDep
) -> None:
    await accounts.verify_email(session, runtime, token=body.token, origin=origin_of(request))


@router.post(
    "/verify-email/resend",
    summary="Send the confirmation email again",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[AuthPublic],
    responses=problem_responses(429, 503),
)
async def resend_verification(
    body: EmailRequest, session: DbSession, runtime: RuntimeDep
) -> Accepted:
    await accounts.resend_verification(session, runtime, email=body.email)
    return Accepted(detail="If the address has an unconfirmed account, a new link is on its way.")


@router.post(
    "/password-reset",
    summary="Ask for a password reset link",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[AuthPublic],
    responses=problem_responses(429, 503),
)
async def request_password_reset(
    body: EmailRequest, session: DbSession, runtime: RuntimeDep
) -> Accepted:
    await accounts.request_password_reset(session, runtime, email=body.email)
    return Accepted(detail="If the address has an account, a reset link is on its way.")


@router.post(
    "/password-reset/confirm",
    summary="Set a new password with the emailed token",
    description="Unlocks the account and ends every session.",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[AuthPublic],
    responses=PUBLIC_RESPONSES,
)
async def reset_password(
    body: PasswordResetConfirm, request: Request, session: DbSession, runtime: RuntimeDep
) -> None:
    await accounts.reset_password(
        session, runtime, token=body.token, password=body.password, origin=origin_of(request)
    )


# --- MFA ------------------------------------------------------------------------------------

mfa_router = IndexedRouter(prefix="/auth/mfa", tags=["auth"], responses=AUTH_RESPONSES)


@mfa_router.get(
    "",
    summary="Whether two-factor authentication is on",
    description=(
        "How the account is protected is the person's own business, not the business of an "
        "organization's identity provider."
    ),
)
async def mfa_status(actor: AccountHolder, session: DbSession) -> MfaStatus:
    person = user_only(actor)
    assert person.user_id is not None
    enabled, left = await mfa.status(session, user_id=person.user_id)
    required = False
    if person.organization_id is not None:
        organization = await OrganizationRepository(session).get(person.organization_id)
        required = bool(organization and organization.mfa_required)
    return MfaStatus(
        totp_enabled=enabled, recovery_codes_left=left, required_by_organization=required
    )


@mfa_router.post(
    "/totp/enrol",
    summary="Start TOTP enrolment: a new secret to add to an authenticator app",
    responses=problem_responses(409),
)
async def totp_enrol(actor: SteppedUp, session: DbSession, runtime: RuntimeDep) -> TotpEnrolment:
    enrolment = await mfa.begin_enrolment(session, runtime, actor=user_only(actor))
    return TotpEnrolment(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri)


@mfa_router.post(
    "/totp/confirm",
    summary="Turn TOTP on with a first code; answers single-use recovery codes",
    responses=problem_responses(409),
)
async def totp_confirm(
    body: TotpConfirm, actor: SteppedUp, session: DbSession, runtime: RuntimeDep
) -> RecoveryCodes:
    codes = await mfa.confirm_enrolment(session, runtime, actor=user_only(actor), code=body.code)
    return RecoveryCodes(recovery_codes=codes)


@mfa_router.post(
    "/totp/disable",
    summary="Turn TOTP off (password and a current code required)",
    description="A wrong password or code counts with failed logins.",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(409),
)
async def totp_disable(
    body: MfaReauth, actor: Person, session: DbSession, runtime: RuntimeDep
) -> None:
    await mfa.disable(
        session, runtime, actor=user_only(actor), password=body.password, code=body.code
    )


@mfa_router.post(
    "/recovery-codes",
    summary="Replace the recovery codes (password and a current code required)",
    description="A wrong password or code counts with failed logins.",
    responses=problem_responses(409),
)
async def regenerate_recovery_codes(
    body: MfaReauth, actor: Person, session: DbSession, runtime: RuntimeDep
) -> RecoveryCodes:
    codes = await mfa.regenerate_recovery_codes(
        session, runtime, actor=user_only(actor), password=body.password, code=body.code
    )
    return RecoveryCodes(recovery_codes=codes)
