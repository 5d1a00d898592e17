"""The account emails of tests without a worker: their queued jobs, run here, and the outbox."""

from __future__ import annotations

import email
import email.message
import email.policy
import re
import uuid

from sqlalchemy import select

from kai.identity import emails
from kai.kit.db import act_for
from kai.kit.email import create_email_sender
from kai.kit.jobs.models import Job, JobStatus
from kai.runtime import Runtime


async def deliver_emails(runtime: Runtime, *, organization_id: uuid.UUID | None = None) -> int:
    """Send what the queued email jobs of the organization (None: the platform's) stand for,
    by the function their task calls, at the runtime's time; the jobs are marked done."""
    sender = create_email_sender(runtime.settings.email, runtime.settings.outbox_dir)
    sent = 0
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=organization_id)
        queued = await session.scalars(
            select(Job)
            .where(Job.kind == emails.SEND_EMAIL, Job.status == JobStatus.QUEUED)
            .order_by(Job.created_at, Job.id)
        )
        for job in queued.all():
            message = await emails.compose(
                session,
                settings=runtime.settings,
                params=job.params,
                organization_id=job.organization_id,
                now=runtime.clock(),
                job_id=job.id,
            )
            if message is not None:
                await sender.send(message)
                sent += 1
            job.status = JobStatus.SUCCEEDED
        await session.flush()
    return sent


async def outbox_messages(
    runtime: Runtime, to: str, *, organization_id: uuid.UUID | None = None
) -> list[email.message.EmailMessage]:
    """Every message written to `to`, oldest first, once the queued ones are sent."""
    await deliver_emails(runtime)
    if organization_id is not None:
        await deliver_emails(runtime, organization_id=organization_id)
    messages = []
    for path in sorted(runtime.settings.outbox_dir.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == to:
            assert isinstance(message, email.message.EmailMessage)
            messages.append(message)
    return messages


async def latest_token(
    runtime: Runtime, to: str, link: str, *, organization_id: uuid.UUID | None = None
) -> str:
    """The token of the newest emailed link of kind `link` (verify-email, reset-password...)."""
    for message in reversed(await outbox_messages(runtime, to, organization_id=organization_id)):
        body = message.get_content()
        found = re.search(rf"/{link}\?token=([A-Za-z0-9_-]+)", body)
        if found:
            return found.group(1)
    raise AssertionError(f"no {link} link was sent to {to}")
