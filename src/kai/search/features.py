"""The feature store: each stored photo's embedding by a backbone, prepared one way, kept so
that it is computed once.

A photo is named by its storage key (a key is never reused for other content) and an
embedding by `features_of(fingerprint, preparation)`: the backbone's fingerprint (its weights
and input handling) and the preparation's tag (`kai.vision.preprocessing.Enhancement.tag`).
Training reads what exists and embeds only the rest; every recognition keeps what it
computed for its photo (so that a photo labelled in feedback is never embedded again, and
drift and the review queue read the live photos' embeddings); the catalog's visual index
takes what training or an earlier index left.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from kai.search.visual_repository import FeatureRepository

# Keys asked for per statement.
KEYS_PER_READ = 2000


def features_of(fingerprint: str, preparation: str) -> str:
    """What names an embedding in the store: the backbone's fingerprint, the preparation's
    tag."""
    return f"{fingerprint}|{preparation}"


async def stored(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    features: str,
    keys: Sequence[str],
) -> dict[str, np.ndarray]:
    """The embeddings named `features` kept for any of `keys` (float32 rows), by key."""
    repository = FeatureRepository(session)
    found: dict[str, np.ndarray] = {}
    wanted = list(dict.fromkeys(keys))
    for start in range(0, len(wanted), KEYS_PER_READ):
        kept = await repository.read(
            organization_id, features, wanted[start : start + KEYS_PER_READ]
        )
        for key, vector in kept:
            found[key] = np.frombuffer(vector, dtype="<f4")
    return found


async def keep(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    rows: Iterable[tuple[str, str, np.ndarray]],
) -> None:
    """Keep each (features, key, embedding) of `rows`, in one statement; one kept already
    stays as it is (the same photo, backbone and preparation give the same numbers)."""
    vectors = {
        (features, key): np.ascontiguousarray(vector, dtype="<f4").tobytes()
        for features, key, vector in rows
    }
    if vectors:
        await FeatureRepository(session).save(organization_id, vectors)
