"""API shapes of identity, apart from the tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    computed_field,
)

from kai.identity.actor import AUTHOR, author, user_author
from kai.identity.permissions import Permission
from kai.kit.schemas import Instant, RequestModel

Password = Annotated[str, Field(min_length=1, max_length=1024)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
RoleKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
Token = Annotated[
    str, StringConstraints(min_length=16, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")
]
OtpCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=6, max_length=20)]
Domain = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        max_length=253,
        # Checked before lower-casing, so both cases pass.
        pattern=r"^([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$",
    ),
]


def _lower_email(value: str) -> str:
    # The domain is case-insensitive; the local part is treated so too, as everywhere else.
    return value.strip().lower()


Email = Annotated[EmailStr, AfterValidator(_lower_email)]


def _person(value: object) -> object:
    # The column keeps the person's user id; the API names them as every author is named.
    return user_author(value) if isinstance(value, uuid.UUID) else value


# A person who did something, from a column holding their user id.
PersonAuthor = Annotated[str | None, BeforeValidator(_person), Field(description=AUTHOR)]


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- auth -----------------------------------------------------------------------------------


class LoginRequest(RequestModel):
    email: Email
    password: Password
    totp_code: OtpCode | None = None
    recovery_code: OtpCode | None = None
    refresh_token_in: Literal["body", "cookie"] = Field(
        default="body",
        description=(
            "`cookie`: for a web page, the refresh token goes into an `HttpOnly` cookie that "
            "only the auth routes receive, not into the answer."
        ),
    )


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str | None = Field(
        default=None, description="Use once at `/auth/refresh`; absent when not renewed."
    )
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the scheme's name
    expires_in: int = Field(description="Seconds until the access token expires.")
    organization_id: uuid.UUID | None = None


class RefreshRequest(RequestModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None,
        description=(
            "Absent: the session cookie's token, sent with the `X-Requested-With: kai` header."
        ),
    )


class SwitchOrganizationRequest(RequestModel):
    organization_id: uuid.UUID


class SignupRequest(RequestModel):
    email: Email
    password: Password
    name: Name
    organization_name: Name | None = Field(
        default=None, description="Create this organization, with you as its owner."
    )


class Accepted(BaseModel):
    detail: str


class EmailRequest(RequestModel):
    email: Email


class TokenRequest(RequestModel):
    token: Token


class PasswordResetConfirm(RequestModel):
    token: Token
    password: Password


class PasswordChange(RequestModel):
    current_password: Password
    new_password: Password


class LogoutEverywhereResponse(BaseModel):
    sessions_revoked: int


class SessionRead(BaseModel):
    """A login that still works: where and how it was made, and when it was last used."""

    id: uuid.UUID
    current: bool = Field(description="Whether this is the session of the calling token.")
    created_at: datetime = Field(description="When you signed in.")
    last_used_at: datetime = Field(
        description=(
            "When its tokens were last renewed: every few minutes while it is in use, so a "
            "little behind the last request."
        )
    )
    expires_at: datetime = Field(description="When it ends at the latest, used or not.")
    methods: list[str] = Field(
        description=(
            "How you signed in, and what it proved since: `pwd` (password), `otp` (one-time "
            "code), `sso` (your organization's single sign-on)."
        )
    )
    device: str | None = Field(
        description=(
            "Browser and system, read from `user_agent`: `Chrome on macOS`. Absent when the "
            "user agent names neither (a script, say)."
        )
    )
    browser: str | None = Field(description="The browser alone: `Chrome`.")
    os: str | None = Field(description="The operating system alone: `macOS`.")
    user_agent: str | None = Field(description="As the client sent it at sign-in.")
    client_address: str | None = Field(description="The address it signed in from.")


class StepUpRequest(RequestModel):
    password: Password
    totp_code: OtpCode | None = None
    recovery_code: OtpCode | None = None


class StepUpResponse(TokenResponse):
    step_up_expires_at: datetime = Field(
        description=(
            "Until when this session may change the account's credentials and sessions "
            "without confirming the password again."
        )
    )


# --- MFA ------------------------------------------------------------------------------------


class TotpEnrolment(BaseModel):
    secret: str = Field(description="Base32 secret, for typing into an authenticator by hand.")
    otpauth_uri: str = Field(description="Show as a QR code for an authenticator app.")


class TotpConfirm(RequestModel):
    code: OtpCode


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="Each works once. Shown only now.")


class MfaReauth(RequestModel):
    password: Password
    code: OtpCode = Field(description="A current one-time code, or a recovery code.")


class MfaStatus(BaseModel):
    totp_enabled: bool
    recovery_codes_left: int
    required_by_organization: bool


# --- people and organizations ---------------------------------------------------------------


class NotificationSettings(RequestModel):
    recognition_finished: bool = True
    training_finished: bool = True
    weekly_summary: bool = False
    security_alerts: bool = True


class UserRead(ReadModel):
    id: uuid.UUID
    email: str
    name: str
    email_verified: bool
    locale: str
    units: Literal["metric", "imperial"]
    notification_settings: NotificationSettings
    created_at: datetime

    @classmethod
    def of(cls, user: Any) -> UserRead:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            email_verified=user.email_verified_at is not None,
            locale=user.locale,
            units=user.units,
            notification_settings=NotificationSettings(**(user.notification_settings or {})),
            created_at=user.created_at,
        )


class ProfileUpdate(RequestModel):
    name: Name | None = None
    locale: (
        Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] | None
    ) = None
    units: Literal["metric", "imperial"] | None = None
    notification_settings: NotificationSettings | None = None


class OrganizationRead(ReadModel):
    id: uuid.UUID
    name: str
    slug: str
    signup_policy: Literal["invite_only", "open", "email_domain"]
    allowed_email_domains: list[str]
    mfa_required: bool
    session_lifetime_hours: int | None
    default_role: str
    created_at: datetime


class OrganizationCreate(RequestModel):
    name: Name
    slug: Slug | None = None


class OrganizationUpdate(RequestModel):
    name: Name | None = None
    signup_policy: Literal["invite_only", "open", "email_domain"] | None = None
    allowed_email_domains: Annotated[list[Domain], Field(max_length=50)] | None = None
    mfa_required: bool | None = None
    session_lifetime_hours: Annotated[int, Field(ge=1, le=24 * 90)] | None = None
    default_role: RoleKey | None = None


class MeRead(BaseModel):
    kind: Literal["user", "api_key"]
    user: UserRead | None
    api_key_id: uuid.UUID | None = None
    organization: OrganizationRead | None
    role: str | None
    permissions: list[str]
    authentication_methods: list[str]
    mfa_enrolment_required: bool


class MembershipRead(BaseModel):
    organization: OrganizationRead
    role: str
    joined_at: datetime


class InvitationAccepted(MembershipRead):
    """The membership, and a token acting in it: the session now acts for that organization."""

    tokens: TokenResponse = Field(description="The session's new token, for that organization.")


class MemberRead(BaseModel):
    user_id: uuid.UUID
    email: str
    name: str
    role: str
    joined_at: datetime


class MemberUpdate(RequestModel):
    role: RoleKey


class OwnershipTransfer(RequestModel):
    user_id: uuid.UUID


class InvitationCreate(RequestModel):
    email: Email
    role: RoleKey = "member"


class InvitationRead(ReadModel):
    id: uuid.UUID
    email: str
    role: str
    invited_by: PersonAuthor
    expires_at: datetime
    created_at: datetime


class TeamCreate(RequestModel):
    name: Name
    description: Annotated[str, StringConstraints(max_length=2000)] = ""


class TeamUpdate(RequestModel):
    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None


class TeamRead(ReadModel):
    id: uuid.UUID
    name: str
    description: str
    created_at: datetime


class TeamMemberRead(BaseModel):
    user_id: uuid.UUID
    email: str
    name: str


class RoleRead(BaseModel):
    id: uuid.UUID | None = Field(description="Absent for built-in roles.")
    key: str
    name: str
    description: str
    permissions: list[Permission]
    built_in: bool


class RoleCreate(RequestModel):
    key: RoleKey
    name: Name
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    permissions: Annotated[list[Permission], Field(max_length=len(Permission))]


class RoleUpdate(RequestModel):
    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    permissions: Annotated[list[Permission], Field(max_length=len(Permission))] | None = None


class ApiKeyCreate(RequestModel):
    name: Name
    permissions: Annotated[list[Permission], Field(min_length=1, max_length=len(Permission))]
    expires_at: Instant | None = Field(default=None, description="Absent: never expires.")


class ApiKeyRead(ReadModel):
    id: uuid.UUID
    name: str
    prefix: str
    permissions: list[str]
    created_by: PersonAuthor
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The whole key. Shown only now: store it safely.")


class AuditEventRead(ReadModel):
    seq: int
    occurred_at: datetime
    actor_type: str = Field(description="The log's own record of who: `user`, `api_key`, ...")
    actor_id: str | None = Field(description="What `?actor_id=` matches.")
    action: str
    outcome: str
    target_type: str | None
    target_id: str | None
    client_address: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]

    @computed_field(description=AUTHOR + " `system`: the platform itself; `anonymous`: nobody.")  # type: ignore[prop-decorator]
    @property
    def actor(self) -> str:
        """Who, in the form every `*_by` field has."""
        return author(self.actor_type, self.actor_id)
