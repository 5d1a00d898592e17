"""Identity: organizations, users, memberships, roles, teams, credentials, audit; tenant walls.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APP_ROLE = "kai_app"
TENANT_TABLES = (
    "memberships",
    "roles",
    "teams",
    "team_members",
    "invitations",
    "api_keys",
    "sso_providers",
    "sso_login_attempts",
)
NEW_TABLES = (
    "login_throttles",
    "audit_chain_head",
    "audit_events",
    "team_members",
    "refresh_tokens",
    "user_tokens",
    "user_identities",
    "totp_credentials",
    "teams",
    "sso_providers",
    "sso_login_attempts",
    "roles",
    "recovery_codes",
    "memberships",
    "invitations",
    "auth_sessions",
    "api_keys",
    "users",
    "organizations",
)


def _create_tables() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("actor_type", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.String(length=100), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("target_type", sa.String(length=50), nullable=True),
        sa.Column("target_id", sa.String(length=100), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("prev_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_events")),
    )
    op.create_index(
        "ix_audit_events_org_action",
        "audit_events",
        ["organization_id", "action", "seq"],
        unique=False,
    )
    op.create_index(
        "ix_audit_events_org_seq", "audit_events", ["organization_id", "seq"], unique=False
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column(
            "signup_policy",
            sa.String(length=20),
            server_default=sa.text("'invite_only'"),
            nullable=False,
        ),
        sa.Column(
            "allowed_email_domains",
            sa.ARRAY(sa.String(length=253)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("mfa_required", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("session_lifetime_hours", sa.Integer(), nullable=True),
        sa.Column(
            "default_role", sa.String(length=63), server_default=sa.text("'member'"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "signup_policy IN ('invite_only', 'open', 'email_domain')",
            name=op.f("ck_organizations_signup_policy_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("slug", name=op.f("uq_organizations_slug")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("name", sa.String(length=200), server_default=sa.text("''"), nullable=False),
        sa.Column("locale", sa.String(length=35), server_default=sa.text("'en'"), nullable=False),
        sa.Column(
            "units", sa.String(length=10), server_default=sa.text("'metric'"), nullable=False
        ),
        sa.Column(
            "notification_settings",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("default_organization_id", sa.Uuid(), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sessions_valid_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("units IN ('metric', 'imperial')", name=op.f("ck_users_units_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index("uq_users_email", "users", [sa.literal_column("lower(email)")], unique=True)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("permissions", sa.ARRAY(sa.String(length=63)), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_api_keys_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_api_keys_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_index(
        op.f("ix_api_keys_organization_id"), "api_keys", ["organization_id"], unique=False
    )
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("methods", sa.ARRAY(sa.String(length=20)), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "last_used_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=40), nullable=True),
        sa.Column("client_address", postgresql.INET(), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_auth_sessions_organization_id_organizations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_auth_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
    )
    op.create_index(op.f("ix_auth_sessions_user_id"), "auth_sessions", ["user_id"], unique=False)
    op.create_table(
        "invitations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=63), nullable=False),
        sa.Column("token_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("invited_by", sa.Uuid(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_by", sa.Uuid(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["accepted_by"],
            ["users.id"],
            name=op.f("fk_invitations_accepted_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"],
            ["users.id"],
            name=op.f("fk_invitations_invited_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_invitations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_invitations_token_digest")),
    )
    op.create_index(
        op.f("ix_invitations_organization_id"), "invitations", ["organization_id"], unique=False
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=63), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_memberships_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_memberships_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
    )
    op.create_index(op.f("ix_memberships_user_id"), "memberships", ["user_id"], unique=False)
    op.create_index(
        "uq_memberships_org_user", "memberships", ["organization_id", "user_id"], unique=True
    )
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("code_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_recovery_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
    )
    op.create_index(op.f("ix_recovery_codes_user_id"), "recovery_codes", ["user_id"], unique=False)
    op.create_table(
        "roles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("permissions", sa.ARRAY(sa.String(length=63)), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_roles_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
    )
    op.create_index("uq_roles_org_key", "roles", ["organization_id", "key"], unique=True)
    op.create_table(
        "sso_login_attempts",
        sa.Column("state_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("nonce", sa.String(length=100), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2000), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_sso_login_attempts_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("state_digest", name=op.f("pk_sso_login_attempts")),
    )
    op.create_table(
        "sso_providers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("client_id", sa.String(length=500), nullable=False),
        sa.Column("sealed_client_secret", sa.LargeBinary(), nullable=True),
        sa.Column(
            "default_role", sa.String(length=63), server_default=sa.text("'member'"), nullable=False
        ),
        sa.Column(
            "allowed_email_domains",
            sa.ARRAY(sa.String(length=253)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_sso_providers_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_providers")),
        sa.UniqueConstraint("organization_id", name=op.f("uq_sso_providers_organization_id")),
    )
    op.create_table(
        "teams",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_teams_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
    )
    op.create_index(
        "uq_teams_org_name",
        "teams",
        ["organization_id", sa.literal_column("lower(name)")],
        unique=True,
    )
    op.create_table(
        "totp_credentials",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_step", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_totp_credentials_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_totp_credentials")),
    )
    op.create_table(
        "user_identities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_identities_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_identities")),
    )
    op.create_index(
        op.f("ix_user_identities_user_id"), "user_identities", ["user_id"], unique=False
    )
    op.create_index(
        "uq_user_identities_issuer_subject", "user_identities", ["issuer", "subject"], unique=True
    )
    op.create_table(
        "user_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("token_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "purpose IN ('verify_email', 'reset_password')",
            name=op.f("ck_user_tokens_purpose_known"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_tokens")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_user_tokens_token_digest")),
    )
    op.create_index(op.f("ix_user_tokens_user_id"), "user_tokens", ["user_id"], unique=False)
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("token_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["auth_sessions.id"],
            name=op.f("fk_refresh_tokens_session_id_auth_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_refresh_tokens_token_digest")),
    )
    op.create_index(
        op.f("ix_refresh_tokens_session_id"), "refresh_tokens", ["session_id"], unique=False
    )
    op.create_table(
        "team_members",
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_team_members_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_team_members_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_team_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("team_id", "user_id", name=op.f("pk_team_members")),
    )
    op.create_index(op.f("ix_team_members_user_id"), "team_members", ["user_id"], unique=False)


def _create_login_throttles() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("email_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("email_digest", name=op.f("pk_login_throttles")),
    )


def _create_audit_log() -> None:
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Boolean(), primary_key=True, server_default=sa.text("true")),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.LargeBinary(32), nullable=False),
        sa.CheckConstraint("id", name=op.f("ck_audit_chain_head_single_row")),
    )
    op.execute(
        "INSERT INTO audit_chain_head (id, last_seq, last_hash) "
        "VALUES (true, 0, decode(repeat('00', 32), 'hex'))"
    )
    # The chain: hash(n) = sha256(hash(n-1) || canonical(n)). Every field is written as
    # `<length>:<text>` (or `-` for NULL) so that no two different rows read the same.
    # `kai audit verify` rebuilds the same text in Python and checks every link.
    op.execute(
        """
        CREATE FUNCTION kai_audit_field(value text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT coalesce(length(value)::text || ':' || value, '-') $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION kai_audit_append(
            p_organization_id uuid, p_actor_type text, p_actor_id text, p_action text,
            p_outcome text, p_target_type text, p_target_id text, p_client_address text,
            p_user_agent text, p_request_id text, p_details jsonb
        ) RETURNS bigint
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
        DECLARE
            head record;
            new_seq bigint;
            at timestamptz := clock_timestamp();
            canonical text;
            digest bytea;
        BEGIN
            IF p_organization_id IS NOT NULL
               AND p_organization_id IS DISTINCT FROM kai_current_org() THEN
                RAISE EXCEPTION 'an audit event may only be written for the organization acted for'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            SELECT last_seq, last_hash INTO head FROM audit_chain_head WHERE id FOR UPDATE;
            new_seq := head.last_seq + 1;
            canonical := concat_ws(',',
                kai_audit_field(new_seq::text),
                kai_audit_field(((extract(epoch FROM at) * 1000000)::bigint)::text),
                kai_audit_field(p_organization_id::text),
                kai_audit_field(p_actor_type),
                kai_audit_field(p_actor_id),
                kai_audit_field(p_action),
                kai_audit_field(p_outcome),
                kai_audit_field(p_target_type),
                kai_audit_field(p_target_id),
                kai_audit_field(p_client_address),
                kai_audit_field(p_user_agent),
                kai_audit_field(p_request_id),
                kai_audit_field(coalesce(p_details, '{}'::jsonb)::text));
            digest := sha256(head.last_hash || convert_to(canonical, 'UTF8'));
            INSERT INTO audit_events (
                seq, occurred_at, organization_id, actor_type, actor_id, action, outcome,
                target_type, target_id, client_address, user_agent, request_id, details,
                prev_hash, hash
            ) VALUES (
                new_seq, at, p_organization_id, p_actor_type, p_actor_id, p_action, p_outcome,
                p_target_type, p_target_id, p_client_address, p_user_agent, p_request_id,
                coalesce(p_details, '{}'::jsonb), head.last_hash, digest
            );
            UPDATE audit_chain_head SET last_seq = new_seq, last_hash = digest WHERE id;
            RETURN new_seq;
        END $$
        """
    )
    # Append-only for everyone, the owner included; only a superuser disabling the trigger
    # could change a row, and the hash chain shows it.
    op.execute(
        """
        CREATE FUNCTION kai_audit_refuse_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION kai_audit_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION kai_audit_refuse_change()"
    )


def _create_app_role() -> None:
    # The role the application acts as. Creating it needs CREATEROLE; where the migrating
    # role lacks it, a DBA creates it beforehand and this leaves it alone.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                BEGIN
                    CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN
                    -- Roles belong to the cluster: another database's migration made it first.
                    NULL;
                END;
            END IF;
            -- A login role that is not a superuser must be a member to switch to it.
            IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                EXECUTE format('GRANT {APP_ROLE} TO %I', current_user);
            END IF;
        END $$
        """
    )


def _tenant_walls() -> None:
    op.execute(
        """
        CREATE FUNCTION kai_current_org() RETURNS uuid
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$ SELECT nullif(current_setting('kai.organization_id', true), '')::uuid $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION kai_current_user() RETURNS uuid
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$ SELECT nullif(current_setting('kai.user_id', true), '')::uuid $$
        """
    )
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        if table == "memberships":
            # A person sees their own memberships in every organization (to switch to one).
            visible = "organization_id = kai_current_org() OR user_id = kai_current_user()"
        else:
            visible = "organization_id = kai_current_org()"
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({visible}) "
            "WITH CHECK (organization_id = kai_current_org())"
        )
    # Jobs without an organization are the platform's own, visible only outside any tenant.
    op.execute("ALTER TABLE jobs ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON jobs "
        "USING (organization_id IS NOT DISTINCT FROM kai_current_org()) "
        "WITH CHECK (organization_id IS NOT DISTINCT FROM kai_current_org())"
    )
    op.execute("ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_read ON audit_events FOR SELECT "
        "USING (organization_id = kai_current_org())"
    )
    # Every authenticated request: scope the transaction to the caller and read what the
    # caller may do now, in one round trip. Runs as the caller (row-level security applies).
    op.execute(
        """
        CREATE FUNCTION kai_authenticate(p_session_id uuid, p_user_id uuid, p_organization_id uuid)
        RETURNS TABLE (
            member_role text, custom_permissions text[], session_revoked boolean,
            session_expires_at timestamptz, session_organization_id uuid,
            session_created_at timestamptz, user_disabled boolean,
            user_sessions_valid_after timestamptz, mfa_enrolled boolean, mfa_required boolean
        )
        LANGUAGE plpgsql VOLATILE
        AS $$
        BEGIN
            PERFORM set_config('kai.organization_id', coalesce(p_organization_id::text, ''), true),
                    set_config('kai.user_id', p_user_id::text, true);
            RETURN QUERY
            SELECT m.role::text, r.permissions::text[], s.revoked_at IS NOT NULL, s.expires_at,
                   s.organization_id, s.created_at, u.disabled, u.sessions_valid_after,
                   EXISTS (SELECT 1 FROM totp_credentials t
                           WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL),
                   coalesce(o.mfa_required, false)
            FROM auth_sessions s
            JOIN users u ON u.id = s.user_id
            LEFT JOIN organizations o ON o.id = p_organization_id
            LEFT JOIN memberships m
                   ON m.user_id = s.user_id AND m.organization_id = p_organization_id
            LEFT JOIN roles r ON r.organization_id = m.organization_id AND r.key = m.role
            WHERE s.id = p_session_id AND s.user_id = p_user_id;
        END $$
        """
    )
    # Lookups that must cross the wall before the organization is known, each reading one
    # value by a secret only the caller holds.
    op.execute(
        """
        CREATE FUNCTION kai_api_key_organization(key_prefix text) RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$ SELECT organization_id FROM api_keys WHERE prefix = key_prefix $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION kai_invitation_organization(digest bytea) RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$ SELECT organization_id FROM invitations WHERE token_digest = digest $$
        """
    )
    # Housekeeping across every organization.
    op.execute(
        """
        CREATE FUNCTION kai_prune_finished_jobs(cutoff timestamptz) RETURNS bigint
        LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
            WITH removed AS (
                DELETE FROM jobs
                WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < cutoff
                RETURNING 1
            )
            SELECT count(*) FROM removed
        $$
        """
    )


def _grant() -> None:
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON audit_events FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON audit_chain_head FROM {APP_ROLE}")
    # Tables of later migrations (made by this same migrating role) are the app's too.
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}"
    )


def upgrade() -> None:
    _create_tables()
    _create_login_throttles()
    _create_app_role()
    _tenant_walls()
    _create_audit_log()
    _grant()


def downgrade() -> None:
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {APP_ROLE}"
    )
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"REVOKE USAGE, SELECT ON SEQUENCES FROM {APP_ROLE}"
    )
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON jobs")
    op.execute("ALTER TABLE jobs DISABLE ROW LEVEL SECURITY")
    for table in NEW_TABLES:
        op.drop_table(table)
    for function in (
        "kai_audit_append(uuid, text, text, text, text, text, text, text, text, text, jsonb)",
        "kai_audit_field(text)",
        "kai_audit_refuse_change()",
        "kai_api_key_organization(text)",
        "kai_invitation_organization(bytea)",
        "kai_prune_finished_jobs(timestamptz)",
        "kai_authenticate(uuid, uuid, uuid)",
        "kai_current_org()",
        "kai_current_user()",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    # The role is the cluster's, shared by its other databases: it stays, without rights here.
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
