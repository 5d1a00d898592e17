from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import pytest

from kai.kit.errors import KaiError
from kai.kit.storage import (
    InvalidObjectKey,
    ObjectNotFound,
    StorageUnavailable,
    material_image_key,
    model_key,
    organization_prefix,
    user_export_key,
    user_upload_key,
    validate_key,
    validate_prefix,
)

ORG = UUID("0b7d3f4e-8c1a-4e2b-9f6d-5a4c3b2a1908")

GOOD_KEYS = [
    "a",
    "org/materials/images/original/tile.jpg",
    "café/ü ñ.png",
    "with space/and-dash_under.score",
    "dots.in.name/..hidden/...",
    "k" * 1024,
    # 512 two-byte characters: exactly the limit in bytes.
    "é" * 512,
]

BAD_KEYS = {
    "empty": "",
    "absolute": "/abs",
    "parent": "../x",
    "parent-only": "..",
    "dot-only": ".",
    "dot-dot-inside": "a/../b",
    "dot-inside": "a/./b",
    "trailing-dot-dot": "a/..",
    "empty-segment": "a//b",
    "trailing-slash": "a/",
    "backslash": "a\\b",
    "backslash-parent": "..\\x",
    "nul": "a\x00b",
    "newline": "a\nb",
    "tab": "a\tb",
    "escape": "a\x1bb",
    "delete": "a\x7fb",
    "c1-control": "a\x85b",
    "lone-surrogate": "a\ud800b",
    "too-long": "k" * 1025,
    # 513 characters, but 1026 bytes: the limit counts bytes.
    "too-long-in-bytes": "é" * 513,
}


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_valid_key_is_returned_unchanged(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize("key", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_bad_key_is_rejected(key: str) -> None:
    with pytest.raises(InvalidObjectKey):
        validate_key(key)


@pytest.mark.parametrize("prefix", ["", "org/", "org/materials/im", "a"])
def test_valid_prefix_is_returned_unchanged(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "../", "/abs/", "a//", "a/../", "a\x00/"])
def test_bad_prefix_is_rejected(prefix: str) -> None:
    with pytest.raises(InvalidObjectKey):
        validate_prefix(prefix)


@pytest.mark.parametrize(
    ("error", "status", "type_"),
    [
        (InvalidObjectKey, 400, "invalid-object-key"),
        (ObjectNotFound, 404, "object-not-found"),
        (StorageUnavailable, 503, "storage-unavailable"),
    ],
)
def test_errors_render_as_their_problem(error: type[KaiError], status: int, type_: str) -> None:
    assert (error.status, error.type) == (status, type_)


def test_organization_prefix() -> None:
    assert organization_prefix(ORG) == f"{ORG}/"


def test_organization_must_be_a_uuid() -> None:
    with pytest.raises(TypeError):
        organization_prefix("../other-org")  # type: ignore[arg-type]


@pytest.mark.parametrize("variant", ["original", "processed", "thumbnails"])
def test_material_image_key(variant: str) -> None:
    key = material_image_key(ORG, variant, "tile-42.jpg")  # type: ignore[arg-type]

    assert key == f"{ORG}/materials/images/{variant}/tile-42.jpg"


def test_material_image_key_rejects_unknown_variant() -> None:
    with pytest.raises(InvalidObjectKey):
        material_image_key(ORG, "../../models", "x.jpg")  # type: ignore[arg-type]


def test_other_key_builders() -> None:
    assert model_key(ORG, "tiles/v3.onnx") == f"{ORG}/models/tiles/v3.onnx"
    assert user_upload_key(ORG, "u1/catalog.csv") == f"{ORG}/users/uploads/u1/catalog.csv"
    assert user_export_key(ORG, "report.pdf") == f"{ORG}/users/exports/report.pdf"


BUILDERS: dict[str, Callable[[str], str]] = {
    "image": lambda name: material_image_key(ORG, "original", name),
    "model": lambda name: model_key(ORG, name),
    "upload": lambda name: user_upload_key(ORG, name),
    "export": lambda name: user_export_key(ORG, name),
}


@pytest.mark.parametrize("build", list(BUILDERS.values()), ids=list(BUILDERS))
def test_built_keys_stay_under_the_organization(build: Callable[[str], str]) -> None:
    assert build("sub/folder/name.bin").startswith(organization_prefix(ORG))


@pytest.mark.parametrize("build", list(BUILDERS.values()), ids=list(BUILDERS))
@pytest.mark.parametrize(
    "name", ["../../other-org/models/x", "/etc/passwd", "a/../../b", "", "a\\..\\b", "a\x00"]
)
def test_names_cannot_escape_their_folder(build: Callable[[str], str], name: str) -> None:
    with pytest.raises(InvalidObjectKey):
        build(name)


def test_built_key_over_the_limit_is_rejected() -> None:
    # The name alone fits, but not once the organization's folders are in front of it.
    name = "n" * 1000
    validate_key(name)

    with pytest.raises(InvalidObjectKey):
        model_key(ORG, name)
