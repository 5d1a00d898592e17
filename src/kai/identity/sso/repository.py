"""All SQL of single sign-on."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from kai.identity.models import (
    SsoLinkRequest,
    SsoLoginAttempt,
    SsoProvider,
    UserIdentity,
)

# --- SQL --------------------------------------------------------------------------------------


class SsoRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def provider(
        self, organization_id: uuid.UUID, *, for_update: bool = False
    ) -> SsoProvider | None:
        statement = select(SsoProvider).where(SsoProvider.organization_id == organization_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def save(self, provider: SsoProvider) -> SsoProvider:
        self.session.add(provider)
        await self.session.flush()
        await self.session.refresh(provider)
        return provider

    async def delete(self, provider: SsoProvider) -> None:
        await self.session.delete(provider)
        await self.session.execute(
            delete(SsoLoginAttempt).where(
                SsoLoginAttempt.organization_id == provider.organization_id
            )
        )
        # Sign-ins waiting for their mailbox die with the provider that asked for them.
        await self.session.execute(
            delete(SsoLinkRequest).where(SsoLinkRequest.organization_id == provider.organization_id)
        )
        await self.session.flush()

    async def add_attempt(self, attempt: SsoLoginAttempt) -> None:
        self.session.add(attempt)
        await self.session.flush()

    async def attempt(self, organization_id: uuid.UUID, digest: bytes) -> SsoLoginAttempt | None:
        statement = (
            select(SsoLoginAttempt)
            .where(
                SsoLoginAttempt.organization_id == organization_id,
                SsoLoginAttempt.state_digest == digest,
            )
            .with_for_update()
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def delete_expired_attempts(self, organization_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            delete(SsoLoginAttempt).where(
                SsoLoginAttempt.organization_id == organization_id,
                SsoLoginAttempt.expires_at <= now,
            )
        )

    async def identity(
        self, organization_id: uuid.UUID, issuer: str, subject: str
    ) -> UserIdentity | None:
        """The link this organization's provider made for `subject` (none made elsewhere)."""
        statement = select(UserIdentity).where(
            UserIdentity.organization_id == organization_id,
            UserIdentity.issuer == issuer,
            UserIdentity.subject == subject,
        )
        return (await self.session.scalars(statement)).one_or_none()

    async def add_identity(self, identity: UserIdentity) -> None:
        self.session.add(identity)
        await self.session.flush()
