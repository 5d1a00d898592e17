"""Local storage, and the behaviour every storage backend shares (`StorageContract`).

test_storage_s3.py runs the same contract against an S3 server on loopback.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from kai.config import Settings, StorageSettings
from kai.kit.storage import (
    CHUNK_SIZE,
    InvalidObjectKey,
    LocalStorage,
    ObjectNotFound,
    ObjectStorage,
    StorageUnavailable,
    StoredObject,
    create_storage,
)

# Leftovers of unfinished uploads, as a backend-specific fixture reports them.
Leftovers = Callable[[], Awaitable[list[str]]]

BAD_KEYS = {
    "parent": "../x",
    "absolute": "/abs",
    "dot-dot-inside": "a/../b",
    "dot": "a/./b",
    "nul": "a\x00b",
    "newline": "a\nb",
    "empty-segment": "a//b",
    "trailing-slash": "a/",
    "backslash": "a\\b",
    "empty": "",
    "too-long": "k" * 1025,
}


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


async def stream(data: bytes, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    """`data` in pieces, as an HTTP request body would arrive."""
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


class BodyInterruptedError(Exception):
    """The upload's source failed: a client hung up mid-body."""


async def failing_stream(good_bytes: int) -> AsyncIterator[bytes]:
    async for piece in stream(random_bytes(good_bytes)):
        yield piece
    raise BodyInterruptedError


async def listed(storage: ObjectStorage, prefix: str = "") -> list[StoredObject]:
    return [stored async for stored in storage.list(prefix)]


async def perform(storage: ObjectStorage, operation: str, key: str = "org/a.txt") -> None:
    """Call one storage operation on `key` by name, for tests that try them all."""
    if operation == "put":
        await storage.put(key, b"data")
    elif operation == "open":
        await anext(storage.open(key))
    elif operation == "list":
        await listed(storage, key)
    elif operation == "check":
        await storage.check()
    else:
        await getattr(storage, operation)(key)


class StorageContract:
    """What callers may rely on from any backend; subclasses give `storage` and `leftovers`."""

    async def test_bytes_round_trip(self, storage: ObjectStorage) -> None:
        stored = await storage.put("org/notes.txt", b"hello", content_type="text/plain")

        assert (stored.key, stored.size, stored.content_type) == ("org/notes.txt", 5, "text/plain")
        assert stored.etag
        assert await storage.read("org/notes.txt") == b"hello"
        assert await storage.stat("org/notes.txt") == stored

    async def test_content_type_defaults_to_octet_stream(self, storage: ObjectStorage) -> None:
        stored = await storage.put("blob", b"\x00\x01")

        assert stored.content_type == "application/octet-stream"
        assert (await storage.stat("blob")).content_type == "application/octet-stream"

    @pytest.mark.parametrize(
        "size", [0, 1, CHUNK_SIZE + 1, 20 * CHUNK_SIZE + 7], ids=["empty", "1B", "1MiB+1", "20MiB"]
    )
    async def test_stream_round_trip(self, storage: ObjectStorage, size: int) -> None:
        body = random_bytes(size)

        stored = await storage.put("org/scan.bin", stream(body), content_type="image/tiff")

        assert stored.size == size
        assert await storage.read("org/scan.bin") == body
        assert b"".join([chunk async for chunk in storage.open("org/scan.bin")]) == body
        assert await storage.stat("org/scan.bin") == stored

    async def test_open_streams_in_bounded_chunks(self, storage: ObjectStorage) -> None:
        body = random_bytes(3 * CHUNK_SIZE + 1)
        await storage.put("big.bin", body)

        chunks = [chunk async for chunk in storage.open("big.bin")]

        assert len(chunks) >= 4
        assert max(len(chunk) for chunk in chunks) <= CHUNK_SIZE
        assert b"".join(chunks) == body

    async def test_open_missing_fails_on_first_chunk(self, storage: ObjectStorage) -> None:
        chunks = storage.open("missing.bin")

        with pytest.raises(ObjectNotFound):
            await anext(chunks)

    @pytest.mark.parametrize("operation", ["read", "stat"])
    async def test_missing_object_is_not_found(
        self, storage: ObjectStorage, operation: str
    ) -> None:
        with pytest.raises(ObjectNotFound) as raised:
            await getattr(storage, operation)("org/missing.bin")

        assert raised.value.status == 404

    async def test_exists(self, storage: ObjectStorage) -> None:
        await storage.put("org/here.txt", b"x")

        assert await storage.exists("org/here.txt")
        assert not await storage.exists("org/gone.txt")
        assert not await storage.exists("org")

    async def test_overwrite_replaces_content_type_and_etag(self, storage: ObjectStorage) -> None:
        first = await storage.put("doc", b"first", content_type="text/plain")

        second = await storage.put("doc", b"second!", content_type="application/json")

        assert await storage.read("doc") == b"second!"
        assert await storage.stat("doc") == second
        assert (second.size, second.content_type) == (7, "application/json")
        assert second.etag != first.etag

    async def test_delete_is_idempotent(self, storage: ObjectStorage) -> None:
        await storage.put("org/a/b.txt", b"data")

        await storage.delete("org/a/b.txt")
        await storage.delete("org/a/b.txt")
        await storage.delete("never/stored.txt")

        assert not await storage.exists("org/a/b.txt")
        with pytest.raises(ObjectNotFound):
            await storage.read("org/a/b.txt")
        assert await listed(storage) == []

    async def test_list_under_prefix_in_key_order(self, storage: ObjectStorage) -> None:
        keys = ["org1/b.txt", "org1/a/z.txt", "org1/a/y.txt", "org1/a.txt", "org2/a.txt", "org10/x"]
        for size, key in enumerate(keys, start=1):
            await storage.put(key, b"x" * size)

        under_org1 = await listed(storage, "org1/")

        assert [stored.key for stored in under_org1] == [
            "org1/a.txt",
            "org1/a/y.txt",
            "org1/a/z.txt",
            "org1/b.txt",
        ]
        assert {stored.key: stored.size for stored in under_org1} == {
            key: size for size, key in enumerate(keys, start=1) if key.startswith("org1/")
        }
        assert [stored.key for stored in await listed(storage)] == sorted(keys)
        # A prefix is a string prefix, not a folder: `org1/a` takes `org1/a.txt` too.
        assert [stored.key for stored in await listed(storage, "org1/a")] == [
            "org1/a.txt",
            "org1/a/y.txt",
            "org1/a/z.txt",
        ]
        assert await listed(storage, "org3/") == []

    async def test_list_forgets_deleted_objects(self, storage: ObjectStorage) -> None:
        await storage.put("org/a.txt", b"a")
        await storage.put("org/b.txt", b"b")

        await storage.delete("org/a.txt")

        assert [stored.key for stored in await listed(storage, "org/")] == ["org/b.txt"]

    @pytest.mark.parametrize("key", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
    @pytest.mark.parametrize("operation", ["put", "open", "read", "stat", "exists", "delete"])
    async def test_bad_key_is_rejected(
        self, storage: ObjectStorage, key: str, operation: str
    ) -> None:
        with pytest.raises(InvalidObjectKey) as raised:
            await perform(storage, operation, key)

        assert raised.value.status == 400
        assert await listed(storage) == []

    @pytest.mark.parametrize("prefix", ["../", "/abs/", "a//", "a\\b/", "a/../"])
    async def test_bad_prefix_is_rejected(self, storage: ObjectStorage, prefix: str) -> None:
        with pytest.raises(InvalidObjectKey):
            await listed(storage, prefix)

    @pytest.mark.parametrize(
        "good_bytes", [0, 3 * CHUNK_SIZE, 10 * CHUNK_SIZE], ids=["at-once", "3MiB", "10MiB"]
    )
    async def test_failed_upload_leaves_nothing(
        self, storage: ObjectStorage, leftovers: Leftovers, good_bytes: int
    ) -> None:
        with pytest.raises(BodyInterruptedError):
            await storage.put("org/upload.bin", failing_stream(good_bytes))

        assert not await storage.exists("org/upload.bin")
        assert await listed(storage) == []
        assert await leftovers() == []

    async def test_failed_overwrite_keeps_previous_object(
        self, storage: ObjectStorage, leftovers: Leftovers
    ) -> None:
        before = await storage.put("org/upload.bin", b"previous", content_type="text/plain")

        with pytest.raises(BodyInterruptedError):
            await storage.put("org/upload.bin", failing_stream(2 * CHUNK_SIZE))

        assert await storage.read("org/upload.bin") == b"previous"
        assert await storage.stat("org/upload.bin") == before
        assert await leftovers() == []

    async def test_check_passes_when_healthy(self, storage: ObjectStorage) -> None:
        await storage.check()


class TestLocalStorage(StorageContract):
    @pytest.fixture
    async def storage(self, tmp_path: Path) -> AsyncIterator[LocalStorage]:
        root = tmp_path / "objects"
        root.mkdir()
        storage = LocalStorage(root)
        yield storage
        await storage.close()

    @pytest.fixture
    def leftovers(self, storage: LocalStorage) -> Leftovers:
        async def staged_files() -> list[str]:
            staging = storage.root / ".kai" / "tmp"
            return sorted(os.listdir(staging)) if staging.exists() else []

        return staged_files

    async def test_object_is_a_plain_file_at_its_key(self, storage: LocalStorage) -> None:
        await storage.put("org/a/b.txt", b"plain", content_type="text/plain")

        assert (storage.root / "org" / "a" / "b.txt").read_bytes() == b"plain"

    async def test_metadata_stays_out_of_listings(self, storage: LocalStorage) -> None:
        await storage.put("org/a.txt", b"a", content_type="text/plain")

        assert [stored.key for stored in await listed(storage)] == ["org/a.txt"]
        assert await listed(storage, ".k") == []

    async def test_internal_folder_is_not_addressable(self, storage: LocalStorage) -> None:
        await storage.put("org/a.txt", b"a", content_type="text/plain")

        with pytest.raises(InvalidObjectKey):
            await storage.read(".kai/meta/org/a.txt.json")
        with pytest.raises(InvalidObjectKey):
            await storage.put(".kai/tmp/x", b"x")

    async def test_symlink_out_of_root_is_refused(
        self, storage: LocalStorage, tmp_path: Path
    ) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.txt").write_bytes(b"secret")
        (storage.root / "escape").symlink_to(outside)

        with pytest.raises(InvalidObjectKey):
            await storage.read("escape/secret.txt")
        with pytest.raises(InvalidObjectKey):
            await storage.put("escape/planted.txt", b"x")
        with pytest.raises(InvalidObjectKey):
            await storage.delete("escape/secret.txt")

        assert sorted(os.listdir(outside)) == ["secret.txt"]
        assert await listed(storage) == []

    async def test_delete_prunes_folders_it_empties(self, storage: LocalStorage) -> None:
        await storage.put("a/b/c.txt", b"c")
        await storage.put("keep/d.txt", b"d")

        await storage.delete("a/b/c.txt")

        assert sorted(os.listdir(storage.root)) == [".kai", "keep"]
        # With the folder gone, its name is free for an object.
        await storage.put("a", b"now a file")
        assert await storage.read("a") == b"now a file"

    async def test_object_and_folder_cannot_share_a_name(self, storage: LocalStorage) -> None:
        await storage.put("a", b"file")

        with pytest.raises(InvalidObjectKey):
            await storage.put("a/b", b"under a file")

        assert await storage.read("a") == b"file"
        assert await storage.exists("a")
        with pytest.raises(ObjectNotFound):
            await storage.stat("a/b")

    async def test_metadata_of_an_interrupted_write_is_ignored(self, storage: LocalStorage) -> None:
        await storage.put("org/a.txt", b"abc", content_type="text/plain")
        # As if the process died between moving the data and moving its metadata into place.
        (storage.root / "org" / "a.txt").write_bytes(b"abcdef")

        assert await storage.stat("org/a.txt") == StoredObject("org/a.txt", 6, None, None)

    async def test_abandoned_stream_can_be_closed(self, storage: LocalStorage) -> None:
        await storage.put("big.bin", random_bytes(3 * CHUNK_SIZE))

        chunks = storage.open("big.bin")
        first = await anext(chunks)
        await chunks.aclose()

        assert len(first) == CHUNK_SIZE
        with pytest.raises(StopAsyncIteration):
            await anext(chunks)


@pytest.mark.parametrize("operation", ["check", "put", "read", "list"])
async def test_missing_root_is_unavailable(tmp_path: Path, operation: str) -> None:
    storage = LocalStorage(tmp_path / "not-mounted")

    with pytest.raises(StorageUnavailable) as raised:
        await perform(storage, operation)

    assert raised.value.status == 503
    # A missing root may be a volume that failed to mount: nothing is written in its place.
    assert not (tmp_path / "not-mounted").exists()


async def test_root_that_is_a_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "objects").write_bytes(b"")

    with pytest.raises(StorageUnavailable):
        await LocalStorage(tmp_path / "objects").check()


async def test_root_without_room_to_stage_is_unavailable(tmp_path: Path) -> None:
    # Works as root too, which a read-only mode would not stop: nothing can be made inside.
    (tmp_path / ".kai").write_bytes(b"")
    storage = LocalStorage(tmp_path)

    with pytest.raises(StorageUnavailable):
        await storage.check()
    with pytest.raises(StorageUnavailable):
        await storage.put("org/a.txt", b"a")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only modes")
async def test_read_only_root_is_unavailable(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(StorageUnavailable):
            await LocalStorage(tmp_path).check()
    finally:
        os.chmod(tmp_path, 0o700)


async def test_create_storage_makes_the_default_root(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")

    storage = create_storage(settings)

    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "data" / "objects"
    await storage.check()
    await storage.put("org/a.txt", b"a")
    assert (tmp_path / "data" / "objects" / "org" / "a.txt").read_bytes() == b"a"


async def test_create_storage_leaves_a_configured_root_alone(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", storage=StorageSettings(local_root=tmp_path / "mount")
    )

    storage = create_storage(settings)

    assert isinstance(storage, LocalStorage)
    with pytest.raises(StorageUnavailable):
        await storage.check()
    assert not (tmp_path / "mount").exists()
