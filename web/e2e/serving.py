"""`kai serve` as a user starts it, for the end-to-end tests to drive."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from kai.migrations import runner
from tests.conftest import fresh_database
from web.e2e.support import REPO_ROOT, WEB_BUILD, Server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(
    *,
    data_dir: Path,
    server_url: str,
    database: str,
    model_dir: Path,
    host_name: str = "127.0.0.1",
    settings: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """`kai serve` on a free loopback port with a fresh database `database`, until the end.

    People reach it as `http://<host_name>:<port>`, which is also the address its emails and
    single sign-on redirects name. `settings` are further `KAI_...` variables of its
    environment.
    """
    if not (WEB_BUILD / "index.html").is_file():
        pytest.fail(
            "The web app is not built: run `make test` (or `npm ci && npm run build` in web/)."
        )
    port = _free_port()
    url = f"http://{host_name}:{port}"
    with fresh_database(server_url, database) as database_url:
        runner.upgrade(database_url)
        env = {key: value for key, value in os.environ.items() if not key.startswith("KAI_")}
        env.update(
            {
                # This checkout's code, whichever checkout the virtual environment installed.
                "PYTHONPATH": str(REPO_ROOT / "src"),
                "KAI_DATA_DIR": str(data_dir),
                "KAI_DATABASE_URL": database_url,
                "KAI_WEB_DIR": str(WEB_BUILD),
                "KAI_AUTH__PUBLIC_URL": url,
                "KAI_LOG_LEVEL": "warning",
                "KAI_ENVIRONMENT": "test",
                "KAI_VISION__MODEL_DIR": str(model_dir),
                # Cheap hashing keeps the flows quick; the production cost is tested elsewhere.
                "KAI_AUTH__PASSWORD_HASH__MEMORY_KIB": "1024",
                "KAI_AUTH__PASSWORD_HASH__ITERATIONS": "1",
                "KAI_AUTH__PASSWORD_HASH__PARALLELISM": "1",
                # Every test signs people up from one address: the per-address limits would
                # stop the suite, not a stranger.
                "KAI_RATE_LIMITS__ENABLED": "false",
                **(settings or {}),
            }
        )
        log = data_dir / "serve.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "kai", "serve", "--port", str(port)],
                env=env,
                cwd=data_dir,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        server = Server(url=url, data_dir=data_dir, log=log)
        try:
            _wait_ready(server, process)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)


def _wait_ready(server: Server, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"kai serve exited:\n{server.log.read_text(errors='replace')[-4000:]}"
            )
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(
        f"kai serve never became ready:\n{server.log.read_text(errors='replace')[-4000:]}"
    )
