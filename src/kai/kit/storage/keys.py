"""Object keys: what a valid key is, and where each organization's objects live."""

from __future__ import annotations

import unicodedata
from typing import Literal, get_args
from uuid import UUID

from kai.kit.storage.base import InvalidObjectKey

# S3's own limit, counted in UTF-8 bytes.
MAX_KEY_BYTES = 1024

ImageVariant = Literal["original", "processed", "thumbnails"]
IMAGE_VARIANTS: frozenset[str] = frozenset(get_args(ImageVariant))


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a safe relative key, else raise InvalidObjectKey."""
    if not key:
        raise InvalidObjectKey("The object key is empty.")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidObjectKey("The object key is not valid UTF-8.") from None
    if size > MAX_KEY_BYTES:
        raise InvalidObjectKey(
            f"The object key is {size} bytes long; the limit is {MAX_KEY_BYTES}."
        )
    if key.startswith("/"):
        raise InvalidObjectKey("The object key must be relative, not start with '/'.")
    if "\\" in key:
        raise InvalidObjectKey("The object key must separate folders with '/', not '\\'.")
    if any(unicodedata.category(char) == "Cc" for char in key):
        raise InvalidObjectKey("The object key contains a control character.")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidObjectKey(f"The object key has an empty, '.' or '..' segment: {key!r}.")
    return key


def validate_prefix(prefix: str) -> str:
    """Return `prefix` unchanged if listing under it cannot leave the key space."""
    if prefix:
        validate_key(prefix.removesuffix("/"))
    return prefix


def organization_prefix(org_id: UUID) -> str:
    """The prefix under which every object of the organization lives, ending in `/`."""
    # A str here could be anything, `../` included; a UUID always renders the same safe way.
    if not isinstance(org_id, UUID):
        raise TypeError(f"org_id must be a UUID, not {type(org_id).__name__}")
    return f"{org_id}/"


def _under(org_id: UUID, folder: str, name: str) -> str:
    validate_key(name)
    return validate_key(f"{organization_prefix(org_id)}{folder}/{name}")


def material_image_key(org_id: UUID, variant: ImageVariant, name: str) -> str:
    """Key of a material image: `{org}/materials/images/{variant}/{name}`."""
    if variant not in IMAGE_VARIANTS:
        raise InvalidObjectKey(f"Unknown image variant {variant!r}.")
    return _under(org_id, f"materials/images/{variant}", name)


def model_key(org_id: UUID, name: str) -> str:
    """Key of a model artifact: `{org}/models/{name}`."""
    return _under(org_id, "models", name)


def user_upload_key(org_id: UUID, name: str) -> str:
    """Key of a file a user uploaded: `{org}/users/uploads/{name}`."""
    return _under(org_id, "users/uploads", name)


def user_export_key(org_id: UUID, name: str) -> str:
    """Key of an export made for a user: `{org}/users/exports/{name}`."""
    return _under(org_id, "users/exports", name)
