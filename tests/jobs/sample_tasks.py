"""Tasks the job tests run; workers started by the tests import this module."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from kai.kit.jobs.queue import JobGivenUp, JobRun, PermanentJobError, job_task

EFFECTS_TABLE = "test_job_effects"


async def ensure_effects_table(connection: Any) -> None:
    await connection.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {EFFECTS_TABLE} "
            "(job_id uuid PRIMARY KEY, attempt int NOT NULL, note text)"
        )
    )


async def _record_effect(run: JobRun, note: str) -> None:
    # Idempotent by construction: one effect row per job, whatever the attempt.
    await run.session.execute(
        text(
            f"INSERT INTO {EFFECTS_TABLE} (job_id, attempt, note) VALUES (:job, :attempt, :note) "
            "ON CONFLICT (job_id) DO NOTHING"
        ),
        {"job": run.job_id, "attempt": run.attempt, "note": note},
    )


@job_task("tests.record", max_attempts=3)
async def record(run: JobRun) -> dict[str, Any]:
    await _record_effect(run, str(run.params.get("note", "")))
    return {"recorded": True, "attempt": run.attempt}


@job_task("tests.flaky", max_attempts=4)
async def flaky(run: JobRun) -> dict[str, Any]:
    """Fails until attempt `succeed_on`."""
    if run.attempt < int(run.params["succeed_on"]):
        raise RuntimeError(f"transient failure on attempt {run.attempt}")
    await _record_effect(run, "flaky")
    return {"attempt": run.attempt}


@job_task("tests.broken", max_attempts=5)
async def broken(run: JobRun) -> dict[str, Any]:
    if run.params.get("permanent"):
        raise PermanentJobError("the input can never work")
    raise ValueError("always fails")


# What a failing statement would show, were its text passed on to the job's owner.
STATEMENT_SECRET = "sk-not-for-the-job-owner"


@job_task("tests.bad_statement", max_attempts=2)
async def bad_statement(run: JobRun) -> dict[str, Any]:
    """A statement the database refuses: its error carries the SQL and its parameters."""
    await run.session.execute(text("SELECT length(:secret) / 0"), {"secret": STATEMENT_SECRET})
    return {}


@job_task("tests.slow", max_attempts=3)
async def slow(run: JobRun) -> dict[str, Any]:
    """Writes its effect, reports progress, then works for `seconds` before committing."""
    await _record_effect(run, "slow")
    steps = int(run.params.get("steps", 10))
    for step in range(steps):
        await run.report_progress(step, steps)
        await asyncio.sleep(float(run.params.get("seconds", 1)) / steps)
    await run.report_progress(steps, steps)
    return {"steps": steps}


@job_task("tests.own_transactions", max_attempts=1)
async def own_transactions(run: JobRun) -> dict[str, Any]:
    """Does its work in a short transaction of its own, as a long task (a training) does."""
    async with run.separate_transaction() as session:
        await session.execute(
            text(f"INSERT INTO {EFFECTS_TABLE} (job_id, attempt, note) VALUES (:job, :n, '')"),
            {"job": run.job_id, "n": run.attempt},
        )
    return {"attempt_transaction_open": run.session.in_transaction()}


# The attempt recorded for what a task's on_final_failure hook wrote.
GIVEN_UP = 0


async def _note_given_up(session: AsyncSession, given_up: JobGivenUp) -> None:
    how = "cancelled" if given_up.cancelled else "failed"
    await session.execute(
        text(
            f"INSERT INTO {EFFECTS_TABLE} (job_id, attempt, note) VALUES (:job, :attempt, :note)"
            " ON CONFLICT (job_id) DO NOTHING"
        ),
        {"job": given_up.job_id, "attempt": GIVEN_UP, "note": f"{how}: {given_up.reason}"},
    )


@job_task("tests.given_up", max_attempts=2, on_final_failure=_note_given_up)
async def given_up(run: JobRun) -> dict[str, Any]:
    """Fails as `mode` says (unexpectedly, permanently), or works until cancelled."""
    mode = run.params.get("mode")
    if mode == "permanent":
        raise PermanentJobError("the photo is not there")
    if mode == "work":
        for step in range(600):
            await run.report_progress(step + 1, 600)
            await asyncio.sleep(0.1)
        return {}
    raise ValueError("something unexpected")


@job_task("tests.whoami", max_attempts=1)
async def whoami(run: JobRun) -> dict[str, Any]:
    """Records its effect and says which process ran it, after a little work."""
    await _record_effect(run, "whoami")
    await asyncio.sleep(float(run.params.get("seconds", 0.2)))
    return {"pid": os.getpid()}
