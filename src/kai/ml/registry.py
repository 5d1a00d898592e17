"""Experiment tracking and the model registry in MLflow, for the platform's operators.

Every trained model version is an MLflow run in its organization's experiment (`kai/<id>`):
its parameters (labelling, backbones and their fingerprints, preparation, votes), the hash of
its dataset snapshot, its metrics, the per-class table, the confusion matrix and per-class
figures as pictures, and the heads as the model artifact. The run is registered as a version
of the organization's model (`kai-<id>`), whose aliases `champion` (the active version) and
`challenger` follow KAI's own activation: KAI's tables decide, MLflow records.

The store is a database of its own beside KAI's (`<database>_mlflow`, made when first
needed; the embedded default's is in the bundled PostgreSQL), the artifacts are in KAI's
object store (`mlflow/` under the local root, or the S3 bucket's prefix). Only jobs and the
`kai mlflow` command import this module: MLflow is never on the API's request path.

Blocking (MLflow's client is synchronous): call from a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from psycopg import sql
from sqlalchemy.engine import make_url

from kai.config import Settings
from kai.kit.pgembed import DATABASE_NAME, EmbeddedPostgres
from kai.ml import plots

CHAMPION = "champion"
CHALLENGER = "challenger"
# MLflow's limits on one logged value and one batch.
PARAM_VALUE_LENGTH = 6000
PARAMS_PER_BATCH = 100

_made: set[str] = set()
_making = threading.Lock()


@dataclass(frozen=True)
class Store:
    """Where MLflow keeps runs and the registry (a SQLAlchemy URL), and their files."""

    tracking_uri: str
    artifact_root: str


@dataclass(frozen=True)
class TrainedVersion:
    """What a run records of a ready model version."""

    id: uuid.UUID
    organization_id: uuid.UUID
    number: int
    options: dict[str, Any]
    labelling: dict[str, Any]
    labels: list[dict[str, Any]]
    backbones: list[dict[str, Any]]
    metrics: dict[str, Any]
    temperature: float
    preparation: str
    created_at: datetime
    trained_at: datetime | None
    heads: bytes
    dataset: bytes


@dataclass(frozen=True)
class Tracked:
    run_id: str
    registered_version: int


def store_of(settings: Settings) -> Store:
    """The MLflow store the settings name, or the one beside KAI's database."""
    if settings.ml.mlflow_tracking_uri is not None:
        tracking = settings.ml.mlflow_tracking_uri.get_secret_value()
    elif settings.database_url is None:
        # The embedded default: a database of its own in the bundled server.
        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        tracking = embedded.url(database=f"{DATABASE_NAME}_mlflow")
    else:
        owner = settings.database.migration_url or settings.database_url
        url = make_url(owner.get_secret_value())
        tracking = url.set(database=f"{url.database}_mlflow").render_as_string(hide_password=False)
    if settings.ml.mlflow_artifact_root:
        artifacts = settings.ml.mlflow_artifact_root.rstrip("/")
    elif settings.storage.backend == "s3":
        s3 = settings.storage.s3
        artifacts = f"s3://{s3.bucket}/{s3.prefix}mlflow"
    else:
        artifacts = (settings.local_storage_root / "mlflow").absolute().as_uri()
    return Store(tracking_uri=tracking, artifact_root=artifacts)


def client_of(settings: Settings) -> tuple[MlflowClient, Store]:
    """A client of the settings' store, its database made first if it is not there yet."""
    store = store_of(settings)
    # MLflow's store keeps a pool of connections per engine, held idle for the life of the
    # process: a sync job now and then would pin them in every worker. Each of its calls opens
    # and closes its own instead.
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
    _make_database(store.tracking_uri)
    if settings.storage.backend == "s3" and not settings.ml.mlflow_artifact_root:
        _s3_environment(settings)
    return MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri), store


def _make_database(tracking_uri: str) -> None:
    """Create the store's PostgreSQL database unless it exists (once a process)."""
    if tracking_uri in _made or not tracking_uri.startswith("postgresql"):
        return
    with _making:
        if tracking_uri in _made:
            return
        url = make_url(tracking_uri)
        name = url.database or "kai_mlflow"
        admin = url.set(drivername="postgresql", database="postgres")
        with psycopg.connect(
            admin.render_as_string(hide_password=False), autocommit=True
        ) as connection:
            found = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if found is None:
                # Made meanwhile by another process: as good.
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        _made.add(tracking_uri)


def _s3_environment(settings: Settings) -> None:
    """MLflow's S3 artifacts reach KAI's bucket as KAI's storage does (its client reads the
    environment; what an operator set there already wins)."""
    s3 = settings.storage.s3
    wanted = {
        "MLFLOW_S3_ENDPOINT_URL": s3.endpoint_url,
        "AWS_DEFAULT_REGION": s3.region,
        "AWS_ACCESS_KEY_ID": s3.access_key_id.get_secret_value() if s3.access_key_id else None,
        "AWS_SECRET_ACCESS_KEY": (
            s3.secret_access_key.get_secret_value() if s3.secret_access_key else None
        ),
    }
    for name, value in wanted.items():
        if value and name not in os.environ:
            os.environ[name] = value


def experiment_name(organization_id: uuid.UUID) -> str:
    return f"kai/{organization_id}"


def model_name(organization_id: uuid.UUID) -> str:
    return f"kai-{organization_id}"


def _experiment(client: MlflowClient, store: Store, organization_id: uuid.UUID) -> str:
    name = experiment_name(organization_id)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(
            client.create_experiment(
                name,
                artifact_location=f"{store.artifact_root}/{organization_id}",
                tags={"kai.organization_id": str(organization_id)},
            )
        )
    except MlflowException:
        # Made meanwhile by another worker.
        again = client.get_experiment_by_name(name)
        if again is None:
            raise
        return str(again.experiment_id)


def _params(version: TrainedVersion, dataset_sha256: str) -> list[Param]:
    values: dict[str, Any] = {
        "label_by": version.labelling.get("label_by"),
        "category_level": version.labelling.get("category_level"),
        "backbones": ",".join(entry["name"] for entry in version.backbones),
        "test_time_augmentation": bool(version.options.get("test_time_augmentation")),
        "preparation": version.preparation,
        "labels": len(version.labels),
        "photos": version.metrics.get("validation", {}).get("photos"),
        "validation": version.metrics.get("validation", {}).get("method"),
        "folds": version.metrics.get("validation", {}).get("folds"),
        "temperature": round(version.temperature, 6),
        "dataset_sha256": dataset_sha256,
    }
    for entry in version.backbones:
        values[f"fingerprint.{entry['name']}"] = entry.get("fingerprint")
        values[f"vote.{entry['name']}"] = entry.get("vote")
    return [
        Param(name, str(value)[:PARAM_VALUE_LENGTH])
        for name, value in values.items()
        if value is not None
    ]


def _metrics(version: TrainedVersion, at: int) -> list[Metric]:
    metrics = version.metrics
    values: dict[str, float] = {}
    for name in ("accuracy", "macro_f1"):
        if isinstance(metrics.get(name), int | float):
            values[name] = float(metrics[name])
    for name, value in (metrics.get("calibration") or {}).items():
        if name != "temperature" and isinstance(value, int | float):
            values[f"calibration.{name}"] = float(value)
    for name, value in (metrics.get("backbone_accuracy") or {}).items():
        values[f"accuracy.{name}"] = float(value)
    unknown = metrics.get("unknown") or {}
    if isinstance(unknown.get("held_out_unlike"), int | float):
        values["unknown.held_out_unlike"] = float(unknown["held_out_unlike"])
    if isinstance(unknown.get("non_materials"), dict):
        values["unknown.non_materials"] = float(unknown["non_materials"]["unlike"])
    if isinstance(metrics.get("skipped_photos"), int):
        values["skipped_photos"] = float(metrics["skipped_photos"])
    return [Metric(_metric_name(name), value, at, 0) for name, value in values.items()]


def _metric_name(name: str) -> str:
    """MLflow's names allow letters, digits and `_-. /`: a backbone's `custom:x` becomes
    `custom_x`."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in name)


def _artifacts(folder: Path, version: TrainedVersion) -> None:
    """The run's files: the heads (the model), the dataset snapshot, the metrics, the per-class
    table and the pictures people read."""
    (folder / "heads").mkdir()
    (folder / "heads" / "recognizer.npz").write_bytes(version.heads)
    (folder / "heads" / "labels.json").write_text(json.dumps(version.labels, indent=1))
    (folder / "dataset.json").write_bytes(version.dataset)
    (folder / "metrics.json").write_text(json.dumps(version.metrics, indent=1))
    per_class = version.metrics.get("per_class") or []
    (folder / "per_class.json").write_text(json.dumps(per_class, indent=1))
    title = f"version {version.number}: accuracy {version.metrics.get('accuracy', 0):.3f}"
    if version.metrics.get("confusion_matrix"):
        (folder / "confusion_matrix.png").write_bytes(
            plots.confusion_matrix_png(
                version.metrics.get("labels") or [row["label"] for row in per_class],
                version.metrics["confusion_matrix"],
                title=title,
            )
        )
    if per_class:
        (folder / "per_class.png").write_bytes(plots.per_class_png(per_class, title=title))


def record_version(settings: Settings, version: TrainedVersion) -> Tracked:
    """The version's run and registered model version, made unless they were (idempotent: a
    run is found again by the version's id, a registered version by its run)."""
    client, store = client_of(settings)
    experiment_id = _experiment(client, store, version.organization_id)
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`kai.model_version_id` = '{version.id}'",
        max_results=1,
    )
    run_id = str(found[0].info.run_id) if found else _new_run(client, experiment_id, version)
    return Tracked(run_id, _register(client, version, run_id))


def _new_run(client: MlflowClient, experiment_id: str, version: TrainedVersion) -> str:
    started = int(version.created_at.timestamp() * 1000)
    ended = int((version.trained_at or version.created_at).timestamp() * 1000)
    run = client.create_run(
        experiment_id,
        start_time=started,
        run_name=f"version {version.number}",
        tags={
            "kai.model_version_id": str(version.id),
            "kai.model_version": str(version.number),
            "kai.organization_id": str(version.organization_id),
        },
    )
    run_id = str(run.info.run_id)
    dataset_sha256 = hashlib.sha256(version.dataset).hexdigest()
    params = _params(version, dataset_sha256)
    for start in range(0, len(params), PARAMS_PER_BATCH):
        client.log_batch(run_id, params=params[start : start + PARAMS_PER_BATCH])
    client.log_batch(
        run_id,
        metrics=_metrics(version, ended),
        tags=[RunTag("kai.dataset_sha256", dataset_sha256)],
    )
    with tempfile.TemporaryDirectory(prefix="kai-run-") as folder:
        _artifacts(Path(folder), version)
        client.log_artifacts(run_id, folder)
    client.set_terminated(run_id, "FINISHED", end_time=max(ended, started))
    return run_id


def _register(client: MlflowClient, version: TrainedVersion, run_id: str) -> int:
    name = model_name(version.organization_id)
    try:
        client.create_registered_model(
            name,
            tags={"kai.organization_id": str(version.organization_id)},
            description="An organization's recognizer: one version a trained KAI model version.",
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    for existing in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
        return int(existing.version)
    artifact_uri = client.get_run(run_id).info.artifact_uri
    registered = client.create_model_version(
        name,
        source=f"{artifact_uri}/heads",
        run_id=run_id,
        tags={"kai.model_version_id": str(version.id), "kai.model_version": str(version.number)},
        description=f"KAI model version {version.number}",
    )
    return int(registered.version)


def set_aliases(
    settings: Settings,
    organization_id: uuid.UUID,
    aliases: dict[str, int | None],
) -> None:
    """Point each alias at a registered version, or remove it (None)."""
    client, _ = client_of(settings)
    name = model_name(organization_id)
    try:
        current = client.get_registered_model(name).aliases
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return  # nothing registered yet: nothing to point at
        raise
    for alias, registered in aliases.items():
        if registered is None:
            if alias in current:
                client.delete_registered_model_alias(name, alias)
        elif str(current.get(alias)) != str(registered):
            client.set_registered_model_alias(name, alias, str(registered))


def aliases_of(settings: Settings, organization_id: uuid.UUID) -> dict[str, int]:
    """The registered model's aliases and the versions they point at."""
    client, _ = client_of(settings)
    try:
        found = client.get_registered_model(model_name(organization_id)).aliases
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {alias: int(number) for alias, number in found.items()}
