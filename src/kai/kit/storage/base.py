"""The object storage interface every backend implements, and the errors it raises."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass

from kai.kit.errors import KaiError

# Large enough that a thread hop per chunk costs nothing, small enough to stream.
CHUNK_SIZE = 1024 * 1024

# What HTTP assumes of bytes nobody described (RFC 9110 section 8.3); S3 would store its own
# `binary/octet-stream` otherwise, and both backends should answer alike.
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class InvalidObjectKey(KaiError):
    status, type, title = 400, "invalid-object-key", "The object key is not valid"


class ObjectNotFound(KaiError):
    status, type, title = 404, "object-not-found", "No object is stored under this key"


class StorageUnavailable(KaiError):
    status, type, title = 503, "storage-unavailable", "The object storage is unavailable"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What storage knows of one object.

    `etag` is an opaque, unquoted version tag. Listings carry key and size; `content_type`
    is None there (no backend returns it cheaply), so `stat()` the object for it.
    """

    key: str
    size: int
    content_type: str | None
    etag: str | None


class ObjectStorage(ABC):
    """Bytes stored under `/`-separated keys; every method keeps blocking I/O off the loop."""

    @abstractmethod
    async def put(
        self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> StoredObject:
        """Store `data` under `key`, replacing any object there; all or nothing."""

    @abstractmethod
    def open(self, key: str) -> AsyncGenerator[bytes, None]:
        """Stream the object in chunks of at most CHUNK_SIZE; ObjectNotFound on the first step.

        A consumer that may stop early should wrap it in `contextlib.aclosing`, so that the
        file or connection is released then rather than when the collector gets to it.
        """

    async def read(self, key: str) -> bytes:
        """The whole object in memory; use `open()` for anything large."""
        return b"".join([chunk async for chunk in self.open(key)])

    @abstractmethod
    async def stat(self, key: str) -> StoredObject:
        """Size, content type and etag of the object; ObjectNotFound when there is none."""

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        try:
            await self.stat(key)
        except ObjectNotFound:
            return False
        return True

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object; removing one that is not there is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> AsyncGenerator[StoredObject, None]:
        """Objects whose keys start with `prefix`, in key order."""

    @abstractmethod
    async def check(self) -> None:
        """Readiness probe: raise StorageUnavailable unless the backend can serve requests."""

    async def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release connections; the storage is not used afterwards."""
