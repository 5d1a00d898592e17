"""Drift: whether the photos a version answers today still look like those it was validated on.

Each version keeps a reference of its validation data, made when it is trained: its training
photos' embeddings by the catalog backbone projected on their first principal components,
the histogram of the confidences its held-out answers had, their label distribution, and the
share of them it called unknown. A window of live recognitions by the version is compared
with it:

- confidences and labels: the population stability index (PSI) of the window's histogram
  against the reference's (the usual reading: under 0.1 stable, 0.1-0.25 moving, above 0.25
  shifted); drift above `PSI_THRESHOLD`;
- the projection: a two-sample Kolmogorov-Smirnov test on each component, Bonferroni-corrected
  (drift when the smallest p-value times the components is under `KS_ALPHA`);
- the unknown share: drift when it is `UNKNOWN_MARGIN` above the reference's.

Any of them raises a drift event. Windows hold at least `MIN_WINDOW` recognitions; each is
stored with its figures, so drift can be read over time.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from scipy.stats import ks_2samp
from sklearn.decomposition import PCA
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kai.kit.db import scoped_transaction
from kai.kit.pagination import PageParams
from kai.kit.storage import ObjectNotFound, ObjectStorage
from kai.ml.models import DriftWindow, ServedPrediction
from kai.ml.repository import DriftRepository, ModelVersionRepository
from kai.search import features

COMPONENTS = 8
# Reference photos kept for the projection's test (a random sample of more).
REFERENCE_ROWS = 2000
CONFIDENCE_BINS = np.linspace(0.0, 1.0, 11)
PSI_THRESHOLD = 0.25
KS_ALPHA = 0.01
UNKNOWN_MARGIN = 0.15
MIN_WINDOW = 30
MAX_WINDOW = 2000
# A share of zero in a bin would make the index infinite: each share is at least this.
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class Reference:
    backbone: str
    features_of: str
    mean: np.ndarray
    components: np.ndarray
    projected: np.ndarray
    confidences: np.ndarray
    labels: list[str]
    label_shares: np.ndarray
    unknown_share: float

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            allow_pickle=False,
            backbone=np.frombuffer(self.backbone.encode(), dtype=np.uint8),
            features_of=np.frombuffer(self.features_of.encode(), dtype=np.uint8),
            mean=self.mean,
            components=self.components,
            projected=self.projected,
            confidences=self.confidences,
            labels=np.frombuffer("\n".join(self.labels).encode(), dtype=np.uint8),
            label_shares=self.label_shares,
            unknown_share=np.asarray([self.unknown_share]),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Reference:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return cls(
                backbone=arrays["backbone"].tobytes().decode(),
                features_of=arrays["features_of"].tobytes().decode(),
                mean=arrays["mean"],
                components=arrays["components"],
                projected=arrays["projected"],
                confidences=arrays["confidences"],
                labels=arrays["labels"].tobytes().decode().split("\n"),
                label_shares=arrays["label_shares"],
                unknown_share=float(arrays["unknown_share"][0]),
            )

    def project(self, rows: np.ndarray) -> np.ndarray:
        projected: np.ndarray = (rows.astype(np.float64) - self.mean) @ self.components.T
        return projected


def make_reference(
    *,
    backbone: str,
    features_of: str,
    embeddings: np.ndarray,
    held_out: np.ndarray,
    labels: list[str],
    unknown_share: float,
    seed: int = 0,
) -> Reference:
    """The reference of a version: its training photos' embeddings (by `backbone`), and the
    calibrated held-out probabilities over `labels`."""
    rows = embeddings.astype(np.float64)
    components = min(COMPONENTS, rows.shape[0] - 1, rows.shape[1])
    pca = PCA(n_components=max(1, components), random_state=seed).fit(rows)
    projected = pca.transform(rows)
    if len(projected) > REFERENCE_ROWS:
        keep = np.random.default_rng(seed).choice(len(projected), REFERENCE_ROWS, replace=False)
        projected = projected[keep]
    chosen = held_out.argmax(axis=1)
    return Reference(
        backbone=backbone,
        features_of=features_of,
        mean=pca.mean_,
        components=pca.components_,
        projected=projected,
        confidences=held_out.max(axis=1),
        labels=list(labels),
        label_shares=np.bincount(chosen, minlength=len(labels)) / max(1, len(chosen)),
        unknown_share=unknown_share,
    )


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """The population stability index of two distributions over the same bins."""
    reference = np.clip(expected / max(expected.sum(), 1e-12), PSI_FLOOR, None)
    window = np.clip(actual / max(actual.sum(), 1e-12), PSI_FLOOR, None)
    return float(np.sum((window - reference) * np.log(window / reference)))


def compare(
    reference: Reference,
    *,
    embeddings: np.ndarray | None,
    confidences: np.ndarray,
    labels: list[str | None],
    unknown: np.ndarray,
) -> dict[str, Any]:
    """A window of live recognitions against the reference: each measure, and which ones
    call it drift."""
    expected = np.histogram(reference.confidences, bins=CONFIDENCE_BINS)[0].astype(np.float64)
    seen = np.histogram(np.clip(confidences, 0, 1), bins=CONFIDENCE_BINS)[0].astype(np.float64)
    psi_confidence = psi(expected, seen)
    index = {label: position for position, label in enumerate(reference.labels)}
    # Labels the version knows, plus one bin for unknown answers.
    counts = np.zeros(len(reference.labels) + 1)
    for label in labels:
        counts[index.get(label, len(reference.labels)) if label is not None else -1] += 1
    reference_counts = np.append(reference.label_shares * (1 - reference.unknown_share), 0.0)
    reference_counts[-1] = reference.unknown_share
    psi_labels = psi(reference_counts, counts)
    unknown_share = float(np.mean(unknown)) if len(unknown) else 0.0
    found: dict[str, Any] = {
        "psi_confidence": round(psi_confidence, 4),
        "psi_labels": round(psi_labels, 4),
        "unknown_share": round(unknown_share, 4),
        "reference_unknown_share": round(reference.unknown_share, 4),
        "projection_p": None,
    }
    reasons = []
    if psi_confidence > PSI_THRESHOLD:
        reasons.append("confidence")
    if psi_labels > PSI_THRESHOLD:
        reasons.append("labels")
    if unknown_share > reference.unknown_share + UNKNOWN_MARGIN:
        reasons.append("unknown")
    if embeddings is not None and len(embeddings) >= MIN_WINDOW:
        projected = reference.project(embeddings)
        p_values = [
            float(ks_2samp(reference.projected[:, column], projected[:, column]).pvalue)
            for column in range(projected.shape[1])
        ]
        corrected = min(1.0, min(p_values) * len(p_values))
        found["projection_p"] = round(corrected, 6)
        if corrected < KS_ALPHA:
            reasons.append("appearance")
    found["reasons"] = reasons
    return found


async def record_served(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    version_id: uuid.UUID,
    recognition_id: uuid.UUID,
    image_key: str,
    label: str | None,
    confidence: float,
    unknown: bool,
) -> None:
    """Keep what a version answered for a recognition: the live data drift is measured on."""
    session.add(
        ServedPrediction(
            recognition_id=recognition_id,
            organization_id=organization_id,
            model_version_id=version_id,
            image_key=image_key,
            label=label,
            confidence=confidence,
            unknown=unknown,
        )
    )


async def check(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    organization_id: uuid.UUID,
    now: datetime | None = None,
) -> DriftWindow | None:
    """Compare the active version's recognitions since the last window with its reference;
    store the window (and a drift event when it drifted). None when there is no window yet
    (no reference, or too few recognitions)."""
    from kai.ml import experiments, review

    version = await ModelVersionRepository(session).active(organization_id)
    if version is None or version.reference_key is None:
        return None
    repository = DriftRepository(session)
    since = await repository.last_end(organization_id, version.id)
    served = await repository.served(organization_id, version.id, since=since, limit=MAX_WINDOW)
    if len(served) < MIN_WINDOW:
        return None
    try:
        reference = Reference.from_bytes(await storage.read(version.reference_key))
    except ObjectNotFound:
        return None
    vectors = await features.stored(
        session,
        organization_id=organization_id,
        features=reference.features_of,
        keys=[row.image_key for row in served],
    )
    embeddings = (
        np.stack([vectors[row.image_key] for row in served if row.image_key in vectors])
        if vectors
        else None
    )
    found = compare(
        reference,
        embeddings=embeddings,
        confidences=np.asarray([row.confidence for row in served]),
        labels=[row.label for row in served],
        unknown=np.asarray([row.unknown for row in served]),
    )
    window = await repository.add(
        DriftWindow(
            organization_id=organization_id,
            model_version_id=version.id,
            started_at=served[0].created_at,
            ended_at=served[-1].created_at,
            recognitions=len(served),
            figures=found,
            drifted=bool(found["reasons"]),
            created_at=now or datetime.now(UTC),
        )
    )
    if window.drifted:
        await review.queue_retraining_check(
            session, organization_id=organization_id, because="drift"
        )
        await experiments.event(
            session,
            organization_id=organization_id,
            kind="drift.detected",
            data={
                "model_version": version.number,
                "window_id": str(window.id),
                "reasons": found["reasons"],
                "recognitions": len(served),
            },
        )
    return window


async def check_all(
    sessions: async_sessionmaker[AsyncSession], storage: ObjectStorage
) -> dict[str, int]:
    """Check every organization that recognized photos in the last day, each in a transaction
    of its own."""
    async with sessions.begin() as session:
        organization_ids = await DriftRepository(session).organizations_serving(
            datetime.now(UTC) - timedelta(days=1)
        )
    windows = drifted = 0
    for organization_id in organization_ids:
        async with scoped_transaction(sessions, organization_id=organization_id) as session:
            window = await check(session, storage, organization_id=organization_id)
            windows += window is not None
            drifted += window is not None and window.drifted
    return {"organizations": len(organization_ids), "windows": windows, "drifted": drifted}


async def list_page(
    session: AsyncSession, *, organization_id: uuid.UUID, params: PageParams
) -> tuple[list[DriftWindow], str | None]:
    return await DriftRepository(session).list_page(organization_id, params)
