"""Zip uploads read under a budget: what a request inflates is counted as it inflates.

A zip's headers say what its entries unpack to, and nothing obliges them to be true; a few
megabytes of deflate can hold gigabytes of zeros, and many entries may share one compressed
stream. So the bytes actually produced are counted, a chunk at a time, against one budget
that every archive of a request shares, and reading stops the moment it is spent. An entry
that is itself an archive (by its name or by its first bytes) is refused: a zip inside a zip
would multiply the budget's reach and is never what an upload needs.

What operating systems leave in the folders they zip (Finder's `.DS_Store` and `__MACOSX/`
resource forks, Explorer's `Thumbs.db` and `desktop.ini`, other hidden files) is never what
a person meant to upload: `ZipUpload.entries` leaves it out, for every kind of upload alike.

Only entries stored or compressed with deflate are read: zipfile inflates those a piece of
bounded size at a time, but decompresses a whole read of bzip2 or LZMA input with no limit on
what comes out (a 710-byte zip once became 1.5 GiB before the budget saw a byte of it).

Reading is blocking work: callers run it in a thread, never on the event loop.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Final

from kai.kit.errors import PayloadTooLarge

# Inflated a piece at a time: the most one read holds beyond what the caller keeps.
CHUNK_BYTES: Final = 64 * 1024
# Enough of an entry's start to recognise every archive format below (tar's mark is at 257).
_SNIFF_BYTES: Final = 262
_CENTRAL_ENTRY: Final = b"PK\x01\x02"
# The settings' default budget (KAI_ARCHIVE_INFLATE_FACTOR x KAI_MAX_BODY_BYTES), for work
# queued without one.
DEFAULT_MAX_INFLATED_BYTES: Final = 4 * 25 * 1024 * 1024

# How an entry may be compressed: the methods whose output zipfile bounds per read.
_READABLE_METHODS: Final = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_METHOD_NAMES: Final = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA", 9: "Deflate64"}

# Names that say "archive", whatever the content turns out to be.
ARCHIVE_SUFFIXES: Final = (
    ".zip", ".zipx", ".jar", ".gz", ".tgz", ".bz2", ".tbz2", ".xz", ".txz", ".zst", ".lz",
    ".lzma", ".7z", ".rar", ".tar", ".cab", ".iso", ".z",
)  # fmt: skip
_SIGNATURES: Final = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # an empty zip
    (b"PK\x07\x08", "zip"),  # a spanned zip
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"(\xb5/\xfd", "zstd"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
    (b"MSCF", "cab"),
    (b"\x1f\x9d", "compress"),
    (b"LZIP", "lzip"),
)


# Files and folders an operating system writes on its own (compared in lower case).
_SYSTEM_FILES: Final = frozenset({
    "thumbs.db", "ehthumbs.db", "ehthumbs_vista.db", "desktop.ini", "icon\r",
})  # fmt: skip
_SYSTEM_FOLDERS: Final = frozenset({
    "__macosx", "$recycle.bin", "system volume information",
})  # fmt: skip


def is_system_file(path: str) -> bool:
    """Whether a zip entry at `path` is one an operating system put there, not a person: a
    hidden file or one in a hidden folder (`.DS_Store`, `._photo.jpg`, `.Spotlight-V100/`,
    `.Trashes/`), a Windows or macOS folder file (`Thumbs.db`, `desktop.ini`, `Icon\\r`), or
    anything under `__MACOSX/`, `$RECYCLE.BIN/` or `System Volume Information/`."""
    parts = [part for part in path.replace("\\", "/").split("/") if part]
    if not parts:
        return False
    if any(part.startswith(".") or part.lower() in _SYSTEM_FOLDERS for part in parts):
        return True
    return parts[-1].lower() in _SYSTEM_FILES


class ArchiveTooLarge(PayloadTooLarge):
    type, title = "archive-too-large", "The archive unpacks to too much"


class UnreadableArchive(Exception):
    """A zip, or an entry of one, that cannot be read; the caller decides how to refuse it
    (`message` is safe to show: it names the entry, never the library's own words)."""

    def __init__(self, message: str, *, entry: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.entry = entry


class NestedArchive(UnreadableArchive):
    """An entry that is itself an archive."""


class InflateBudget:
    """Bytes the archives of one request may inflate to, all together."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("an inflate budget must be positive")
        self.limit = limit
        self.used = 0

    @property
    def remaining(self) -> int:
        return self.limit - self.used

    def charge(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise ArchiveTooLarge(
                f"The archives of this request unpack to more than {self.limit} bytes "
                "together; send fewer or smaller files at a time."
            )


def archive_kind(head: bytes) -> str | None:
    """The archive format `head` (the first bytes of a file) starts like, if any."""
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[257:262] == b"ustar":
        return "tar"
    return None


def looks_like_archive(name: str, head: bytes) -> str | None:
    """Why `name` with first bytes `head` is an archive (its format), or None."""
    kind = archive_kind(head)
    if kind is not None:
        return kind
    lowered = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lowered.endswith(suffix):
            return suffix.removeprefix(".")
    return None


class _Inflating(io.RawIOBase):
    """An entry's bytes as they are inflated, each read charged to the budget, the first
    ones checked for an archive."""

    def __init__(self, entry: IO[bytes], name: str, budget: InflateBudget) -> None:
        self._entry = entry
        self._name = name
        self._budget = budget
        self._checked = False
        self._pending = b""  # read for the sniffing, not yet handed out

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pending:
            data, self._pending = self._pending[: len(buffer)], self._pending[len(buffer) :]
        else:
            wanted = min(len(buffer), CHUNK_BYTES)
            with _entry_errors(self._name):
                data = self._entry.read(wanted if self._checked else max(wanted, _SNIFF_BYTES))
            self._budget.charge(len(data))
            if not self._checked:
                self._checked = True
                kind = looks_like_archive(self._name, data)
                if kind is not None:
                    raise NestedArchive(
                        f"{self._name} is itself an archive ({kind}); put its files in the "
                        "zip directly.",
                        entry=self._name,
                    )
            data, self._pending = data[: len(buffer)], data[len(buffer) :]
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._entry.close()
        finally:
            super().close()


@contextmanager
def _entry_errors(name: str) -> Iterator[None]:
    """What the zip library raises for a bad entry, as UnreadableArchive in plain words."""
    try:
        yield
    except RuntimeError as exc:
        # zipfile says "encrypted" this way; nothing else of ours raises RuntimeError here.
        message = "is encrypted" if "encrypt" in str(exc).lower() else "cannot be read"
        raise UnreadableArchive(f"{name} {message}.", entry=name) from None
    except NotImplementedError:
        raise UnreadableArchive(
            f"{name} is compressed in a way KAI does not read; use deflate.", entry=name
        ) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError):
        raise UnreadableArchive(f"{name} is damaged in the zip.", entry=name) from None


class ZipUpload:
    """An uploaded zip, its entries read under `budget` (shared by a request's archives).

    `entries` are its files, folders and system files (`is_system_file`) left out; the names
    of the system files are in `skipped`."""

    def __init__(self, data: bytes, *, name: str, budget: InflateBudget, max_entries: int) -> None:
        self.name = name
        self.budget = budget
        # Every entry the zip library lists starts with this mark in the central directory, so
        # its count bounds the entries before the library builds an object for each.
        if data.count(_CENTRAL_ENTRY) > max_entries:
            raise ArchiveTooLarge(f"{name} holds more than {max_entries} files.")
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            files = [info for info in self._zip.infolist() if not info.is_dir()]
        except Exception:
            # Whatever a malformed directory makes the library raise: BadZipFile, but also
            # NotImplementedError for a "version needed" it does not know, IndexError for an
            # empty name, and others. Each is the same refusal, in none of the library's words.
            raise UnreadableArchive(f"{name} is not a readable zip.") from None
        # Left out before anything is checked: how a system file is compressed, or what it
        # holds, is no reason to refuse the upload.
        self.entries = [info for info in files if not is_system_file(info.filename)]
        self.skipped = [info.filename for info in files if is_system_file(info.filename)]
        for info in self.entries:
            if info.compress_type not in _READABLE_METHODS:
                self.close()
                method = _METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
                raise UnreadableArchive(
                    f"{info.filename} is compressed with {method}, which KAI does not read; "
                    "zip the files again with deflate (the usual zip compression).",
                    entry=info.filename,
                )
        # What the headers claim is a bound worth checking first (nothing is inflated for a
        # zip that admits to being too large); the count while reading is what holds.
        claimed = sum(info.file_size for info in self.entries)
        if claimed > budget.limit:
            self.close()
            raise ArchiveTooLarge(
                f"{name} unpacks to {claimed} bytes; a request may unpack {budget.limit}."
            )

    def open(self, entry: zipfile.ZipInfo) -> io.BufferedReader:
        """The entry as a binary stream, counted against the budget as it is read."""
        with _entry_errors(entry.filename):
            opened = self._zip.open(entry)
        return io.BufferedReader(_Inflating(opened, entry.filename, self.budget), CHUNK_BYTES)

    def read(self, entry: zipfile.ZipInfo, *, limit: int) -> bytes:
        """The entry's bytes, or its first `limit + 1` when it is longer (for the caller to
        refuse by size without inflating the rest)."""
        return b"".join(self._pieces(entry, limit))

    def check(self, entry: zipfile.ZipInfo, *, limit: int) -> int:
        """Inflate the entry as `read` does without keeping it (the budget charged, nested
        archives and damage found); its size, or `limit + 1` when it is longer."""
        return sum(len(piece) for piece in self._pieces(entry, limit))

    def _pieces(self, entry: zipfile.ZipInfo, limit: int) -> Iterator[bytes]:
        kept = 0
        with self.open(entry) as stream:
            while kept <= limit:
                piece = stream.read(min(CHUNK_BYTES, limit + 1 - kept))
                if not piece:
                    return
                kept += len(piece)
                yield piece

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> ZipUpload:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def is_zip(data: bytes) -> bool:
    """Whether `data` starts like a zip (an empty one included)."""
    return archive_kind(data[:4]) == "zip"
