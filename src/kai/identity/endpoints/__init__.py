"""Every HTTP route of identity."""

from fastapi import APIRouter

from kai.identity.endpoints import api_keys, audit, auth, me, organization, roles, sso, teams

ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    auth.mfa_router,
    me.router,
    organization.router,
    teams.router,
    roles.router,
    api_keys.router,
    audit.router,
    sso.router,
    sso.management_router,
)
