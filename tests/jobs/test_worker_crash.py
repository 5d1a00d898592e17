"""A worker killed mid-job: the job is handed to another worker and done exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kai.kit.jobs.models import JobStatus
from kai.runtime import Runtime
from tests.conftest import REPO_ROOT
from tests.jobs import sample_tasks
from tests.jobs.conftest import effects, enqueue, load_job, wait_for

pytestmark = pytest.mark.database


@pytest.fixture
def worker_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "KAI_DATABASE_URL": database_url,
        "KAI_DATA_DIR": str(tmp_path / "data"),
        "KAI_ACCESS_LOG": "false",
        "KAI_JOBS__IMPORT_PATHS": json.dumps(["tests.jobs.sample_tasks"]),
        "KAI_JOBS__HEARTBEAT_SECONDS": "0.5",
        "KAI_JOBS__STALLED_AFTER_SECONDS": "2",
        "KAI_JOBS__STALLED_CHECK_SECONDS": "0.5",
    }


@pytest.fixture
def spawn_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[object]:
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(name: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as log:  # the child keeps its own copy
            process = subprocess.Popen(
                [sys.executable, "-m", "kai", "worker", "--concurrency", "1"],
                env=worker_env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)
        return process

    yield spawn
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


async def test_a_job_survives_its_worker_being_killed_and_takes_effect_once(
    jobs_runtime: Runtime, spawn_worker: object
) -> None:
    job_id = await enqueue(jobs_runtime, sample_tasks.slow, seconds=3, steps=30)
    first = spawn_worker("first")  # type: ignore[operator]
    await wait_for(
        jobs_runtime, job_id, (JobStatus.RUNNING,), condition=lambda j: j.progress_done > 0
    )

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    orphaned = await load_job(jobs_runtime, job_id)
    assert orphaned.status == JobStatus.RUNNING
    assert orphaned.attempts == 1
    # The killed attempt's writes died with its transaction.
    assert await effects(jobs_runtime, job_id) == []

    second = spawn_worker("second")  # type: ignore[operator]
    done = await wait_for(jobs_runtime, job_id, (JobStatus.SUCCEEDED, JobStatus.FAILED))

    assert done.status == JobStatus.SUCCEEDED
    assert done.attempts == 2
    assert await effects(jobs_runtime, job_id) == [(2, "slow")]

    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=20) == 0
