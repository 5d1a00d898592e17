"""Errors of identity, as clients see them."""

from __future__ import annotations

from kai.kit.errors import Conflict, KaiError, NotFound

_BEARER = {"WWW-Authenticate": 'Bearer realm="kai"'}


class NotAuthenticated(KaiError):
    status, type, title = 401, "not-authenticated", "Authentication is required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail or "Send `Authorization: Bearer <access token or API key>`.",
            headers={"WWW-Authenticate": 'Bearer realm="kai", error="invalid_token"'}
            if detail
            else dict(_BEARER),
        )


class InvalidCredentials(KaiError):
    # One answer for an unknown address, a wrong password, a locked or disabled account.
    status, type, title = 401, "invalid-credentials", "The email or password is not correct"


class MfaRequired(KaiError):
    status, type, title = 401, "mfa-required", "A one-time code is required"


class InvalidMfaCode(KaiError):
    status, type, title = 401, "invalid-mfa-code", "The one-time code is not correct"


class MfaCodeUsed(KaiError):
    status, type, title = 401, "mfa-code-used", "This one-time code was already used"


class InvalidRefreshToken(KaiError):
    status, type, title = 401, "invalid-refresh-token", "The refresh token is not valid"


class PermissionDenied(KaiError):
    status, type, title = 403, "permission-denied", "You do not have permission to do this"


class NoActiveOrganization(PermissionDenied):
    type, title = "organization-required", "Choose an organization to act for first"


class MfaEnrolmentRequired(KaiError):
    status, type, title = (
        403,
        "mfa-enrolment-required",
        "Your organization requires two-factor authentication: enrol first",
    )


class EmailNotVerified(KaiError):
    status, type, title = 403, "email-not-verified", "Verify your email address first"


class StepUpRequired(KaiError):
    status, type, title = (
        403,
        "step-up-required",
        "Confirm your password first: this changes your whole account",
    )


class PasswordNotSet(KaiError):
    # A person who only signs in through an organization's identity provider: that provider
    # is the organization's, so it cannot vouch for changes beyond the organization.
    status, type, title = 403, "password-not-set", "This account has no password"


class LoginThrottled(KaiError):
    status, type, title = 429, "login-throttled", "Too many failed logins: wait before trying again"


class LoginLocked(KaiError):
    status, type, title = (
        429,
        "login-locked",
        "Too many failed logins: the address is locked for a while",
    )


class RateLimited(KaiError):
    status, type, title = 429, "rate-limited", "Too many requests"


class WeakPassword(KaiError):
    status, type, title = 422, "weak-password", "The password is too weak"


class InvalidToken(KaiError):
    status, type, title = 400, "invalid-token", "The link is not valid or has expired"


class InvitationForAnotherAccount(KaiError):
    status, type = 403, "invitation-for-another-account"
    title = "The invitation is for another account"


class EmailTaken(Conflict):
    type, title = "email-taken", "An account with this email address exists"
    constraints = ("uq_users_email",)


class SlugTaken(Conflict):
    type, title = "slug-taken", "The organization's short name is taken"
    constraints = ("uq_organizations_slug",)


class OrganizationNotFound(NotFound):
    type, title = "organization-not-found", "No such organization"


class MemberNotFound(NotFound):
    type, title = "member-not-found", "No such member"


class TeamNotFound(NotFound):
    type, title = "team-not-found", "No such team"


class RoleNotFound(NotFound):
    type, title = "role-not-found", "No such role"


class InvitationNotFound(NotFound):
    type, title = "invitation-not-found", "No such invitation"


class InvitationVoid(KaiError):
    # The invitation was valid when sent, but whoever sent it can no longer grant its role.
    status, type, title = 410, "invitation-void", "This invitation can no longer be accepted"


class ApiKeyNotFound(NotFound):
    type, title = "api-key-not-found", "No such API key"


class SessionNotFound(NotFound):
    type, title = "session-not-found", "No such session"


class SignupNotAllowed(KaiError):
    status, type, title = 403, "signup-not-allowed", "This organization does not take sign-ups"


class LastOwner(Conflict):
    type, title = "last-owner", "An organization keeps at least one owner"
