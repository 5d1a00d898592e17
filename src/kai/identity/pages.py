"""Plain pages for the links KAI emails, until the web app owns them.

Each link opens a page whose form does the step: opening a link never changes anything by
itself (mail scanners and link previews open links too). The pages are server-rendered,
without scripts, and send nothing of the token onwards (no referrer, no caching).
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from kai.deps import RuntimeDep
from kai.identity import accounts, organizations, sessions
from kai.identity.dependencies import origin_of, public
from kai.identity.repository import OrganizationRepository, UserRepository
from kai.identity.sso import provisioning
from kai.kit.db import session_scope
from kai.kit.errors import KaiError
from kai.kit.routing import IndexedRouter
from kai.runtime import Runtime

log = structlog.get_logger(__name__)

router = IndexedRouter(include_in_schema=False, dependencies=[Depends(public(rate_class="auth"))])

# What an emailed link carries; anything longer is not one of ours.
Token = Annotated[str, Query(max_length=200)]
FormText = Annotated[str, Form(max_length=1024)]

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;"
    "color:#1d1d1f}label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.5rem;"
    "font:inherit;box-sizing:border-box}button{margin-top:1rem;padding:.6rem 1.2rem;font:inherit}"
    ".problem{color:#a40000}"
)
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · KAI</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=_HEADERS)


def _text(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def _form(action: str, fields: str, button: str, token: str | None = None) -> str:
    hidden = f'<input type="hidden" name="token" value="{html.escape(token)}">' if token else ""
    return (
        f'<form method="post" action="{html.escape(action)}">{hidden}{fields}'
        f"<button>{html.escape(button)}</button></form>"
    )


def _field(name: str, label: str, kind: str = "text", *, required: bool = True) -> str:
    autocomplete = {
        "email": "email",
        "password": "current-password",
        "new_password": "new-password",
        "totp_code": "one-time-code",
    }.get(name, "off")
    return (
        f'<label for="{name}">{html.escape(label)}</label>'
        f'<input id="{name}" name="{name}" type="{kind}" autocomplete="{autocomplete}"'
        f"{' required' if required else ''}>"
    )


def _refused(title: str, error: KaiError) -> HTMLResponse:
    return _page(title, f'<p class="problem">{html.escape(error.detail or error.title)}</p>',
                 error.status)  # fmt: skip


async def _step(
    request: Request,
    runtime: Runtime,
    title: str,
    work: Callable[[AsyncSession], Awaitable[str]],
) -> HTMLResponse:
    """Do a page's step in a transaction of its own: what it answers, or why not (and then
    nothing of it is kept)."""
    try:
        async with session_scope(runtime.session_factory) as session:
            done = await work(session)
    except KaiError as error:
        log.info("page.refused", path=request.url.path, type=error.type)
        return _refused(title, error)
    return _page(title, done)


_NO_TOKEN = _text("This page is opened from the link in an email from KAI; the link is missing.")


# --- confirming an address ----------------------------------------------------------------------


@router.get("/verify-email")
async def verify_email_page(token: Token = "") -> HTMLResponse:
    if not token:
        return _page("Confirm your address", _NO_TOKEN, 400)
    form = _form("/verify-email", "", "Confirm my address", token)
    return _page("Confirm your address", _text("One click and your address is confirmed.") + form)


@router.post("/verify-email")
async def verify_email(request: Request, runtime: RuntimeDep, token: FormText = "") -> HTMLResponse:
    async def work(session: AsyncSession) -> str:
        await accounts.verify_email(session, runtime, token=token, origin=origin_of(request))
        return _text("Your address is confirmed: you can sign in now.")

    return await _step(request, runtime, "Confirm your address", work)


# --- resetting a password -----------------------------------------------------------------------


@router.get("/reset-password")
async def reset_password_page(token: Token = "") -> HTMLResponse:
    if not token:
        form = _form("/reset-password", _field("email", "Your email address", "email"),
                     "Email me a reset link")  # fmt: skip
        return _page("Reset your password", form)
    fields = _field("new_password", "New password", "password")
    return _page("Choose a new password", _form("/reset-password", fields, "Save it", token))


@router.post("/reset-password")
async def reset_password(
    request: Request,
    runtime: RuntimeDep,
    token: FormText = "",
    new_password: FormText = "",
    email: FormText = "",
) -> HTMLResponse:
    if not token:
        if "@" not in email:
            return _page("Reset your password", _text("Give the address of your account."), 422)

        async def ask(session: AsyncSession) -> str:
            await accounts.request_password_reset(session, runtime, email=email.strip())
            return _text("If the address has an account, a reset link is on its way.")

        return await _step(request, runtime, "Reset your password", ask)

    async def work(session: AsyncSession) -> str:
        await accounts.reset_password(
            session, runtime, token=token, password=new_password, origin=origin_of(request)
        )
        return _text(
            "Your password is changed, and every session of your account has ended: "
            "sign in with the new one."
        )

    return await _step(request, runtime, "Choose a new password", work)


# --- accepting an invitation --------------------------------------------------------------------


@router.get("/invitations/accept")
async def invitation_page(token: Token = "") -> HTMLResponse:
    if not token:
        return _page("Accept an invitation", _NO_TOKEN, 400)
    fields = (
        _field("email", "Email", "email")
        + _field("password", "Password", "password")
        + _field("totp_code", "One-time code (if you use two-factor authentication)",
                 required=False)
    )  # fmt: skip
    intro = _text(
        "Sign in with the account the invitation was sent to. No account yet? Sign up with "
        "that address first, then open this link again."
    )
    return _page("Accept an invitation", intro + _form("/invitations/accept", fields,
                                                       "Sign in and join", token))  # fmt: skip


@router.post("/invitations/accept")
async def accept_invitation(
    request: Request,
    runtime: RuntimeDep,
    token: FormText = "",
    email: FormText = "",
    password: FormText = "",
    totp_code: FormText = "",
) -> HTMLResponse:
    origin = origin_of(request)

    async def work(session: AsyncSession) -> str:
        # A sign-in as the API's (throttled, counted, second factor asked for), then the step.
        await sessions.login(
            session,
            runtime,
            email=email.strip(),
            password=password,
            totp_code=totp_code.strip() or None,
            recovery_code=None,
            origin=origin,
        )
        user = await UserRepository(session).by_email(email.strip())
        assert user is not None
        membership = await organizations.accept_invitation(
            session, runtime, user=user, token=token, origin=origin
        )
        # Whoever accepts means to work there next: their next sign-in acts for it.
        await UserRepository(session).update(
            user.id, default_organization_id=membership.organization_id
        )
        organization = await OrganizationRepository(session).get(membership.organization_id)
        name = organization.name if organization else "the organization"
        return _text(f"You joined {name} as {membership.role}: signing in now takes you there.")

    return await _step(request, runtime, "Accept an invitation", work)


# --- finishing a first single sign-on -----------------------------------------------------------


@router.get("/sso/confirm")
async def sso_confirm_page(token: Token = "") -> HTMLResponse:
    if not token:
        return _page("Finish signing in", _NO_TOKEN, 400)
    form = _form("/sso/confirm", "", "Link my account", token)
    intro = _text(
        "Confirm that this address may sign in to KAI through your organization's single sign-on."
    )
    return _page("Finish signing in", intro + form)


@router.post("/sso/confirm")
async def sso_confirm(request: Request, runtime: RuntimeDep, token: FormText = "") -> HTMLResponse:
    async def work(session: AsyncSession) -> str:
        organization = await provisioning.confirm_link(
            session, runtime, token=token, origin=origin_of(request)
        )
        login = str(request.app.url_path_for("sso_login", organization_slug=organization.slug))
        return _text(f"Done: you are a member of {organization.name}.") + (
            f'<p><a href="{html.escape(login)}">Sign in through its provider</a></p>'
        )

    return await _step(request, runtime, "Finish signing in", work)
