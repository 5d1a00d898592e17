"""`kai serve --workers N`: N server processes on one port, sharing what one process keeps.

The parent holds the database (the embedded server is started once, before this), binds the
listeners and starts the N processes under uvicorn's supervisor, which replaces one that dies.
Each builds the app from the environment set here (`kai.app.served_app`):

- the running database's URL: no second embedded server, no migrations;
- a rate-limit table in a file all of them map (`kai.kit.shared_ratelimit`), unless Redis
  holds the buckets: a caller gets the same budget from N processes as from one;
- metrics written to files every process shares, so that `/metrics`, whichever process
  answers, counts the requests and jobs of all of them;
- whether they run jobs: each then runs a job worker, and the queue gives each job to one.

What else a process keeps in memory is either the same in all (the signing keys, from the
data dir's secret or `KAI_SECRET_KEY`), or checked against the database before use (the
category tree by its version), or never changes once read (a model version's recognizer).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import structlog
from uvicorn.supervisors import Multiprocess

from kai.config import Settings
from kai.kit.crypto import master_key
from kai.kit.shared_ratelimit import create_table
from kai.ops.listeners import bound_socket, server_config

log = structlog.get_logger(__name__)

# Read by `kai.app.served_app` in each process: "1" when the processes run jobs too.
SERVE_JOBS_ENV = "KAI_SERVE_RUNS_JOBS"


def serve_processes(
    settings: Settings, database_url: str, *, processes: int, run_jobs: bool
) -> None:
    """Serve with `processes` processes until SIGINT or SIGTERM, then stop them all."""
    # Made here, once: N processes making the data dir's secret at once could each keep
    # another, and sign tokens the others refuse.
    master_key(
        settings.secret_key.get_secret_value() if settings.secret_key else None,
        settings.data_dir,
    )
    with tempfile.TemporaryDirectory(prefix="kai-serve-") as shared:
        environment = {
            "KAI_DATABASE_URL": database_url,
            "KAI_HOST": settings.host,
            "KAI_PORT": str(settings.port),
            "KAI_DATA_DIR": str(settings.data_dir),
            SERVE_JOBS_ENV: "1" if run_jobs else "0",
            "PROMETHEUS_MULTIPROC_DIR": str(Path(shared) / "metrics"),
        }
        (Path(shared) / "metrics").mkdir()
        if settings.redis_url is None:
            table = Path(shared) / "rate-limits"
            create_table(table)
            environment["KAI_RATE_LIMITS__SHARED_TABLE"] = str(table)
        config = server_config(
            "kai.app:served_app", settings.host, settings.port, factory=True, workers=processes
        )
        sockets = [config.bind_socket()]
        try:
            if settings.metrics.port is not None:
                scrape = bound_socket(settings.metrics.host, settings.metrics.port)
                sockets.append(scrape)
                # The port bound (the setting may be 0): how each process tells the listener.
                environment["KAI_METRICS__PORT"] = str(scrape.getsockname()[1])
            os.environ.update(environment)
            log.info(
                "serve.processes",
                processes=processes,
                jobs=run_jobs,
                rate_limits="redis" if settings.redis_url else "shared table",
            )
            Multiprocess(config, sockets=sockets).run()
        finally:
            for sock in sockets:
                sock.close()
