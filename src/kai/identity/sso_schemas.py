"""API shapes of single sign-on: an organization's identity provider, and starting a login."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from kai.identity.schemas import Domain, RoleKey
from kai.kit.schemas import RequestModel

# OpenID Connect issuers are URLs without query or fragment (Discovery 1.0, section 2).
Issuer = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=500, pattern=r"^https?://[^\s?#]+$"),
]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=500)]
ClientSecret = Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class SsoProviderWrite(RequestModel):
    issuer: Issuer = Field(
        description="The provider's issuer; its discovery document must answer now."
    )
    client_id: ClientId
    client_secret: ClientSecret | None = Field(
        default=None,
        description="Stored encrypted, never shown again. Absent: keep the current one.",
    )
    default_role: RoleKey = Field(
        default="member", description="The role of people who join by signing in."
    )
    allowed_email_domains: Annotated[list[Domain], Field(max_length=50)] = Field(
        default_factory=list, description="Empty: any address the provider has verified."
    )
    enabled: bool = True


class SsoProviderRead(BaseModel):
    issuer: str
    client_id: str
    has_client_secret: bool
    default_role: str
    allowed_email_domains: list[str]
    enabled: bool
    redirect_uri: str = Field(description="Register this redirect URI with the provider.")
    login_url: str = Field(description="Where people of the organization start signing in.")
    created_at: datetime
    updated_at: datetime


class SsoLoginStart(BaseModel):
    authorization_url: str = Field(
        description="Send the browser here; the provider returns it to `redirect_uri`."
    )


class SsoLinkSent(BaseModel):
    """A first sign-in through the provider: it finishes from a link sent to the address."""

    email: str = Field(description="Where the link was sent.")
    detail: str


class SsoLinkConfirmed(BaseModel):
    organization_id: uuid.UUID
    login_url: str = Field(
        description="Sign in here: the organization's provider now signs this person in."
    )
