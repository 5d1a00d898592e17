"""Two-factor authentication: TOTP (RFC 6238) and single-use recovery codes."""

from __future__ import annotations

import enum
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity import audit, lockout
from kai.identity.actor import Actor
from kai.identity.errors import InvalidMfaCode, MfaCodeUsed
from kai.identity.models import TotpCredential
from kai.identity.repository import MfaRepository, UserRepository
from kai.kit import totp
from kai.kit.crypto import token_digest
from kai.kit.errors import Conflict, KaiError
from kai.runtime import Runtime

ISSUER = "KAI"
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


class TotpAlreadyEnabled(Conflict):
    type, title = "totp-already-enabled", "Two-factor authentication is already on"


class TotpNotPending(Conflict):
    type, title = "totp-not-pending", "Start the enrolment first"


@dataclass(frozen=True)
class Enrolment:
    secret: str  # base32, for typing in by hand
    otpauth_uri: str


def _box_context(user_id: uuid.UUID) -> str:
    return f"totp:{user_id}"


def _recovery_digest(user_id: uuid.UUID, code: str) -> bytes:
    normalised = code.strip().lower().replace("-", "").replace(" ", "")
    return token_digest(f"recovery:{user_id}:{normalised}")


def new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


async def has_confirmed_totp(session: AsyncSession, user_id: uuid.UUID) -> bool:
    credential = await MfaRepository(session).totp(user_id)
    return credential is not None and credential.confirmed_at is not None


class CodeCheck(enum.Enum):
    """How a one-time code fared: good, wrong, or good but spent."""

    ACCEPTED = "accepted"
    WRONG = "wrong"
    USED = "used"

    def __bool__(self) -> bool:
        return self is CodeCheck.ACCEPTED

    def refusal(self) -> KaiError:
        """What to answer a refused code: a spent one says so (it was right, a moment ago:
        the person needs the next one, not to doubt their authenticator)."""
        if self is CodeCheck.USED:
            return MfaCodeUsed("Each code works once: wait for the next one and send that.")
        return InvalidMfaCode()


async def _verify_totp(
    session: AsyncSession, runtime: Runtime, credential: TotpCredential, code: str
) -> CodeCheck:
    secret = runtime.secret_box("totp").open(
        credential.sealed_secret, context=_box_context(credential.user_id)
    )
    step = totp.matching_step(secret, code.strip(), runtime.clock().timestamp())
    if step is None:
        return CodeCheck.WRONG
    # A code is good once: refuse its step, and any earlier one, from then on.
    if credential.last_used_step is not None and step <= credential.last_used_step:
        return CodeCheck.USED
    credential.last_used_step = step
    await session.flush()
    return CodeCheck.ACCEPTED


async def check_second_factor(
    session: AsyncSession,
    runtime: Runtime,
    *,
    user_id: uuid.UUID,
    totp_code: str | None,
    recovery_code: str | None,
) -> CodeCheck:
    repository = MfaRepository(session)
    credential = await repository.totp(user_id, for_update=True)
    if credential is None or credential.confirmed_at is None:
        return CodeCheck.WRONG
    if totp_code:
        return await _verify_totp(session, runtime, credential, totp_code)
    if recovery_code and await repository.use_recovery_code(
        user_id, _recovery_digest(user_id, recovery_code)
    ):
        return CodeCheck.ACCEPTED
    return CodeCheck.WRONG


async def begin_enrolment(session: AsyncSession, runtime: Runtime, *, actor: Actor) -> Enrolment:
    """A new secret, not yet in force: it counts once confirmed with a code from it."""
    assert actor.user_id is not None
    repository = MfaRepository(session)
    existing = await repository.totp(actor.user_id, for_update=True)
    if existing is not None and existing.confirmed_at is not None:
        raise TotpAlreadyEnabled("Disable it first to enrol a new authenticator.")
    user = await UserRepository(session).get(actor.user_id)
    assert user is not None
    secret = totp.new_secret()
    sealed = runtime.secret_box("totp").seal(secret, context=_box_context(actor.user_id))
    if existing is None:
        await repository.save_totp(TotpCredential(user_id=actor.user_id, sealed_secret=sealed))
    else:
        existing.sealed_secret = sealed
        existing.last_used_step = None
        await session.flush()
    return Enrolment(
        secret=totp.base32_secret(secret),
        otpauth_uri=totp.provisioning_uri(secret, account=user.email, issuer=ISSUER),
    )


async def confirm_enrolment(
    session: AsyncSession, runtime: Runtime, *, actor: Actor, code: str
) -> list[str]:
    """Turn TOTP on with a first good code; answers the recovery codes, shown this once."""
    assert actor.user_id is not None
    repository = MfaRepository(session)
    credential = await repository.totp(actor.user_id, for_update=True)
    if credential is None:
        raise TotpNotPending()
    if credential.confirmed_at is not None:
        raise TotpAlreadyEnabled()
    checked = await _verify_totp(session, runtime, credential, code)
    if not checked:
        raise checked.refusal()
    credential.confirmed_at = runtime.clock()
    codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
    await repository.replace_recovery_codes(
        actor.user_id, [_recovery_digest(actor.user_id, code) for code in codes]
    )
    await audit.record(
        session, action="mfa.totp.enabled", organization_id=actor.organization_id, actor=actor
    )
    return codes


async def regenerate_recovery_codes(
    session: AsyncSession, runtime: Runtime, *, actor: Actor, password: str, code: str
) -> list[str]:
    assert actor.user_id is not None
    await _reauthenticate(
        session, runtime, actor=actor, password=password, code=code, purpose="recovery-codes"
    )
    codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
    await MfaRepository(session).replace_recovery_codes(
        actor.user_id, [_recovery_digest(actor.user_id, code) for code in codes]
    )
    await audit.record(
        session,
        action="mfa.recovery_codes.regenerated",
        organization_id=actor.organization_id,
        actor=actor,
    )
    return codes


async def disable(
    session: AsyncSession, runtime: Runtime, *, actor: Actor, password: str, code: str
) -> None:
    """Turn TOTP off; the password and a current code (or recovery code) prove it is them."""
    assert actor.user_id is not None
    await _reauthenticate(
        session, runtime, actor=actor, password=password, code=code, purpose="totp-disable"
    )
    await MfaRepository(session).delete_totp(actor.user_id)
    await audit.record(
        session, action="mfa.totp.disabled", organization_id=actor.organization_id, actor=actor
    )


async def _reauthenticate(
    session: AsyncSession,
    runtime: Runtime,
    *,
    actor: Actor,
    password: str,
    code: str,
    purpose: str,
) -> None:
    """The password and a second factor, asked again; wrong ones count with failed logins."""
    assert actor.user_id is not None
    user = await UserRepository(session).get(actor.user_id)
    assert user is not None
    credential = await MfaRepository(session).totp(actor.user_id, for_update=True)
    if credential is None or credential.confirmed_at is None:
        raise TotpNotPending("Two-factor authentication is not on.")
    attempt = await lockout.check_password_again(
        runtime, actor=actor, user=user, password=password, purpose=purpose
    )
    is_totp = code.strip().isdigit()
    checked = await check_second_factor(
        session,
        runtime,
        user_id=actor.user_id,
        totp_code=code if is_totp else None,
        recovery_code=None if is_totp else code,
    )
    if not checked:
        await lockout.failed(
            runtime,
            attempt,
            user=user,
            origin=actor.origin,
            reason="wrong one-time code",
            purpose=purpose,
        )
        raise checked.refusal()
    await lockout.succeeded(session, attempt)


async def status(session: AsyncSession, *, user_id: uuid.UUID) -> tuple[bool, int]:
    """Whether TOTP is on, and how many recovery codes are left."""
    repository = MfaRepository(session)
    credential = await repository.totp(user_id)
    enabled = credential is not None and credential.confirmed_at is not None
    return enabled, (await repository.recovery_codes_left(user_id) if enabled else 0)
