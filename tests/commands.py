"""Running the `kai` command as a user does, against the test database."""

from __future__ import annotations

import os
import subprocess
import sys

from kai.config import Settings


def run_kai(
    settings: Settings, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`kai ARGS` in a subprocess, configured only by environment variables, like a terminal."""
    assert settings.database_url is not None
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAI_")}
    env.update(
        KAI_DATABASE_URL=settings.database_url.get_secret_value(),
        KAI_DATA_DIR=str(settings.data_dir),
        KAI_VISION__MODEL_DIR=str(settings.model_dir),
        # Logged at the default level: what a command logs must never reach its answer.
        KAI_LOG_LEVEL="info",
    )
    return subprocess.run(
        [sys.executable, "-m", "kai", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
