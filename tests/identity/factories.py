"""People, organizations and logged-in members for tests."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient

from kai.identity import accounts
from kai.identity.actor import Origin
from kai.identity.models import Membership, Organization, User
from kai.identity.repository import MembershipRepository, UserRepository
from kai.kit.db import act_for
from kai.runtime import Runtime

PASSWORD = "lapis lazuli mosaic 1987"
_numbers = itertools.count(1)


def unique_email(stem: str = "person") -> str:
    return f"{stem}.{next(_numbers)}.{uuid.uuid4().hex[:6]}@tiles.example"


@dataclass
class Member:
    user: User
    organization: Organization | None
    password: str
    access_token: str
    refresh_token: str | None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def organization_id(self) -> uuid.UUID:
        assert self.organization is not None
        return self.organization.id


async def create_user(
    runtime: Runtime,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    name: str = "Ada Tiler",
    verified: bool = True,
) -> User:
    async with runtime.session_factory.begin() as session:
        return await UserRepository(session).add(
            User(
                email=email or unique_email(),
                password_hash=runtime.passwords.hash(password),
                name=name,
                email_verified_at=datetime.now(UTC) if verified else None,
            )
        )


async def create_organization(
    runtime: Runtime, *, owner: User, name: str = "Marble & Co"
) -> Organization:
    async with runtime.session_factory.begin() as session:
        return await accounts.create_organization(
            session, owner=owner, name=name, slug=None, origin=Origin()
        )


async def add_member(
    runtime: Runtime, organization: Organization, user: User, role: str
) -> Membership:
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=organization.id, user_id=user.id)
        membership = await MembershipRepository(session).add(
            Membership(organization_id=organization.id, user_id=user.id, role=role)
        )
        if user.default_organization_id is None:
            await UserRepository(session).update(user.id, default_organization_id=organization.id)
        return membership


async def login(
    client: AsyncClient, email: str, password: str = PASSWORD, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password, **extra}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def member(
    runtime: Runtime,
    client: AsyncClient,
    *,
    role: str = "owner",
    organization: Organization | None = None,
    email: str | None = None,
) -> Member:
    """A logged-in person: the owner of a new organization, or `role` in `organization`."""
    user = await create_user(runtime, email=email)
    if organization is None:
        organization = await create_organization(runtime, owner=user)
        if role != "owner":
            async with runtime.session_factory.begin() as session:
                await act_for(session, organization_id=organization.id, user_id=user.id)
                membership = await MembershipRepository(session).get(organization.id, user.id)
                assert membership is not None
                membership.role = role
    else:
        await add_member(runtime, organization, user, role)
    tokens = await login(client, user.email)
    return Member(
        user=user,
        organization=organization,
        password=PASSWORD,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )
