"""Job entry points of identity: the account emails that requests queue."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kai.identity import emails
from kai.kit.email import create_email_sender
from kai.kit.jobs.queue import JobRun, job_task


@job_task(emails.SEND_EMAIL, queue=emails.EMAIL_QUEUE, max_attempts=emails.MAX_ATTEMPTS)
async def send_email(run: JobRun) -> dict[str, Any]:
    """One account email: written with a fresh link, sent, and never sent twice.

    A failed send raises, and the job is retried with backoff: each attempt mints a new link
    (the unsent one is void; links other jobs sent stay as they were). Once the mail server
    has taken the message, the job says so at once, outside the attempt's transaction: an
    attempt after that (the worker died before committing) finds it and sends nothing.
    """
    if "sent_at" in run.params:
        return {"sent": True}
    # Committed before sending: the link in the message must exist when it arrives.
    async with run.separate_transaction() as session:
        message = await emails.compose(
            session,
            settings=run.settings,
            params=run.params,
            organization_id=run.organization_id,
            now=datetime.now(UTC),
            job_id=run.job_id,
        )
    if message is None:
        # Nothing to send; the address is forgotten all the same.
        await run.remember({})
        return {"sent": False}
    await create_email_sender(run.settings.email, run.settings.outbox_dir).send(message)
    await run.remember({"sent_at": datetime.now(UTC).isoformat()})
    return {"sent": True}
