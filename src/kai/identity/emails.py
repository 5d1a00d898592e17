"""Account emails: queued in the request's transaction, written and sent by a job after commit.

A request only records which message to send and to whom (`queue`); the job (`compose`, then
the sender) looks the account up, mints the link and sends it. So:

- a slow or dead mail server holds no request and none of the locks a request takes (the
  audit chain's head, above all): it delays only the job, which retries with backoff;
- a request for an address with an account does exactly the work of one without (the same
  insert of the same job), so neither the answer nor its timing tells which addresses exist;
- a link's token exists in clear only in the job's memory and in the message: the database
  keeps its digest, never the token (a queued job's params hold no secret);
- however often someone asks for a person's reset or confirmation link, the person gets at
  most one of a kind every `RESEND_AFTER` (a job finding a newer one sends nothing), and a
  new link leaves the `LINKS_KEPT` newest working, so asking again cannot void the link the
  person is about to use.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from kai.config import Settings
from kai.identity.models import User, UserToken
from kai.identity.repository import (
    InvitationRepository,
    OrganizationRepository,
    SsoLinkRepository,
    UserRepository,
    UserTokenRepository,
)
from kai.kit.crypto import random_token, token_digest
from kai.kit.email import Email
from kai.kit.jobs.queue import enqueue_kind

SEND_EMAIL = "identity.send_email"
# Its own queue, so that an operator may give the mail server a worker of its own.
EMAIL_QUEUE = "email"
# With the default backoff (2 s doubling, at most 10 min) a little over half an hour of retries.
MAX_ATTEMPTS = 12
# A link of a kind made for an address less than this long ago: the job sends none.
RESEND_AFTER = timedelta(minutes=5)
# Unused links of a kind that stay valid (until they expire) when a new one is made.
LINKS_KEPT = 3

# What a job may send (also the purposes of the links it mints).
VERIFY_EMAIL: Final = "verify_email"
RESET_PASSWORD: Final = "reset_password"  # noqa: S105 - a message's name, not a password
SIGNUP_REPEATED: Final = "signup_repeated"
INVITATION: Final = "invitation"
ACCOUNT_LOCKED: Final = "account_locked"
SSO_LINK: Final = "sso_link"

Message = Literal[
    "verify_email", "reset_password", "signup_repeated", "invitation", "account_locked", "sso_link"
]


async def queue(
    session: AsyncSession,
    message: Message,
    *,
    to: str | None = None,
    organization_id: uuid.UUID | None = None,
    **details: str | int,
) -> None:
    """Send `message` once `session`'s transaction commits (never if it rolls back).

    `to` names an account by address: whether one has it is decided when the job runs, not
    here. An invitation names its row instead (`invitation_id`), in its organization's job.
    """
    params: dict[str, Any] = {"message": message, **details}
    if to is not None:
        params["to"] = to
    await enqueue_kind(
        session,
        SEND_EMAIL,
        params=params,
        organization_id=organization_id,
        max_attempts=MAX_ATTEMPTS,
        queue=EMAIL_QUEUE,
    )


async def compose(
    session: AsyncSession,
    *,
    settings: Settings,
    params: dict[str, Any],
    organization_id: uuid.UUID | None,
    now: datetime,
    job_id: uuid.UUID | None = None,
) -> Email | None:
    """The message a queued job (`job_id`) stands for, with a fresh link where it carries one.

    None when there is nothing to send: no account has the address (or not one that needs
    the message), another job made it a link of this kind less than `RESEND_AFTER` ago, the
    invitation was accepted or withdrawn. A link made here voids the ones this job made
    before (attempts whose message did not leave) and all but the `LINKS_KEPT` newest
    others. Commit `session` before sending.
    """
    message = params.get("message")
    if message == INVITATION:
        if organization_id is None:
            return None
        return await _invitation(session, settings, params, organization_id, now)
    if message == SSO_LINK:
        return await _sso_link(session, settings, params, now)
    address = params.get("to")
    if not isinstance(address, str):
        return None
    # Locked: two jobs for one address mint their links one after the other, and the later
    # sees the earlier's.
    user = await UserRepository(session).by_email(address, for_update=True)
    if user is None:
        return None
    public_url = settings.public_url
    if message == VERIFY_EMAIL:
        if user.email_verified_at is not None or user.disabled:
            return None
        hours = settings.auth.email_token_hours
        token = await _new_token(
            session,
            user,
            VERIFY_EMAIL,
            now=now,
            expires_at=now + timedelta(hours=hours),
            job_id=job_id,
        )
        if token is None:
            return None
        return Email(
            to=user.email,
            subject="Confirm your email address for KAI",
            text=(
                "Confirm your address to start using KAI:\n\n"
                f"{public_url}/verify-email?token={token}\n\n"
                f"The link works once, for {hours} hours.\n"
            ),
        )
    if message == RESET_PASSWORD:
        if user.disabled:
            return None
        minutes = settings.auth.password_reset_minutes
        token = await _new_token(
            session,
            user,
            RESET_PASSWORD,
            now=now,
            expires_at=now + timedelta(minutes=minutes),
            job_id=job_id,
        )
        if token is None:
            return None
        return Email(
            to=user.email,
            subject="Reset your KAI password",
            text=(
                "Choose a new password here:\n\n"
                f"{public_url}/reset-password?token={token}\n\n"
                f"The link works once, for {minutes} minutes. If you did not ask for it, "
                "ignore this message: your password stays as it is.\n"
            ),
        )
    if message == SIGNUP_REPEATED:
        return Email(
            to=user.email,
            subject="Someone tried to sign up with your address",
            text=(
                "Someone (maybe you) tried to create a KAI account with this address, "
                "which already has one.\n\nIf it was you, log in, or reset your password: "
                f"{public_url}/reset-password\n"
            ),
        )
    if message == ACCOUNT_LOCKED:
        return Email(
            to=user.email,
            subject="Your KAI account was locked",
            text=(
                f"After {params.get('failures')} wrong passwords in a row, sign-ins with your "
                f"password are locked for {params.get('lasting')} (until {params.get('until')}"
                " UTC) to protect your account.\n\n"
                "If it was not you, someone is guessing your password. To get in now, "
                f"and to choose a new password, reset it: {public_url}/reset-password\n"
            ),
        )
    return None


async def _new_token(
    session: AsyncSession,
    user: User,
    purpose: str,
    *,
    now: datetime,
    expires_at: datetime,
    job_id: uuid.UUID | None,
) -> str | None:
    """A new link's token; None when another job made one of this kind a moment ago.

    Whoever asks for links to someone's address (anyone may) thus sends them at most one of a
    kind every RESEND_AFTER, and cannot void the one in their inbox: the person uses the
    link they already have, which stays valid with the LINKS_KEPT - 1 before it.
    """
    tokens = UserTokenRepository(session)
    if await tokens.minted_after(user.id, purpose, now - RESEND_AFTER, except_job=job_id):
        return None
    # This job's own earlier links go (their attempts failed to send, or never said they
    # sent); of the others, the newest stay valid beside the new one.
    await tokens.void_unused(user.id, purpose, keep_newest=LINKS_KEPT - 1, made_by_job=job_id)
    token = random_token(32)
    await tokens.add(
        UserToken(
            user_id=user.id,
            purpose=purpose,
            token_digest=token_digest(token),
            email=user.email,
            expires_at=expires_at,
            created_at=now,
            job_id=job_id,
        )
    )
    return token


async def _invitation(
    session: AsyncSession,
    settings: Settings,
    params: dict[str, Any],
    organization_id: uuid.UUID,
    now: datetime,
) -> Email | None:
    try:
        invitation_id = uuid.UUID(str(params.get("invitation_id")))
    except ValueError:
        return None
    invitation = await InvitationRepository(session).get(
        organization_id, invitation_id, for_update=True
    )
    if (
        invitation is None
        or invitation.accepted_at is not None
        or invitation.revoked_at is not None
        or invitation.expires_at <= now
    ):
        return None
    organization = await OrganizationRepository(session).get(organization_id)
    if organization is None:
        return None
    # The link's token is made now: the invitation row was written with one nobody knows.
    token = random_token(32)
    invitation.token_digest = token_digest(token)
    await session.flush()
    days = max(1, round((invitation.expires_at - now) / timedelta(days=1)))
    return Email(
        to=invitation.email,
        subject=f"You are invited to {organization.name} on KAI",
        text=(
            f"You are invited to join {organization.name} on KAI as {invitation.role}.\n\n"
            f"{settings.public_url}/invitations/accept?token={token}\n\n"
            f"The invitation works once, for {days} days.\n"
        ),
    )


async def _sso_link(
    session: AsyncSession, settings: Settings, params: dict[str, Any], now: datetime
) -> Email | None:
    """The link that finishes a first sign-in through an organization's provider.

    Whether the address has an account is looked up here, by the platform's job, and heard
    only by the mailbox: the browser and the organization saw the same either way.
    """
    try:
        link_id = uuid.UUID(str(params.get("link_id")))
    except ValueError:
        return None
    link = await SsoLinkRepository(session).get(link_id, for_update=True)
    if link is None or link.expires_at <= now:
        return None
    organization = await OrganizationRepository(session).get(link.organization_id)
    account = await UserRepository(session).by_email(link.email)
    if organization is None or (account is not None and account.disabled):
        return None
    # The link's token is made now: the row was written with one nobody knows.
    token = random_token(32)
    link.token_digest = token_digest(token)
    await session.flush()
    url = f"{settings.public_url}/sso/confirm?token={token}"
    minutes = max(1, round((link.expires_at - now) / timedelta(minutes=1)))
    name = organization.name
    asked = (
        f"Someone just signed in through the single sign-on of {name} on KAI with this address.\n\n"
    )
    lasts = f"The link works once, for {minutes} minutes. "
    if account is None:
        return Email(
            to=link.email,
            subject=f"Confirm your address to join {name} on KAI",
            text=(
                f"{asked}If it was you, confirm to create your KAI account and join {name}:\n\n"
                f"{url}\n\n{lasts}If it was not you, ignore this message: no account is made.\n"
            ),
        )
    return Email(
        to=account.email,
        subject=f"Link your KAI account to {name}'s sign-in",
        text=(
            f"{asked}If it was you, confirm to link your existing KAI account to {name}'s "
            f"sign-in (and to join {name}, if you are not a member yet):\n\n{url}\n\n"
            f"From then on {name}'s identity provider signs you in to {name} without your "
            "password; your password, second factor and other organizations stay as they "
            f"are.\n\n{lasts}If it was not you, ignore this message: nothing changes.\n"
        ),
    )
