"""Objects as plain files under a root folder: the embedded run and single-machine installs."""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import json
import os
import stat as stat_mode
import tempfile
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from anyio import to_thread

from kai.kit.storage.base import (
    CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    InvalidObjectKey,
    ObjectNotFound,
    ObjectStorage,
    StorageUnavailable,
    StoredObject,
)
from kai.kit.storage.keys import validate_key, validate_prefix

if TYPE_CHECKING:
    from _hashlib import HASH

# Staged uploads and metadata live in here, inside the root so that moving a finished upload
# into place is a rename on one filesystem; no key may start with it.
INTERNAL_DIR = ".kai"

# Errors that mean "there is no such file", whichever way the path failed.
_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG})


def _md5() -> HASH:
    # md5 because S3 reports it as the ETag of single-part uploads, not for security.
    return hashlib.md5(usedforsecurity=False)


@dataclass
class _Upload:
    """A staged file being filled, renamed over the key once complete."""

    file: IO[bytes]
    path: Path
    digest: HASH = field(default_factory=_md5)
    pending: bytearray = field(default_factory=bytearray)

    def write(self, chunk: bytes) -> None:
        with _disk_errors("write an upload"):
            self.file.write(chunk)
        self.digest.update(chunk)

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class LocalStorage(ObjectStorage):
    """Each object is the file `root/<key>`; its metadata sits in `root/.kai/meta/<key>.json`."""

    def __init__(self, root: Path) -> None:
        self._root = root.expanduser().absolute()

    @property
    def root(self) -> Path:
        return self._root

    async def put(
        self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> StoredObject:
        """Stage `data` in a temp file, fsync it, then rename it over `key`."""
        key = _checked_key(key)
        content_type = content_type or DEFAULT_CONTENT_TYPE
        upload = await to_thread.run_sync(self._begin_upload)
        try:
            if isinstance(data, bytes):
                await to_thread.run_sync(upload.write, data)
            else:
                async for chunk in data:
                    # Many small chunks (an HTTP body) would cost a thread hop each.
                    upload.pending += chunk
                    if len(upload.pending) >= CHUNK_SIZE:
                        await to_thread.run_sync(upload.write, bytes(upload.pending))
                        upload.pending.clear()
                if upload.pending:
                    await to_thread.run_sync(upload.write, bytes(upload.pending))
            return await to_thread.run_sync(self._finish_upload, upload, key, content_type)
        except BaseException:
            # Synchronous on purpose: a cancelled task may not get to await again.
            upload.discard()
            raise

    async def open(self, key: str) -> AsyncGenerator[bytes, None]:
        """Stream the file in chunks; it is opened when the first chunk is asked for."""
        key = _checked_key(key)
        file = await to_thread.run_sync(self._open_object, key)
        try:
            while chunk := await to_thread.run_sync(file.read, CHUNK_SIZE):
                yield chunk
        finally:
            # Synchronous so that it also runs when the collector closes an abandoned stream.
            file.close()

    async def read(self, key: str) -> bytes:
        """The whole file, in one thread hop."""
        key = _checked_key(key)
        return await to_thread.run_sync(self._read_object, key)

    async def stat(self, key: str) -> StoredObject:
        """Size from the file; content type and etag from its metadata."""
        key = _checked_key(key)
        return await to_thread.run_sync(self._stat_object, key)

    async def delete(self, key: str) -> None:
        """Remove the file and its metadata, then the folders that leaves empty."""
        key = _checked_key(key)
        await to_thread.run_sync(self._delete_object, key)

    async def list(self, prefix: str = "") -> AsyncGenerator[StoredObject, None]:
        """Files whose keys start with `prefix`, in key order."""
        validate_prefix(prefix)
        for stored in await to_thread.run_sync(self._scan, prefix):
            yield stored

    async def check(self) -> None:
        """Write, fsync and remove a probe file where uploads are staged."""
        await to_thread.run_sync(self._probe)

    # Everything below runs in a worker thread.

    def _existing_root(self) -> Path:
        # Never created here: a missing root is usually a volume that failed to mount, and
        # writing to the disk underneath would hide that until the data seems lost.
        try:
            root = self._root.resolve(strict=True)
        except OSError as exc:
            raise StorageUnavailable(f"The storage root {self._root} is not reachable.") from exc
        if not root.is_dir():
            raise StorageUnavailable(f"The storage root {self._root} is not a folder.")
        return root

    def _staging_dir(self, root: Path) -> Path:
        staging = root / INTERNAL_DIR / "tmp"
        with _disk_errors("prepare the staging folder"):
            staging.mkdir(parents=True, exist_ok=True)
        return staging

    def _begin_upload(self) -> _Upload:
        staging = self._staging_dir(self._existing_root())
        with _disk_errors("stage an upload"):
            fd, name = tempfile.mkstemp(dir=staging, prefix="put-", suffix=".part")
        return _Upload(file=os.fdopen(fd, "wb"), path=Path(name))

    def _finish_upload(self, upload: _Upload, key: str, content_type: str) -> StoredObject:
        with _disk_errors("flush an upload"):
            upload.file.flush()
            os.fsync(upload.file.fileno())
            size = os.fstat(upload.file.fileno()).st_size
            upload.file.close()
        stored = StoredObject(key, size, content_type, upload.digest.hexdigest())
        root = self._existing_root()
        target = _object_path(root, key)
        meta_target = _meta_path(root, key)
        # Staged before the data moves, so that the two renames follow each other closely.
        with _disk_errors("stage metadata"):
            meta_staged = _write_staged(upload.path.parent, _encode_meta(stored))
        try:
            _rename_into(upload.path, target, key)
            _rename_into(meta_staged, meta_target, key)
        finally:
            meta_staged.unlink(missing_ok=True)
        return stored

    def _open_object(self, key: str) -> IO[bytes]:
        path = _object_path(self._existing_root(), key)
        with _not_found_errors(key):
            # Closed by the streaming generator, which outlives any `with` here.
            file = path.open("rb")
        if not stat_mode.S_ISREG(os.fstat(file.fileno()).st_mode):
            file.close()
            raise ObjectNotFound(f"No object is stored under {key!r}.")
        return file

    def _read_object(self, key: str) -> bytes:
        with self._open_object(key) as file, _disk_errors(f"read {key!r}"):
            return file.read()

    def _stat_object(self, key: str) -> StoredObject:
        root = self._existing_root()
        with _not_found_errors(key):
            info = _object_path(root, key).stat()
        if not stat_mode.S_ISREG(info.st_mode):
            raise ObjectNotFound(f"No object is stored under {key!r}.")
        meta = _read_meta(_meta_path(root, key))
        # Metadata of another size was left by an earlier write that a crash interrupted.
        if meta.get("size") != info.st_size:
            meta = {}
        return StoredObject(key, info.st_size, meta.get("content_type"), meta.get("etag"))

    def _delete_object(self, key: str) -> None:
        root = self._existing_root()
        path = _object_path(root, key)
        meta_path = _meta_path(root, key)
        with _disk_errors(f"delete {key!r}"):
            _unlink_if_present(path)
            _unlink_if_present(meta_path)
        # An empty folder left behind would forbid a later object of the same name.
        _prune_empty_parents(path.parent, stop=root)
        _prune_empty_parents(meta_path.parent, stop=root / INTERNAL_DIR / "meta")

    def _scan(self, prefix: str) -> builtins.list[StoredObject]:
        root = self._existing_root()
        folder = prefix.rpartition("/")[0]
        if folder.split("/")[0] == INTERNAL_DIR:
            return []
        base = _object_path(root, folder) if folder else root
        found: builtins.list[StoredObject] = []
        for dirpath, dirnames, filenames in os.walk(base):
            here = Path(dirpath)
            if here == root:
                dirnames[:] = [name for name in dirnames if name != INTERNAL_DIR]
            for name in filenames:
                path = here / name
                key = path.relative_to(root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    validate_key(key)
                    info = path.lstat()
                except (InvalidObjectKey, FileNotFoundError):
                    # Files put there by hand under unusable names, or deleted meanwhile.
                    continue
                # Symlinks are left out: following one may lead outside the root.
                if stat_mode.S_ISREG(info.st_mode):
                    found.append(StoredObject(key, info.st_size, None, None))
        # Code point order is UTF-8 byte order, the order S3 lists in.
        found.sort(key=lambda stored: stored.key)
        return found

    def _probe(self) -> None:
        staging = self._staging_dir(self._existing_root())
        with _disk_errors("write a probe file"):
            _write_staged(staging, b"probe").unlink()


def _checked_key(key: str) -> str:
    validate_key(key)
    if key.split("/")[0] == INTERNAL_DIR:
        raise InvalidObjectKey(f"Keys under {INTERNAL_DIR}/ are reserved by local storage.")
    return key


def _object_path(root: Path, key: str) -> Path:
    return _contained(root, root / key, key)


def _meta_path(root: Path, key: str) -> Path:
    meta_root = root / INTERNAL_DIR / "meta"
    return _contained(meta_root, meta_root / f"{key}.json", key)


def _contained(base: Path, path: Path, key: str) -> Path:
    # Keys are validated already; this catches a symlink inside the root that points out.
    resolved = path.resolve()
    if not resolved.is_relative_to(base.resolve()):
        raise InvalidObjectKey(f"The object key {key!r} leads outside the storage root.")
    return resolved


@contextlib.contextmanager
def _disk_errors(action: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise StorageUnavailable(f"Local storage could not {action}: {exc}") from exc


@contextlib.contextmanager
def _not_found_errors(key: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno in _MISSING:
            raise ObjectNotFound(f"No object is stored under {key!r}.") from None
        raise StorageUnavailable(f"Local storage could not read {key!r}: {exc}") from exc


def _write_staged(staging: Path, content: bytes) -> Path:
    fd, name = tempfile.mkstemp(dir=staging, prefix="meta-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _rename_into(source: Path, target: Path, key: str) -> None:
    # A concurrent delete may prune the folder between mkdir and rename; then try again.
    attempts = 3
    for attempt in range(attempts):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            _fsync_dir(target.parent)
        except FileNotFoundError as exc:
            if attempt + 1 < attempts and source.exists():
                continue
            raise StorageUnavailable(f"Local storage could not store {key!r}: {exc}") from exc
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            raise InvalidObjectKey(
                f"Local storage cannot hold {key!r}: an object and a folder would share a name."
            ) from exc
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise InvalidObjectKey(f"A segment of {key!r} is too long for the disk.") from exc
            raise StorageUnavailable(f"Local storage could not store {key!r}: {exc}") from exc
        return


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; without it a power cut may undo a finished put.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_if_present(path: Path) -> None:
    try:
        path.unlink()
    except OSError as exc:
        if exc.errno not in _MISSING:
            raise


def _encode_meta(stored: StoredObject) -> bytes:
    meta = {"content_type": stored.content_type, "etag": stored.etag, "size": stored.size}
    return json.dumps(meta).encode()


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _prune_empty_parents(folder: Path, *, stop: Path) -> None:
    while folder != stop and folder.is_relative_to(stop):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
