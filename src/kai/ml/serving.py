"""Recognizers in memory: each version's heads read from storage once per process."""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict

from kai.kit.storage import ObjectStorage
from kai.ml.models import ModelVersion
from kai.ml.recognizer import Recognizer
from kai.ml.training import load_recognizer

# Versions kept: the active one of each organization recently served, and a few more.
CACHE_SIZE = 32

_recognizers: OrderedDict[uuid.UUID, Recognizer] = OrderedDict()
_lock = asyncio.Lock()


async def recognizer_of(storage: ObjectStorage, version: ModelVersion) -> Recognizer:
    """The version's recognizer; a version never changes once ready, so it is kept as read."""
    found = _recognizers.get(version.id)
    if found is not None:
        _recognizers.move_to_end(version.id)
        return found
    async with _lock:
        found = _recognizers.get(version.id)
        if found is None:
            found = await load_recognizer(storage, version)
            _recognizers[version.id] = found
            while len(_recognizers) > CACHE_SIZE:
                _recognizers.popitem(last=False)
    return found
