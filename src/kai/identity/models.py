"""Tables of identity: who exists, where they belong, how they prove it, and what they did.

Tenant tables (with `organization_id`) are under row-level security: the application's role
sees a row only while its transaction acts for that organization. Account tables (users and
what authenticates them) belong to a person, not an organization, and are not.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from kai.kit.db import Base, TimestampedMixin, new_id

# Tables under row-level security, scoped by `organization_id`.
TENANT_TABLES = (
    "memberships",
    "roles",
    "teams",
    "team_members",
    "invitations",
    "api_keys",
    "sso_providers",
    "audit_events",
    "jobs",
)


class Organization(TimestampedMixin, Base):
    __tablename__ = "organizations"
    __table_args__ = (
        CheckConstraint(
            "signup_policy IN ('invite_only', 'open', 'email_domain')", name="signup_policy_known"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    signup_policy: Mapped[str] = mapped_column(String(20), server_default=text("'invite_only'"))
    allowed_email_domains: Mapped[list[str]] = mapped_column(
        ARRAY(String(253)), server_default=text("'{}'")
    )
    mfa_required: Mapped[bool] = mapped_column(server_default=text("false"))
    session_lifetime_hours: Mapped[int | None]
    default_role: Mapped[str] = mapped_column(String(63), server_default=text("'member'"))


class User(TimestampedMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_email", text("lower(email)"), unique=True),
        CheckConstraint("units IN ('metric', 'imperial')", name="units_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320))
    email_verified_at: Mapped[datetime | None]
    # None for accounts that only sign in through SSO.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200), server_default=text("''"))
    locale: Mapped[str] = mapped_column(String(35), server_default=text("'en'"))
    units: Mapped[str] = mapped_column(String(10), server_default=text("'metric'"))
    notification_settings: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    # The organization a fresh login acts for.
    default_organization_id: Mapped[uuid.UUID | None]
    last_login_at: Mapped[datetime | None]
    # Any session created before this instant is void ("log out everywhere", password reset).
    sessions_valid_after: Mapped[datetime | None]
    disabled: Mapped[bool] = mapped_column(server_default=text("false"))


class Membership(TimestampedMixin, Base):
    __tablename__ = "memberships"
    __table_args__ = (Index("uq_memberships_org_user", "organization_id", "user_id", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # A built-in role name or the key of one of the organization's custom roles.
    role: Mapped[str] = mapped_column(String(63))


class Role(TimestampedMixin, Base):
    """A custom role of one organization; built-in roles live in code."""

    __tablename__ = "roles"
    __table_args__ = (Index("uq_roles_org_key", "organization_id", "key", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    permissions: Mapped[list[str]] = mapped_column(ARRAY(String(63)))


class Team(TimestampedMixin, Base):
    __tablename__ = "teams"
    __table_args__ = (
        Index("uq_teams_org_name", "organization_id", text("lower(name)"), unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class Invitation(TimestampedMixin, Base):
    __tablename__ = "invitations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(63))
    token_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    invited_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    accepted_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    revoked_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """Consecutive failed password checks for one email address, whether or not an account
    has it: logins, and re-authentications of a signed-in person alike.

    Kept by address rather than by account so that an unknown address is throttled exactly
    like a known one, and the answers say nothing about which addresses exist. A try is
    counted as a failure before the password is checked (under a row lock), so that tries in
    parallel cannot pass a delay or a lock together; a right password clears the row.
    """

    __tablename__ = "login_throttles"

    email_digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    failures: Mapped[int] = mapped_column(server_default=text("0"))
    last_failure_at: Mapped[datetime]
    # Set at the lockout count, for a time that grows with each lock; a password reset or an
    # administrator clears it sooner.
    locked_until: Mapped[datetime | None]
    # Locks since the last right password: each lasts longer than the one before.
    locks: Mapped[int] = mapped_column(server_default=text("0"))


class UserToken(Base):
    """A single-use token sent by email: verify an address, reset a password."""

    __tablename__ = "user_tokens"
    __table_args__ = (
        CheckConstraint("purpose IN ('verify_email', 'reset_password')", name="purpose_known"),
        # A job looks for recent links of one person and kind, and keeps the newest few.
        Index("ix_user_tokens_user_id_purpose_created_at", "user_id", "purpose", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(20))
    token_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    # The address a verification token was sent to: a later change of address voids it.
    email: Mapped[str] = mapped_column(String(320))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    # The email job that made it: its own retries replace it, and do not count it as a link
    # sent to the address a moment ago.
    job_id: Mapped[uuid.UUID | None]


class AuthSession(Base):
    """A login: the family of refresh tokens that descend from it."""

    __tablename__ = "auth_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # The organization the session acts for now (switch-organization changes it).
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL")
    )
    # How the user proved who they are: pwd, otp, sso.
    methods: Mapped[list[str]] = mapped_column(ARRAY(String(20)))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    # When this session last proved the password (its login, or a step-up): changes to the
    # account's credentials and sessions need it recent. None for a single sign-on session
    # that never stepped up.
    password_verified_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    # The last request of this session that wrote (kept with a read replica only).
    last_write_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    client_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(400))


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    token_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    expires_at: Mapped[datetime]
    # Set when the token was exchanged; a second use is theft and revokes the family.
    used_at: Mapped[datetime | None]


class ApiKey(TimestampedMixin, Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    # Public, unique: finds the key without scanning; the secret part is only hashed.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    permissions: Mapped[list[str]] = mapped_column(ARRAY(String(63)))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    # The last request of this key that wrote (kept with a read replica only).
    last_write_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class TotpCredential(Base):
    __tablename__ = "totp_credentials"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # The seed, encrypted with a key derived from the platform secret and bound to the user.
    sealed_secret: Mapped[bytes] = mapped_column(LargeBinary)
    confirmed_at: Mapped[datetime | None]
    # The last time step accepted: a code from it or an earlier one is refused.
    last_used_step: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class RecoveryCode(Base):
    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    used_at: Mapped[datetime | None]


class SsoProvider(TimestampedMixin, Base):
    """An organization's OpenID Connect identity provider."""

    __tablename__ = "sso_providers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), unique=True
    )
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(500))
    sealed_client_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    default_role: Mapped[str] = mapped_column(String(63), server_default=text("'member'"))
    # Empty: any address the provider vouches for.
    allowed_email_domains: Mapped[list[str]] = mapped_column(
        ARRAY(String(253)), server_default=text("'{}'")
    )
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # The person who chose `default_role` (an API key's: the person who minted it). Newcomers
    # get that role only while this person could still grant it; None (they left, or it was
    # set before this was recorded): nobody new joins until the settings are saved again.
    configured_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class SsoLoginAttempt(Base):
    """One authorization request in flight: its state, nonce and PKCE verifier."""

    __tablename__ = "sso_login_attempts"

    state_digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    nonce: Mapped[str] = mapped_column(String(100))
    code_verifier: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class UserIdentity(Base):
    """A user's account at one organization's identity provider (issuer and subject).

    The provider speaks for its own organization only: another organization naming the same
    issuer and subject finds no link here. An account table like `users` (not under row-level
    security): a password reset drops a person's links in every organization at once.
    """

    __tablename__ = "user_identities"
    __table_args__ = (
        Index(
            "uq_user_identities_org_issuer_subject",
            "organization_id",
            "issuer",
            "subject",
            unique=True,
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class SsoLinkRequest(Base):
    """A first sign-in through an organization's provider, waiting for its mailbox's owner.

    The provider's word proves who someone is in its organization, never that they own an
    address: nothing is created, linked or joined until the emailed link is followed. Keyed
    by the link's token, which the job that sends it mints (the digest stored at first is of
    a token nobody knows). Not under row-level security: nothing of the organization reads it,
    and the link is followed before KAI knows which organization it is for.
    """

    __tablename__ = "sso_link_requests"
    __table_args__ = (Index("ix_sso_link_requests_org_email", "organization_id", "email"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    # As the provider vouched for it, lower case.
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), server_default=text("''"))
    token_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class AuditChainHead(Base):
    """The newest link of the audit chain, one row; the app's role cannot read or write it."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id", name="single_row"),)

    id: Mapped[bool] = mapped_column(primary_key=True, server_default=text("true"))
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditEvent(Base):
    """One line of the append-only, hash-chained audit log. Written only by `kai_audit_append`."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_org_seq", "organization_id", "seq"),
        Index("ix_audit_events_org_action", "organization_id", "action", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime]
    organization_id: Mapped[uuid.UUID | None]
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(20))
    target_type: Mapped[str | None] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(100))
    client_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    request_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
