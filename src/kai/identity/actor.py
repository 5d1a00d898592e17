"""Who a request acts for, and where it came from."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from kai.identity.errors import PermissionDenied
from kai.identity.permissions import UNRESTRICTED_ROLES, Permission

# Said of every `*_by` field (`created_by`, `updated_by`, `changed_by`, `invited_by`...).
AUTHOR = (
    "Who did it: `user:<id>` (a person), `api_key:<id>` (a key acting on its own) or "
    "`operator:cli` (someone at the `kai` command line)."
)


def author(kind: str, identifier: object = None) -> str:
    """Who did something, in the one form every `*_by` field shows: `user:<id>`,
    `api_key:<id>`, `operator:cli`; the kind alone where no one is named (`system`)."""
    return kind if identifier is None else f"{kind}:{identifier}"


def user_author(user_id: uuid.UUID | None) -> str | None:
    """A person as an author, from a column that keeps only their user id."""
    return None if user_id is None else author("user", user_id)


@dataclass(frozen=True)
class Origin:
    """Where a request came from, for the audit log."""

    client_address: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class Actor:
    """An authenticated caller acting for one organization."""

    # "operator": someone at the `kai` command line, trusted as the platform's own.
    kind: Literal["user", "api_key", "operator"]
    # None for a person who belongs to no organization yet (they may create or join one).
    organization_id: uuid.UUID | None
    permissions: frozenset[Permission]
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    # The user's role in the organization (None for API keys).
    role: str | None = None
    session_id: uuid.UUID | None = None
    # How the user authenticated in this session: pwd, otp, sso.
    methods: tuple[str, ...] = ()
    # True while the organization requires MFA and the user has not enrolled yet.
    needs_mfa_enrolment: bool = False
    origin: Origin = field(default_factory=Origin)
    # When this session or key last wrote: with a read replica, its reads go to the primary
    # for a while after (`kai.deps.ReadSession`).
    last_write_at: datetime | None = None
    # The person's unit system, read with what the session may do; None: not known here.
    units: str | None = None

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def refuse_beyond_own(self, permissions: Collection[Permission], *, what: str) -> None:
        """Refuse handing out (`what`: "You cannot grant"...) permissions the actor lacks."""
        missing = set(permissions) - self.permissions
        if missing:
            names = ", ".join(sorted(permission.value for permission in missing))
            raise PermissionDenied(f"{what} permissions you lack: {names}.")

    @property
    def unrestricted(self) -> bool:
        """Sees every resource of the organization, whichever teams it is shared with (owners,
        admins, and the platform's own operator: the command line and the jobs it queues)."""
        return self.kind == "operator" or self.role in UNRESTRICTED_ROLES

    @property
    def tenant_id(self) -> uuid.UUID:
        """The organization acted for; refused when the caller acts for none yet."""
        if self.organization_id is None:
            raise PermissionDenied("Act for an organization first: create or join one.")
        return self.organization_id

    @property
    def author(self) -> str:
        """Who made a row, as `created_by` columns record it: `user:<id>`, `api_key:<id>`."""
        return author(self.kind, self.audit_id)

    @property
    def audit_id(self) -> str:
        if self.kind == "operator":
            return "cli"
        return str(self.user_id if self.kind == "user" else self.api_key_id)
