"""S3 storage against a real S3 server (moto) on loopback: the shared contract, and S3's own."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kai.config import S3Settings, Settings, StorageSettings
from kai.kit.storage import (
    ObjectNotFound,
    S3Storage,
    StorageUnavailable,
    create_storage,
)

from .test_storage_local import Leftovers, StorageContract, listed, perform

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MakeSettings = Callable[..., S3Settings]


class TestS3Storage(StorageContract):
    @pytest.fixture
    async def storage(self, make_s3_settings: MakeSettings) -> AsyncIterator[S3Storage]:
        storage = S3Storage(make_s3_settings())
        yield storage
        await storage.close()

    @pytest.fixture
    def leftovers(self, s3_admin: S3Client, s3_bucket: str) -> Leftovers:
        async def pending_uploads() -> list[str]:
            uploads = s3_admin.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
            return [upload["Key"] for upload in uploads]

        return pending_uploads


async def test_prefix_keeps_objects_apart(
    make_s3_settings: MakeSettings, s3_admin: S3Client, s3_bucket: str
) -> None:
    s3_admin.put_object(Bucket=s3_bucket, Key="elsewhere/other.txt", Body=b"other")
    storage = S3Storage(make_s3_settings(prefix="/tenant-a/"))

    await storage.put("org/a.txt", b"a", content_type="text/plain")

    head = s3_admin.head_object(Bucket=s3_bucket, Key="tenant-a/org/a.txt")
    assert (head["ContentLength"], head["ContentType"]) == (1, "text/plain")
    assert [stored.key for stored in await listed(storage)] == ["org/a.txt"]
    with pytest.raises(ObjectNotFound):
        await storage.read("elsewhere/other.txt")
    await storage.delete("org/a.txt")
    assert "Contents" not in s3_admin.list_objects_v2(Bucket=s3_bucket, Prefix="tenant-a/")
    await storage.close()


async def test_long_stream_is_stored_in_parts(
    make_s3_settings: MakeSettings, s3_admin: S3Client, s3_bucket: str
) -> None:
    storage = S3Storage(make_s3_settings())

    async def body() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"\x2a" * (1024 * 1024)

    stored = await storage.put("big.bin", body())

    # A multipart ETag ends in the number of parts: 8 + 8 + 4 MiB.
    assert stored.etag is not None
    assert stored.etag.endswith("-3")
    head = s3_admin.head_object(Bucket=s3_bucket, Key="big.bin")
    assert head["ContentLength"] == 20 * 1024 * 1024
    await storage.close()


@pytest.mark.parametrize("operation", ["check", "put", "read", "stat", "delete", "list"])
async def test_unreachable_server_is_unavailable(
    make_s3_settings: MakeSettings, dead_endpoint: str, operation: str
) -> None:
    storage = S3Storage(make_s3_settings(endpoint=dead_endpoint))
    started = time.monotonic()

    with pytest.raises(StorageUnavailable) as raised:
        await perform(storage, operation)

    assert raised.value.status == 503
    if operation == "check":
        # A readiness probe must answer inside a prober's timeout, not after retries.
        assert time.monotonic() - started < 2
    await storage.close()


async def test_missing_bucket_is_unavailable(make_s3_settings: MakeSettings) -> None:
    storage = S3Storage(make_s3_settings(bucket="kai-test-no-such-bucket"))

    with pytest.raises(StorageUnavailable):
        await storage.check()
    with pytest.raises(StorageUnavailable):
        await storage.put("org/a.txt", b"a")
    await storage.close()


async def test_create_storage_picks_s3(make_s3_settings: MakeSettings, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, storage=StorageSettings(backend="s3", s3=make_s3_settings())
    )

    storage = create_storage(settings)

    assert isinstance(storage, S3Storage)
    await storage.check()
    await storage.put("org/a.txt", b"a")
    assert await storage.read("org/a.txt") == b"a"
    # The S3 backend keeps nothing on local disk.
    assert os.listdir(tmp_path) == []
    await storage.close()
