"""Named permissions and the built-in roles that bundle them."""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    """What a role or key may do. Each is needed by some route (a test holds it so): one is
    added with the first route that asks for it, not before, so no role offers a power that
    does nothing yet (webhooks and analytics come with their routes)."""

    MATERIALS_READ = "materials:read"
    MATERIALS_WRITE = "materials:write"
    RECOGNITIONS_CREATE = "recognitions:create"
    RECOGNITIONS_READ = "recognitions:read"
    PROJECTS_MANAGE = "projects:manage"
    MODELS_READ = "models:read"
    MODELS_TRAIN = "models:train"
    MODELS_DEPLOY = "models:deploy"
    JOBS_READ = "jobs:read"
    JOBS_MANAGE = "jobs:manage"
    MEMBERS_READ = "members:read"
    MEMBERS_MANAGE = "members:manage"
    TEAMS_MANAGE = "teams:manage"
    ROLES_MANAGE = "roles:manage"
    API_KEYS_MANAGE = "api_keys:manage"
    AUDIT_READ = "audit:read"
    SSO_MANAGE = "sso:manage"
    ORGANIZATION_MANAGE = "organization:manage"


ALL_PERMISSIONS = frozenset(Permission)

_READ = {
    Permission.MATERIALS_READ,
    Permission.RECOGNITIONS_READ,
    Permission.MODELS_READ,
    Permission.JOBS_READ,
    Permission.MEMBERS_READ,
}

BUILT_IN_ROLES: dict[str, frozenset[Permission]] = {
    # The owner alone may transfer ownership or delete the organization.
    "owner": ALL_PERMISSIONS,
    "admin": ALL_PERMISSIONS,
    "editor": frozenset(
        _READ
        | {
            Permission.MATERIALS_WRITE,
            Permission.RECOGNITIONS_CREATE,
            Permission.PROJECTS_MANAGE,
            Permission.MODELS_TRAIN,
            Permission.JOBS_MANAGE,
        }
    ),
    "analyst": frozenset(_READ),
    "member": frozenset(_READ | {Permission.RECOGNITIONS_CREATE}),
}
BUILT_IN_ROLE_DESCRIPTIONS = {
    "owner": "Everything, including transferring ownership and deleting the organization.",
    "admin": "Everything but ownership: members, roles, keys, SSO, settings.",
    "editor": "Edits the catalog, runs recognitions and trains models.",
    "analyst": "Reads the catalog, recognitions, models, jobs and members; changes nothing.",
    "member": "Reads the catalog and runs recognitions.",
}
# Roles that see every resource, whatever teams it is shared with.
UNRESTRICTED_ROLES = frozenset({"owner", "admin"})


def parse_permissions(values: list[str]) -> frozenset[Permission]:
    """Known permissions from stored strings; unknown ones (removed in an upgrade) are dropped."""
    return frozenset(Permission(value) for value in values if value in ALL_PERMISSIONS)
