"""The audit log: append-only, hash-chained, one organization's view at a time.

Events are appended by the database function `kai_audit_append`, which links each to the one
before (hash(n) = sha256(hash(n-1) || canonical(n))). `verify_chain` rebuilds every link
from the stored rows, so a changed, removed or inserted row shows.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Select, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from kai.identity.actor import Actor, Origin
from kai.identity.models import AuditEvent
from kai.kit.db import scoped_transaction
from kai.kit.pagination import PageParams, paginate

GENESIS_HASH = bytes(32)

_APPEND = text(
    "SELECT kai_audit_append(:organization_id, :actor_type, :actor_id, :action, :outcome,"
    " :target_type, :target_id, :client_address, :user_agent, :request_id,"
    " CAST(:details AS jsonb))"
)


@dataclass(frozen=True)
class AuditFilters:
    action: str | None = None
    actor_id: str | None = None
    outcome: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def record(
    session: AsyncSession,
    *,
    action: str,
    organization_id: uuid.UUID | None,
    actor: Actor | None = None,
    actor_type: str | None = None,
    actor_id: str | None = None,
    outcome: str = "success",
    target_type: str | None = None,
    target_id: str | None = None,
    origin: Origin | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Append one event in the session's transaction; it commits or rolls back with the rest."""
    origin = origin or (actor.origin if actor else Origin())
    result = await session.execute(
        _APPEND,
        {
            "organization_id": organization_id,
            "actor_type": actor_type or (actor.kind if actor else "anonymous"),
            "actor_id": actor_id or (actor.audit_id if actor else None),
            "action": action,
            "outcome": outcome,
            "target_type": target_type,
            "target_id": target_id,
            "client_address": origin.client_address,
            "user_agent": (origin.user_agent or None) and origin.user_agent[:400],
            "request_id": origin.request_id,
            "details": orjson.dumps(details or {}).decode(),
        },
    )
    return int(result.scalar_one())


async def record_detached(factory: async_sessionmaker[AsyncSession], **event: Any) -> int:
    """Append one event in a transaction of its own: for failures whose request rolls back.

    Call it before the request's own transaction appends any event: that transaction holds
    the chain's head until it ends, and this one would wait for it.
    """
    async with scoped_transaction(factory, organization_id=event.get("organization_id")) as session:
        return await record(session, **event)


def events_query(organization_id: uuid.UUID, filters: AuditFilters) -> Select[AuditEvent]:
    statement = select(AuditEvent).where(AuditEvent.organization_id == organization_id)
    if filters.action:
        # `auth.login` matches `auth.login.succeeded` and `auth.login.failed`.
        statement = statement.where(
            (AuditEvent.action == filters.action)
            | AuditEvent.action.startswith(filters.action + ".", autoescape=True)
        )
    if filters.actor_id:
        statement = statement.where(AuditEvent.actor_id == filters.actor_id)
    if filters.outcome:
        statement = statement.where(AuditEvent.outcome == filters.outcome)
    if filters.target_id:
        statement = statement.where(AuditEvent.target_id == filters.target_id)
    if filters.since:
        statement = statement.where(AuditEvent.occurred_at >= filters.since)
    if filters.until:
        statement = statement.where(AuditEvent.occurred_at < filters.until)
    return statement


async def list_events(
    session: AsyncSession, *, actor: Actor, filters: AuditFilters, params: PageParams
) -> tuple[list[AuditEvent], str | None]:
    assert actor.organization_id is not None
    return await paginate(
        session,
        events_query(actor.organization_id, filters),
        order_by=(AuditEvent.seq,),
        params=params,
    )


# --- verification ---------------------------------------------------------------------------


def _field(value: str | None) -> str:
    return "-" if value is None else f"{len(value)}:{value}"


def canonical(row: dict[str, Any]) -> str:
    """The text an event's hash covers, as `kai_audit_append` builds it."""
    return ",".join(
        _field(value)
        for value in (
            str(row["seq"]),
            str(row["occurred_at_us"]),
            row["organization_id"],
            row["actor_type"],
            row["actor_id"],
            row["action"],
            row["outcome"],
            row["target_type"],
            row["target_id"],
            row["client_address"],
            row["user_agent"],
            row["request_id"],
            row["details"],
        )
    )


@dataclass(frozen=True)
class ChainReport:
    checked: int
    # The first event whose link does not hold, and why; None when the chain is whole.
    broken_at: int | None = None
    reason: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_at is None


_CHAIN_ROWS = text(
    "SELECT seq, (extract(epoch FROM occurred_at) * 1000000)::bigint AS occurred_at_us,"
    " organization_id::text AS organization_id, actor_type, actor_id, action, outcome,"
    " target_type, target_id, client_address, user_agent, request_id,"
    " details::text AS details, prev_hash, hash"
    " FROM audit_events WHERE seq > :after ORDER BY seq LIMIT :batch"
)


async def verify_chain(connection: AsyncConnection, *, batch: int = 5000) -> ChainReport:
    """Check every link of the whole log. Needs the owner's connection (it reads every row)."""
    previous_hash = GENESIS_HASH
    expected_seq = 1
    checked = 0
    while True:
        rows = (
            (await connection.execute(_CHAIN_ROWS, {"after": expected_seq - 1, "batch": batch}))
            .mappings()
            .all()
        )
        for row in rows:
            seq = row["seq"]
            if seq != expected_seq:
                return ChainReport(checked, expected_seq, f"event {expected_seq} is missing")
            if bytes(row["prev_hash"]) != previous_hash:
                return ChainReport(checked, seq, "does not link to the event before it")
            digest = hashlib.sha256(previous_hash + canonical(dict(row)).encode()).digest()
            if digest != bytes(row["hash"]):
                return ChainReport(checked, seq, "its content does not match its hash")
            previous_hash = digest
            expected_seq += 1
            checked += 1
        if len(rows) < batch:
            break
    head = (
        await connection.execute(text("SELECT last_seq, last_hash FROM audit_chain_head"))
    ).one()
    if head.last_seq != expected_seq - 1 or bytes(head.last_hash) != previous_hash:
        return ChainReport(checked, expected_seq, "events after this one were removed")
    return ChainReport(checked)
