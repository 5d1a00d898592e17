"""A heavy task the fairness tests queue; workers started by the tests import this module."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from kai.kit.jobs.queue import JobRun, job_task

RUNS_TABLE = "test_heavy_runs"
RUNS_SEQUENCE = "test_heavy_runs_order"

# Set by a test: every `tests.heavy_hold` job waits for it once started (None: no waiting).
release: asyncio.Event | None = None


async def ensure_runs_table(connection: Any) -> None:
    await connection.execute(text(f"CREATE SEQUENCE IF NOT EXISTS {RUNS_SEQUENCE}"))
    await connection.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (job_id uuid PRIMARY KEY,"
            " organization_id uuid, note text NOT NULL, started bigint NOT NULL, finished bigint)"
        )
    )


@job_task("tests.heavy_hold", max_attempts=1, heavy=True)
async def hold(run: JobRun) -> dict[str, Any]:
    """Records its start (committed at once, for the test to see), holds its worker until the
    test releases it, then records its end: start and end numbers share one sequence."""
    async with run.separate_transaction() as session:
        await session.execute(
            text(
                f"INSERT INTO {RUNS_TABLE} (job_id, organization_id, note, started)"
                f" VALUES (:job, :organization, :note, nextval('{RUNS_SEQUENCE}'))"
            ),
            {"job": run.job_id, "organization": run.organization_id, "note": run.params["note"]},
        )
    if release is not None:
        await release.wait()
    async with run.separate_transaction() as session:
        await session.execute(
            text(
                f"UPDATE {RUNS_TABLE} SET finished = nextval('{RUNS_SEQUENCE}') WHERE job_id = :job"
            ),
            {"job": run.job_id},
        )
    return {}
