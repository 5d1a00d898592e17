"""Objects in an S3-compatible bucket: AWS, MinIO, Ceph, R2 and the like."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

import anyio
import structlog
from anyio import to_thread
from pydantic import SecretStr

from kai.config import S3Settings
from kai.kit.storage.base import (
    CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    InvalidObjectKey,
    ObjectNotFound,
    ObjectStorage,
    StorageUnavailable,
    StoredObject,
)
from kai.kit.storage.keys import MAX_KEY_BYTES, validate_key, validate_prefix

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

T = TypeVar("T")

# S3 refuses parts under 5 MiB except the last; bigger parts mean fewer requests.
PART_SIZE = 8 * 1024 * 1024

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})

log = structlog.get_logger(__name__)


class S3Storage(ObjectStorage):
    """Each object is `<prefix><key>` in the configured bucket."""

    def __init__(self, settings: S3Settings) -> None:
        # Imported here: boto3 takes a noticeable part of a second, and `import kai` should not.
        import boto3
        from botocore.config import Config

        self._bucket = settings.bucket
        self._prefix = _normalized_prefix(settings.prefix)
        session = boto3.session.Session(
            aws_access_key_id=_secret(settings.access_key_id),
            aws_secret_access_key=_secret(settings.secret_access_key),
            region_name=settings.region,
        )
        common = Config(
            # Servers other than AWS tend to want bucket names in the path, not the host name.
            s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
            # Several S3-compatible servers reject the checksums botocore adds by default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: S3Client = session.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            config=common.merge(
                Config(
                    connect_timeout=5,
                    read_timeout=60,
                    retries={"mode": "standard", "max_attempts": 3},
                    # Matches anyio's worker thread limit, so threads need not queue for sockets.
                    max_pool_connections=40,
                )
            ),
        )
        # A readiness probe must answer within the prober's timeout, not after retries.
        self._probe_client: S3Client = session.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            config=common.merge(
                Config(
                    connect_timeout=2,
                    read_timeout=2,
                    retries={"mode": "standard", "max_attempts": 1},
                )
            ),
        )

    async def put(
        self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> StoredObject:
        """One PutObject for bytes and short streams; a multipart upload for longer streams."""
        full_key = self._full_key(key)
        content_type = content_type or DEFAULT_CONTENT_TYPE
        if isinstance(data, bytes):
            etag = await self._put_object(key, full_key, data, content_type)
            return StoredObject(key, len(data), content_type, etag)

        upload = _MultipartUpload(self._client, self._bucket, full_key, content_type)
        pending = bytearray()
        size = 0
        try:
            async for chunk in data:
                pending += chunk
                size += len(chunk)
                if len(pending) >= PART_SIZE:
                    with _s3_errors(key):
                        await upload.send_part(bytes(pending))
                    pending.clear()
            if not upload.started:
                etag = await self._put_object(key, full_key, bytes(pending), content_type)
            else:
                with _s3_errors(key):
                    if pending:
                        await upload.send_part(bytes(pending))
                    etag = await upload.complete()
        except BaseException:
            if upload.started:
                # Shielded: an abandoned upload keeps its parts, and the bill, until aborted.
                with anyio.CancelScope(shield=True):
                    await upload.abort()
            raise
        return StoredObject(key, size, content_type, etag)

    async def open(self, key: str) -> AsyncGenerator[bytes, None]:
        """Stream the body in chunks; GetObject is sent when the first chunk is asked for."""
        full_key = self._full_key(key)
        with _s3_errors(key):
            response = await self._call(
                lambda: self._client.get_object(Bucket=self._bucket, Key=full_key)
            )
        body = response["Body"]
        chunks = body.iter_chunks(CHUNK_SIZE)
        try:
            while True:
                with _s3_errors(key):
                    chunk = await to_thread.run_sync(_next_or_none, chunks)
                if chunk is None:
                    return
                yield chunk
        finally:
            # Synchronous so that it also runs when the collector closes an abandoned stream.
            body.close()

    async def read(self, key: str) -> bytes:
        """The whole body, fetched and read in one thread hop."""
        full_key = self._full_key(key)

        def fetch() -> bytes:
            response = self._client.get_object(Bucket=self._bucket, Key=full_key)
            with contextlib.closing(response["Body"]) as body:
                return body.read()

        with _s3_errors(key):
            return await self._call(fetch)

    async def stat(self, key: str) -> StoredObject:
        """HeadObject: size, content type and etag."""
        full_key = self._full_key(key)
        with _s3_errors(key):
            head = await self._call(
                lambda: self._client.head_object(Bucket=self._bucket, Key=full_key)
            )
        return StoredObject(
            key, head["ContentLength"], head.get("ContentType"), _unquoted(head.get("ETag"))
        )

    async def delete(self, key: str) -> None:
        """DeleteObject, which S3 answers alike whether or not the object was there."""
        full_key = self._full_key(key)
        with _s3_errors(key):
            await self._call(lambda: self._client.delete_object(Bucket=self._bucket, Key=full_key))

    async def list(self, prefix: str = "") -> AsyncGenerator[StoredObject, None]:
        """ListObjectsV2, a page (up to 1000 keys) per request, in S3's key order."""
        validate_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=self._bucket, Prefix=self._prefix + prefix))
        while True:
            with _s3_errors(None):
                page = await to_thread.run_sync(_next_or_none, pages)
            if page is None:
                return
            for item in page.get("Contents", []):
                key = item["Key"].removeprefix(self._prefix)
                try:
                    validate_key(key)
                except InvalidObjectKey:
                    # Written by something else under a name this interface cannot address.
                    continue
                yield StoredObject(key, item["Size"], None, _unquoted(item.get("ETag")))

    async def check(self) -> None:
        """HeadBucket, without retries: the bucket exists and these credentials reach it."""
        try:
            await self._call(lambda: self._probe_client.head_bucket(Bucket=self._bucket))
        except Exception as exc:
            raise StorageUnavailable(f"The bucket {self._bucket!r} is not usable: {exc}") from exc

    async def close(self) -> None:
        """Close both clients' connection pools."""
        await to_thread.run_sync(self._client.close)
        await to_thread.run_sync(self._probe_client.close)

    def _full_key(self, key: str) -> str:
        full_key = self._prefix + validate_key(key)
        if len(full_key.encode()) > MAX_KEY_BYTES:
            raise InvalidObjectKey(f"The object key is too long under the prefix {self._prefix!r}.")
        return full_key

    async def _put_object(
        self, key: str, full_key: str, body: bytes, content_type: str
    ) -> str | None:
        with _s3_errors(key):
            response = await self._call(
                lambda: self._client.put_object(
                    Bucket=self._bucket, Key=full_key, Body=body, ContentType=content_type
                )
            )
        return _unquoted(response["ETag"])

    @staticmethod
    async def _call(function: Callable[[], T]) -> T:
        return await to_thread.run_sync(function)


class _MultipartUpload:
    """One multipart upload, started by its first part."""

    def __init__(self, client: S3Client, bucket: str, key: str, content_type: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._content_type = content_type
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []

    @property
    def started(self) -> bool:
        return self._upload_id is not None

    async def send_part(self, body: bytes) -> None:
        if self._upload_id is None:
            created = await to_thread.run_sync(
                lambda: self._client.create_multipart_upload(
                    Bucket=self._bucket, Key=self._key, ContentType=self._content_type
                )
            )
            self._upload_id = created["UploadId"]
        upload_id = self._upload_id
        number = len(self._parts) + 1
        sent = await to_thread.run_sync(
            lambda: self._client.upload_part(
                Bucket=self._bucket, Key=self._key, UploadId=upload_id, PartNumber=number, Body=body
            )
        )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    async def complete(self) -> str | None:
        assert self._upload_id is not None
        upload_id = self._upload_id
        completed = await to_thread.run_sync(
            lambda: self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        )
        return _unquoted(completed.get("ETag"))

    async def abort(self) -> None:
        if self._upload_id is None:
            return
        upload_id = self._upload_id
        try:
            await to_thread.run_sync(
                lambda: self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=upload_id
                )
            )
        except Exception:
            # The upload failed already; a bucket lifecycle rule collects what this leaves.
            log.warning("storage.s3.abort_failed", key=self._key, exc_info=True)


@contextlib.contextmanager
def _s3_errors(key: str | None) -> Iterator[None]:
    """Translate botocore's errors: a missing key, an unreachable or refusing backend."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        CredentialRetrievalError,
        HTTPClientError,
        IncompleteReadError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if key is not None and code in _NOT_FOUND_CODES:
            raise ObjectNotFound(f"No object is stored under {key!r}.") from None
        if code == "NoSuchBucket" or status in (401, 403) or status >= 500:
            raise StorageUnavailable(f"S3 refused the request: {code or status}.") from exc
        raise
    except (
        ConnectionError,
        HTTPClientError,
        IncompleteReadError,
        NoCredentialsError,
        PartialCredentialsError,
        CredentialRetrievalError,
    ) as exc:
        raise StorageUnavailable(f"S3 could not be reached: {exc}") from exc


def _normalized_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{validate_key(prefix)}/" if prefix else ""


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _unquoted(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


def _next_or_none(items: Iterator[T]) -> T | None:
    return next(items, None)
