"""Object storage: one interface, a local-folder backend and an S3 backend."""

from __future__ import annotations

from kai.config import Settings
from kai.kit.storage.base import (
    CHUNK_SIZE,
    InvalidObjectKey,
    ObjectNotFound,
    ObjectStorage,
    StorageUnavailable,
    StoredObject,
)
from kai.kit.storage.keys import (
    ImageVariant,
    material_image_key,
    model_key,
    organization_prefix,
    user_export_key,
    user_upload_key,
    validate_key,
    validate_prefix,
)
from kai.kit.storage.local import LocalStorage
from kai.kit.storage.s3 import S3Storage

__all__ = [
    "CHUNK_SIZE",
    "ImageVariant",
    "InvalidObjectKey",
    "LocalStorage",
    "ObjectNotFound",
    "ObjectStorage",
    "S3Storage",
    "StorageUnavailable",
    "StoredObject",
    "create_storage",
    "material_image_key",
    "model_key",
    "organization_prefix",
    "user_export_key",
    "user_upload_key",
    "validate_key",
    "validate_prefix",
]


def create_storage(settings: Settings) -> ObjectStorage:
    """The backend `settings.storage.backend` names, configured from `settings`."""
    if settings.storage.backend == "s3":
        return S3Storage(settings.storage.s3)
    if settings.storage.local_root is None:
        # The default root sits in KAI's own data folder, so KAI makes it; a configured root
        # is often a mount, and LocalStorage refuses to write where one failed to appear.
        settings.local_storage_root.mkdir(parents=True, exist_ok=True)
    return LocalStorage(settings.local_storage_root)
