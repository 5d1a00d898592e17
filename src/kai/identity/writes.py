"""When a session or API key last wrote, kept where there is a read replica: its reads then
go to the primary until the replica holds that write (`kai.deps.ReadSession`), so that it
sees its own writes. Writes made elsewhere on its behalf (a job's) are not counted."""

from __future__ import annotations

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from kai.deps import WRITER_INFO
from kai.identity.actor import Actor

# Only a transaction that wrote has a transaction id: one that read only leaves it alone.
_SESSION_WROTE = text(
    "UPDATE auth_sessions SET last_write_at = clock_timestamp()"
    " WHERE id = :id AND txid_current_if_assigned() IS NOT NULL"
)
_KEY_WROTE = text(
    "UPDATE api_keys SET last_write_at = clock_timestamp()"
    " WHERE id = :id AND txid_current_if_assigned() IS NOT NULL"
)


@event.listens_for(Session, "before_commit")
def _record_write(session: Session) -> None:
    actor = session.info.get(WRITER_INFO)
    # A savepoint's release is no commit: its writes are recorded when the transaction is.
    # (Each transaction a request commits is: `release_connection` commits more than one.)
    if not isinstance(actor, Actor) or session.in_nested_transaction():
        return
    # What the unit of work still holds is written now, not after this check.
    session.flush()
    if actor.session_id is not None:
        session.execute(_SESSION_WROTE, {"id": actor.session_id})
    elif actor.api_key_id is not None:
        session.execute(_KEY_WROTE, {"id": actor.api_key_id})
