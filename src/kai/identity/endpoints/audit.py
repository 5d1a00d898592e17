"""HTTP routes of the audit log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query

from kai.deps import DbSession
from kai.identity import audit
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.identity.schemas import AuditEventRead
from kai.kit.pagination import Page, PageParams, page_params
from kai.kit.routing import IndexedRouter
from kai.kit.schemas import Instant

router = IndexedRouter(prefix="/audit-events", tags=["audit"], responses=AUTH_RESPONSES)

AuditRead = Annotated[Actor, Depends(require(Permission.AUDIT_READ))]
_ACTION = r"^[a-z_]+(\.[a-z_]+)*$"


@router.get("", summary="The organization's audit log, newest first")
async def list_audit_events(
    actor: AuditRead,
    session: DbSession,
    page: Annotated[PageParams, Depends(page_params)],
    action: Annotated[
        str | None,
        Query(max_length=100, pattern=_ACTION, description="An action or a prefix: `auth.login`."),
    ] = None,
    actor_id: Annotated[str | None, Query(max_length=100, pattern=r"^[0-9a-f-]+$")] = None,
    outcome: Literal["success", "failure"] | None = None,
    target_id: Annotated[str | None, Query(max_length=100, pattern=r"^[0-9A-Za-z_-]+$")] = None,
    since: Annotated[Instant | None, Query(description="On or after this instant.")] = None,
    until: Annotated[Instant | None, Query(description="Before this instant.")] = None,
) -> Page[AuditEventRead]:
    filters = audit.AuditFilters(
        action=action,
        actor_id=actor_id,
        outcome=outcome,
        target_id=target_id,
        since=since,
        until=until,
    )
    events, cursor = await audit.list_events(session, actor=actor, filters=filters, params=page)
    return Page[AuditEventRead](
        items=[AuditEventRead.model_validate(event) for event in events], next_cursor=cursor
    )
