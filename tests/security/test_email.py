"""Account emails leave the request: a stalled mail server holds nothing but its own job, and
the answers (and the work behind them) do not tell which addresses have accounts.

Against a real SMTP server on loopback (aiosmtpd) that stalls or refuses; the app commits and a
real worker sends, as in production.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from kai.app import create_app
from kai.identity import emails
from kai.runtime import Runtime
from tests.conftest import worker_running
from tests.identity.factories import PASSWORD, create_user, login, member, unique_email
from tests.identity.outbox import outbox_messages
from tests.security.conftest import MailServer

pytestmark = pytest.mark.database

STRONG = "basalt staircase lantern 7"
# How long a test waits for the worker before it gives up (a guard against hanging, not a
# measure: nothing here asserts how long anything took).
PATIENCE_SECONDS = 30.0


async def eventually(check: Callable[[], Any], what: str) -> Any:
    """Poll `check` (sync or async) until it answers something truthy."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        await asyncio.sleep(0.05)


async def email_jobs(owner_engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every email job, as the database holds it (read past row-level security)."""
    async with owner_engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT id, organization_id, status, attempts, params, result, error,"
                " queue_job_id FROM jobs WHERE kind = :kind ORDER BY created_at, id"
            ),
            {"kind": emails.SEND_EMAIL},
        )
        return [dict(row._mapping) for row in rows]


async def all_sent(owner_engine: AsyncEngine) -> bool:
    jobs = await email_jobs(owner_engine)
    return bool(jobs) and all(job["status"] == "succeeded" for job in jobs)


def link_token(message: Any, link: str) -> str:
    found = re.search(rf"/{link}\?token=([A-Za-z0-9_-]+)", message.get_content())
    assert found, f"no {link} link in the message"
    return found.group(1)


async def test_a_stalled_mail_server_holds_no_request_and_its_mail_arrives_once_it_recovers(
    smtp_runtime: Runtime,
    smtp_client: AsyncClient,
    mail_server: MailServer,
    owner_engine: AsyncEngine,
) -> None:
    owner = await member(smtp_runtime, smtp_client)
    bystander = await create_user(smtp_runtime)
    guest = unique_email("guest")
    newcomer = unique_email("newcomer")
    mail_server.stall()
    async with worker_running(smtp_runtime):
        signed_up = await smtp_client.post(
            "/api/v1/auth/signup", json={"email": newcomer, "password": STRONG, "name": "Nia"}
        )
        assert signed_up.status_code == 202
        # The worker is inside a send now, held by the mail server.
        await eventually(mail_server.reached.is_set, "the worker to reach the mail server")

        # Meanwhile, audited actions everywhere else go on: logins, an invitation (which
        # queues an email of its own), a settings change, a reset request.
        for _ in range(3):
            await login(smtp_client, bystander.email)
        invited = await smtp_client.post(
            "/api/v1/invitations", json={"email": guest, "role": "member"}, headers=owner.headers
        )
        assert invited.status_code == 201
        renamed = await smtp_client.patch(
            "/api/v1/organization", json={"name": "Travertine Ltd"}, headers=owner.headers
        )
        assert renamed.status_code == 200
        reset = await smtp_client.post(
            "/api/v1/auth/password-reset", json={"email": bystander.email}
        )
        assert reset.status_code == 202
        log = await smtp_client.get("/api/v1/audit-events", headers=owner.headers)
        assert {"invitation.created", "organization.settings_changed"} <= {
            event["action"] for event in log.json()["items"]
        }
        # All of it answered while the mail server still held the first message.
        assert mail_server.stalled
        assert mail_server.received == []

        mail_server.recover()
        await eventually(lambda: all_sent(owner_engine), "every email job to succeed")

    # Each message arrived once, and the links in them work.
    assert len(mail_server.to(newcomer)) == 1
    assert len(mail_server.to(guest)) == 1
    assert len(mail_server.to(bystander.email)) == 1
    token = link_token(mail_server.to(newcomer)[0], "verify-email")
    verified = await smtp_client.post("/api/v1/auth/verify-email", json={"token": token})
    assert verified.status_code == 204
    await login(smtp_client, newcomer, STRONG)


async def test_a_refused_message_is_sent_again_later_and_arrives_once(
    smtp_runtime: Runtime,
    smtp_client: AsyncClient,
    mail_server: MailServer,
    owner_engine: AsyncEngine,
) -> None:
    user = await create_user(smtp_runtime)
    mail_server.refusals_left = 2  # "451 try again later", twice
    async with worker_running(smtp_runtime):
        asked = await smtp_client.post("/api/v1/auth/password-reset", json={"email": user.email})
        assert asked.status_code == 202
        await eventually(lambda: all_sent(owner_engine), "the reset email to go out")

    [job] = await email_jobs(owner_engine)
    assert job["attempts"] == 3
    assert mail_server.refused == 2
    [message] = mail_server.to(user.email)
    # Each refused attempt's link was void before the next was made: the one delivered works.
    token = link_token(message, "reset-password")
    reset = await smtp_client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": STRONG}
    )
    assert reset.status_code == 204
    await login(smtp_client, user.email, STRONG)


async def test_a_job_handed_to_another_worker_after_its_send_sends_nothing_more(
    smtp_runtime: Runtime,
    smtp_client: AsyncClient,
    mail_server: MailServer,
    owner_engine: AsyncEngine,
) -> None:
    user = await create_user(smtp_runtime, verified=False)
    async with worker_running(smtp_runtime):
        await smtp_client.post("/api/v1/auth/verify-email/resend", json={"email": user.email})
        await eventually(lambda: all_sent(owner_engine), "the confirmation to go out")
        assert len(mail_server.to(user.email)) == 1

        # The worker "dies" after the mail server took the message and before its attempt
        # committed: the job is left running, its queue entry held by no live worker. The
        # stalled-job recovery hands it back to the queue, and a worker runs it again.
        [job] = await email_jobs(owner_engine)
        async with owner_engine.begin() as connection:
            await connection.execute(
                text("UPDATE jobs SET status = 'running' WHERE id = :id"), {"id": job["id"]}
            )
            await connection.execute(
                text(
                    "UPDATE procrastinate_jobs SET status = 'doing', worker_id = NULL"
                    " WHERE id = :id"
                ),
                {"id": job["queue_job_id"]},
            )

        async def run_again() -> bool:
            [again] = await email_jobs(owner_engine)
            return again["attempts"] == 2 and again["status"] == "succeeded"

        await eventually(run_again, "the handed-back job to run again")

    assert len(mail_server.to(user.email)) == 1


async def test_no_link_is_kept_in_clear_and_addresses_are_forgotten_once_sent(
    smtp_runtime: Runtime,
    smtp_client: AsyncClient,
    mail_server: MailServer,
    owner_engine: AsyncEngine,
) -> None:
    owner = await member(smtp_runtime, smtp_client)
    guest = unique_email("guest")
    await smtp_client.post("/api/v1/auth/password-reset", json={"email": owner.user.email})
    await smtp_client.post(
        "/api/v1/invitations", json={"email": guest, "role": "member"}, headers=owner.headers
    )
    # Queued: what to send and to whom, no link yet.
    reset_job, invitation_job = await email_jobs(owner_engine)
    assert reset_job["params"] == {"message": "reset_password", "to": owner.user.email}
    assert invitation_job["params"].keys() == {"message", "invitation_id"}
    assert invitation_job["organization_id"] == owner.organization_id

    async with worker_running(smtp_runtime):
        await eventually(lambda: all_sent(owner_engine), "both emails to go out")

    tokens = [
        link_token(mail_server.to(owner.user.email)[0], "reset-password"),
        link_token(mail_server.to(guest)[0], "invitations/accept"),
    ]
    async with owner_engine.connect() as connection:
        stored = (
            await connection.execute(
                text(
                    "SELECT coalesce(string_agg(concat_ws(' ', params::text, result::text, error),"
                    " ' '), '') FROM jobs"
                )
            )
        ).scalar_one() + (
            await connection.execute(
                text("SELECT coalesce(string_agg(args::text, ' '), '') FROM procrastinate_jobs")
            )
        ).scalar_one()
    for token in tokens:
        assert token not in stored
    assert owner.user.email not in stored
    assert guest not in stored
    for job in await email_jobs(owner_engine):
        assert set(job["params"]) == {"sent_at"}


async def _what_a_request_wrote(
    owner_engine: AsyncEngine, client: AsyncClient, path: str, body: dict[str, Any]
) -> tuple[int, Any, dict[str, Any]]:
    """The answer to one request, and the rows it added, by table (email jobs by message)."""
    counts = (
        "SELECT (SELECT count(*) FROM users) AS users,"
        " (SELECT count(*) FROM user_tokens) AS user_tokens,"
        " (SELECT count(*) FROM audit_events) AS audit_events,"
        " (SELECT count(*) FROM procrastinate_jobs) AS queued"
    )
    async with owner_engine.connect() as connection:
        before = dict((await connection.execute(text(counts))).one()._mapping)
        jobs_before = len(await email_jobs(owner_engine))
    response = await client.post(path, json=body)
    async with owner_engine.connect() as connection:
        after = dict((await connection.execute(text(counts))).one()._mapping)
    new_jobs = (await email_jobs(owner_engine))[jobs_before:]
    written: dict[str, Any] = {table: after[table] - before[table] for table in before}
    written["email_jobs"] = [
        (job["organization_id"], sorted(job["params"]), job["params"].get("to")) for job in new_jobs
    ]
    return response.status_code, response.json(), written


async def test_reset_and_resend_do_the_same_work_whoever_has_the_address(
    committed_runtime: Runtime, committed_client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    verified = await create_user(committed_runtime)
    unverified = await create_user(committed_runtime, verified=False)
    disabled = await create_user(committed_runtime)
    async with owner_engine.begin() as connection:
        await connection.execute(
            text("UPDATE users SET disabled = true WHERE id = :id"), {"id": disabled.id}
        )
    addresses = [verified.email, unverified.email, disabled.email, unique_email("nobody")]
    for path in ("/api/v1/auth/password-reset", "/api/v1/auth/verify-email/resend"):
        seen = []
        for address in addresses:
            status, body, written = await _what_a_request_wrote(
                owner_engine, committed_client, path, {"email": address}
            )
            # One email job naming the address as asked, nothing else: no token minted, no
            # account looked at; the job decides later whether there is anything to send.
            assert written["email_jobs"] == [(None, ["message", "to"], address)]
            written["email_jobs"] = len(written["email_jobs"])
            seen.append((status, body, written))
        assert all(answer == seen[0] for answer in seen), seen
        assert seen[0][0] == 202
        assert seen[0][2] == {
            "users": 0,
            "user_tokens": 0,
            "audit_events": 0,
            "queued": 1,
            "email_jobs": 1,
        }

    # What the jobs then sent: a link to the accounts that can use one, nothing to the others.
    assert len(await outbox_messages(committed_runtime, verified.email)) == 1  # the reset
    assert len(await outbox_messages(committed_runtime, unverified.email)) == 2  # reset, confirm
    assert await outbox_messages(committed_runtime, disabled.email) == []
    assert await outbox_messages(committed_runtime, addresses[3]) == []


@pytest.mark.parametrize(
    ("organization", "audit_events"),
    [({}, 1), ({"organization_name": "Nia's Tiles"}, 2)],
    ids=["alone", "with-an-organization"],
)
async def test_signing_up_with_a_taken_address_does_the_work_of_a_new_sign_up(
    committed_runtime: Runtime,
    committed_client: AsyncClient,
    owner_engine: AsyncEngine,
    organization: dict[str, str],
    audit_events: int,
) -> None:
    taken = await create_user(committed_runtime)
    answers = []
    for address in (taken.email, unique_email("fresh")):
        status, body, written = await _what_a_request_wrote(
            owner_engine,
            committed_client,
            "/api/v1/auth/signup",
            {"email": address, "password": STRONG, "name": "Nia Stone", **organization},
        )
        # Both: one platform email job for the address, as many audit events (so both wait
        # for the audit chain alike: a new organization is one more), nothing sent in the
        # request.
        assert written["email_jobs"] == [(None, ["message", "to"], address)]
        assert written["audit_events"] == audit_events
        assert written["user_tokens"] == 0
        answers.append((status, body))
    assert answers[0] == answers[1]
    assert answers[0][0] == 202
    # The owner of the taken address is told; the account is unchanged.
    [notice] = await outbox_messages(committed_runtime, taken.email)
    assert "tried to sign up" in notice["Subject"]
    await login(committed_client, taken.email, PASSWORD)


async def test_the_embedded_outbox_gets_its_mail_through_the_worker(
    committed_runtime: Runtime, committed_client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    address = unique_email("embedded")
    async with worker_running(committed_runtime):
        signed_up = await committed_client.post(
            "/api/v1/auth/signup", json={"email": address, "password": STRONG, "name": "Nia"}
        )
        assert signed_up.status_code == 202
        await eventually(lambda: all_sent(owner_engine), "the confirmation to be written")
    [message] = await outbox_messages(committed_runtime, address)
    token = link_token(message, "verify-email")
    verified = await committed_client.post("/api/v1/auth/verify-email", json={"token": token})
    assert verified.status_code == 204


async def test_an_invitation_withdrawn_before_its_email_went_out_is_never_sent(
    smtp_runtime: Runtime,
    smtp_client: AsyncClient,
    mail_server: MailServer,
    owner_engine: AsyncEngine,
) -> None:
    owner = await member(smtp_runtime, smtp_client)
    guest = unique_email("guest")
    invited = await smtp_client.post(
        "/api/v1/invitations", json={"email": guest, "role": "member"}, headers=owner.headers
    )
    withdrawn = await smtp_client.delete(
        f"/api/v1/invitations/{invited.json()['id']}", headers=owner.headers
    )
    assert withdrawn.status_code == 204
    async with worker_running(smtp_runtime):
        await eventually(lambda: all_sent(owner_engine), "the invitation job to finish")
    [job] = await email_jobs(owner_engine)
    assert job["result"] == {"sent": False}
    assert mail_server.to(guest) == []
    assert uuid.UUID(str(job["organization_id"])) == owner.organization_id


async def test_a_flood_of_reset_requests_sends_one_email_and_voids_no_link(
    smtp_runtime: Runtime, mail_server: MailServer, owner_engine: AsyncEngine
) -> None:
    # Anyone may ask for anyone's reset link, from as many client addresses as they like: each
    # request used to send a new link and void the one before, so the owner's inbox filled
    # and the link they were about to use stopped working.
    victim = await create_user(smtp_runtime)
    nobody = unique_email("nobody")
    app = create_app(smtp_runtime.settings, runtime=smtp_runtime)

    async def ask(address: str, number: int) -> tuple[int, Any]:
        # A client address of its own each time: the per-client limit is not what stops it.
        transport = ASGITransport(
            app=app, raise_app_exceptions=False, client=(f"198.51.100.{number}", 40000)
        )
        async with AsyncClient(transport=transport, base_url="http://kai.test") as client:
            answer = await client.post("/api/v1/auth/password-reset", json={"email": address})
        return answer.status_code, answer.json()

    async with worker_running(smtp_runtime):
        first = await ask(victim.email, 0)
        [message] = await eventually(lambda: mail_server.to(victim.email), "the reset email")
        link = link_token(message, "reset-password")
        answers = [first] + [await ask(victim.email, number) for number in range(1, 20)]
        strangers = [await ask(nobody, number) for number in range(20, 40)]
        await eventually(lambda: all_sent(owner_engine), "every queued email job to finish")

    # Every answer alike, whether or not the address has an account, dropped or not.
    assert {(status, str(body)) for status, body in answers + strangers} == {(202, str(first[1]))}
    # Past the address's budget nothing more was even queued; of what was, one email left.
    policy = smtp_runtime.settings.rate_limits.email_address
    jobs = await email_jobs(owner_engine)
    assert len(jobs) <= 2 * (policy.burst or policy.limit)
    assert len(mail_server.to(victim.email)) == 1
    assert mail_server.to(nobody) == []

    # The link in the inbox still works.
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://kai.test") as client:
        reset = await client.post(
            "/api/v1/auth/password-reset/confirm", json={"token": link, "password": STRONG}
        )
        assert reset.status_code == 204, reset.text
        await login(client, victim.email, STRONG)
