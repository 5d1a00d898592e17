"""MLflow in step with KAI: each trained version is a run in the organization's experiment and
a registered model version, `champion` follows activation, and `kai mlflow ui` shows them.
Against the real store: MLflow's own database beside the test database, and its files in
KAI's object store."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx import AsyncClient
from mlflow.tracking import MlflowClient
from PIL import Image

from kai.config import Settings
from kai.kit.db import scoped_transaction
from kai.ml import registry
from kai.ml.models import ModelVersion
from kai.runtime import Runtime
from tests.identity.factories import Member, member
from tests.recognition.test_recognitions import _catalog, _finished, _train

pytestmark = pytest.mark.database

SYNC = "ml.sync_registry"


async def _synced(client: AsyncClient, owner: Member, count: int) -> None:
    jobs = await _finished(client, owner, SYNC, count)
    assert all(job["status"] == "succeeded" for job in jobs), jobs


def _client(settings: Settings) -> MlflowClient:
    mlflow, _ = registry.client_of(settings)
    return mlflow


async def test_each_training_is_a_run_and_a_registered_version_and_champion_follows_activation(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    runtime, client = committed_runtime, committed_client
    owner = await member(runtime, client)
    await _catalog(client, owner)
    first = await _train(client, owner)
    await _synced(client, owner, 1)
    settings = runtime.settings
    mlflow = _client(settings)

    async with scoped_transaction(
        runtime.session_factory, organization_id=owner.organization_id
    ) as session:
        stored = await session.get(ModelVersion, uuid.UUID(first["id"]))
        assert stored is not None
        assert stored.mlflow_run_id is not None
        assert stored.registered_version == 1
        assert stored.dataset_key is not None
        assert stored.artifact_key is not None
        dataset = await runtime.storage.read(stored.dataset_key)
        heads = await runtime.storage.read(stored.artifact_key)
    run = mlflow.get_run(stored.mlflow_run_id)

    # What produced it, how it scored, and what it is.
    experiment = mlflow.get_experiment(run.info.experiment_id)
    assert experiment.name == f"kai/{owner.organization_id}"
    assert run.info.run_name == "version 1"
    assert run.info.status == "FINISHED"
    assert run.data.tags["kai.model_version_id"] == first["id"]
    params = run.data.params
    assert params["backbones"] == "efficientnet-lite0,handcrafted"
    assert params["label_by"] == "category"
    assert params["preparation"] == "plain"
    assert params["dataset_sha256"] == hashlib.sha256(dataset).hexdigest()
    for backbone in first["backbones"]:
        assert params[f"fingerprint.{backbone['name']}"] == backbone["fingerprint"]
    assert run.data.metrics["accuracy"] == pytest.approx(first["metrics"]["accuracy"])
    assert run.data.metrics["macro_f1"] == pytest.approx(first["metrics"]["macro_f1"])
    files = {artifact.path for artifact in mlflow.list_artifacts(run.info.run_id)}
    assert {"heads", "dataset.json", "metrics.json", "per_class.json"} <= files
    assert {"confusion_matrix.png", "per_class.png"} <= files
    with tempfile.TemporaryDirectory() as folder:
        local = Path(mlflow.download_artifacts(run.info.run_id, "", folder))
        assert (local / "heads" / "recognizer.npz").read_bytes() == heads
        with Image.open(io.BytesIO((local / "confusion_matrix.png").read_bytes())) as picture:
            assert picture.format == "PNG"
        per_class = json.loads((local / "per_class.json").read_text())
        assert {row["label"] for row in per_class} == {label["label"] for label in first["labels"]}
    # The run's files are in KAI's object store.
    assert run.info.artifact_uri.startswith(registry.store_of(settings).artifact_root)
    name = registry.model_name(owner.organization_id)
    registered = mlflow.get_model_version(name, "1")
    assert registered.run_id == run.info.run_id
    assert registry.aliases_of(settings, owner.organization_id) == {"champion": 1}

    # Trained but not made active: registered, and champion stays where it was.
    second = await _train(client, owner, runs=2, activate=False)
    await _synced(client, owner, 2)
    assert registry.aliases_of(settings, owner.organization_id) == {"champion": 1}
    assert len(mlflow.search_model_versions(f"name = '{name}'")) == 2

    # Promoted, then rolled back: champion follows KAI's activation each time.
    for syncs, (version, registered_number) in enumerate(((second, 2), (first, 1)), start=3):
        activated = await client.post(
            f"/api/v1/models/{version['id']}/activate", headers=owner.headers
        )
        assert activated.status_code == 200, activated.text
        await _synced(client, owner, syncs)
        assert registry.aliases_of(settings, owner.organization_id) == {
            "champion": registered_number
        }
    # Run again, the job changes nothing: one run and one registered version a model version.
    runs = mlflow.search_runs([run.info.experiment_id])
    assert len(runs) == 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_kai_mlflow_ui_serves_the_platforms_store(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    runtime, client = committed_runtime, committed_client
    owner = await member(runtime, client)
    await _catalog(client, owner)
    await _train(client, owner)
    await _synced(client, owner, 1)
    store = registry.store_of(runtime.settings)
    port = _free_port()
    environment = {
        **os.environ,
        "KAI_ML__MLFLOW_TRACKING_URI": store.tracking_uri,
        "KAI_ML__MLFLOW_ARTIFACT_ROOT": store.artifact_root,
        "KAI_DATA_DIR": str(runtime.settings.data_dir),
    }
    found = await asyncio.to_thread(
        _asked_of_the_ui, environment, port, registry.model_name(owner.organization_id)
    )
    assert found["registered_model"]["aliases"] == [{"alias": "champion", "version": "1"}]


def _asked_of_the_ui(environment: dict[str, str], port: int, name: str) -> dict[str, Any]:
    """`kai mlflow ui` started, asked for the registered model through its REST API, stopped."""
    server = subprocess.Popen(
        [sys.executable, "-m", "kai", "mlflow", "ui", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        return _registered_model(port, name)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def _registered_model(port: int, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        try:
            answer = httpx.get(
                f"http://127.0.0.1:{port}/api/2.0/mlflow/registered-models/get",
                params={"name": name},
                timeout=5,
            )
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
            continue
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found


def test_the_api_and_the_workers_tasks_import_no_mlflow() -> None:
    """MLflow loads only where a sync job runs or `kai mlflow` is called: never for a request."""
    code = (
        "import sys\n"
        "import kai.app, kai.ml.endpoints, kai.ml.tasks, kai.recognition.endpoints\n"
        "from kai.runtime import DOMAIN_TASK_MODULES\n"
        "import importlib\n"
        "for name in DOMAIN_TASK_MODULES: importlib.import_module(name)\n"
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] == 'mlflow')\n"
        "print(loaded[:5])\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
