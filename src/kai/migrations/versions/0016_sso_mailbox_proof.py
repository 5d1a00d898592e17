"""Single sign-on links per organization, first sign-ins proven by mailbox, who set the role.

An organization's identity provider can assert any subject and any address, so its word
proves who someone is in that organization only. Links to providers now name the
organization whose provider made them; a first sign-in waits in `sso_link_requests` until
the address's owner follows an emailed link; and a provider remembers who chose the role
newcomers get, so that the role stops being granted once that person could not grant it.

Links made before this revision were found platform-wide by issuer and subject: each becomes
one link per organization whose provider names its issuer and has its person as a member
(the memberships such a link made or found). A link no such organization explains is
dropped: its person links again, by mailbox, at their next single sign-on.

Who configured a provider is read from the audit log (the newest `sso.provider.configured`
by a person, or by an API key: the person who minted it). Where it cannot be told, nobody new
joins through the provider until someone saves its settings again.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_UUID = r"'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"


def _identities_per_organization() -> None:
    op.add_column("user_identities", sa.Column("organization_id", sa.Uuid(), nullable=True))
    op.drop_index("uq_user_identities_issuer_subject", table_name="user_identities")
    op.execute(
        """
        INSERT INTO user_identities (id, user_id, organization_id, issuer, subject, created_at)
        SELECT gen_random_uuid(), i.user_id, p.organization_id, i.issuer, i.subject, i.created_at
        FROM user_identities i
        JOIN sso_providers p ON p.issuer = i.issuer
        JOIN memberships m ON m.organization_id = p.organization_id AND m.user_id = i.user_id
        WHERE i.organization_id IS NULL
        """
    )
    op.execute("DELETE FROM user_identities WHERE organization_id IS NULL")
    op.alter_column("user_identities", "organization_id", nullable=False)
    op.create_foreign_key(
        op.f("fk_user_identities_organization_id_organizations"),
        "user_identities",
        "organizations",
        ["organization_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_index(
        "uq_user_identities_org_issuer_subject",
        "user_identities",
        ["organization_id", "issuer", "subject"],
        unique=True,
    )


def _provider_configured_by() -> None:
    op.add_column("sso_providers", sa.Column("configured_by", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_sso_providers_configured_by_users"),
        "sso_providers",
        "users",
        ["configured_by"],
        ["id"],
        ondelete="SET NULL",
    )
    op.execute(
        f"""
        UPDATE sso_providers p SET configured_by = latest.user_id
        FROM (
            SELECT DISTINCT ON (e.organization_id) e.organization_id,
                   CASE e.actor_type
                       WHEN 'user' THEN e.actor_id::uuid
                       ELSE (SELECT k.created_by FROM api_keys k WHERE k.id = e.actor_id::uuid)
                   END AS user_id
            FROM audit_events e
            WHERE e.action = 'sso.provider.configured'
              AND e.actor_type IN ('user', 'api_key')
              AND e.actor_id ~ {_UUID}
            ORDER BY e.organization_id, e.seq DESC
        ) latest
        WHERE latest.organization_id = p.organization_id
          AND EXISTS (SELECT FROM users u WHERE u.id = latest.user_id)
        """
    )


def _link_requests() -> None:
    op.create_table(
        "sso_link_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), server_default=sa.text("''"), nullable=False),
        sa.Column("token_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_sso_link_requests_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_link_requests")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_sso_link_requests_token_digest")),
    )
    op.create_index(
        "ix_sso_link_requests_org_email",
        "sso_link_requests",
        ["organization_id", "email"],
        unique=False,
    )


def upgrade() -> None:
    _identities_per_organization()
    _provider_configured_by()
    _link_requests()


def downgrade() -> None:
    op.drop_index("ix_sso_link_requests_org_email", table_name="sso_link_requests")
    op.drop_table("sso_link_requests")
    op.drop_constraint(
        op.f("fk_sso_providers_configured_by_users"), "sso_providers", type_="foreignkey"
    )
    op.drop_column("sso_providers", "configured_by")
    op.drop_index("uq_user_identities_org_issuer_subject", table_name="user_identities")
    op.drop_constraint(
        op.f("fk_user_identities_organization_id_organizations"),
        "user_identities",
        type_="foreignkey",
    )
    # One link per issuer and subject again: the oldest of a person's per-organization copies.
    op.execute(
        """
        DELETE FROM user_identities i USING user_identities o
        WHERE i.issuer = o.issuer AND i.subject = o.subject
          AND (i.created_at, i.id) > (o.created_at, o.id)
        """
    )
    op.drop_column("user_identities", "organization_id")
    op.create_index(
        "uq_user_identities_issuer_subject", "user_identities", ["issuer", "subject"], unique=True
    )
