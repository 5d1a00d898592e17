"""Hostile zips for the tests, built without inflating anything: a repeated deflate block
makes hundreds of megabytes out of a few kilobytes, in milliseconds."""

from __future__ import annotations

import asyncio
import functools
import io
import random
import struct
import time
import zipfile
import zlib
from collections.abc import Awaitable
from dataclasses import dataclass

from httpx import AsyncClient, Response

MIB = 1024 * 1024


@dataclass(frozen=True)
class Entry:
    name: str
    deflated: bytes
    crc: int
    size: int


@functools.cache
def bomb_entry(name: str, mebibytes: int, pattern: bytes = b"\x00") -> Entry:
    """An entry that inflates to `mebibytes` MiB of `pattern` repeated, stated truthfully in
    its headers (as the zip of the issue: 600 KiB that unpacked to 600 MiB)."""
    chunk = (pattern * (MIB // len(pattern) + 1))[:MIB]
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the compressor starts afresh: the same MiB gives the same bytes.
    repeated = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = _repeated_crc(chunk, mebibytes)
    stream = first + repeated * (mebibytes - 1) + compressor.flush()
    return Entry(name, stream, crc, mebibytes * MIB)


@functools.cache
def _repeated_crc(chunk: bytes, times: int) -> int:
    crc = 0
    for _ in range(times):
        crc = zlib.crc32(chunk, crc)
    return crc


def deflated_entry(name: str, data: bytes) -> Entry:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return Entry(name, compressor.compress(data) + compressor.flush(), zlib.crc32(data), len(data))


def zip_of(*entries: Entry) -> bytes:
    """A zip of already deflated entries (zipfile cannot write those)."""
    out = io.BytesIO()
    central = io.BytesIO()
    deflate, version, dos_date = 8, 20, 0x21  # 1980-01-01
    for entry in entries:
        name = entry.name.encode()
        sizes = (entry.crc, len(entry.deflated), entry.size, len(name))
        offset = out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, version, 0, deflate, 0, dos_date,
                              *sizes, 0))  # fmt: skip
        out.write(name + entry.deflated)
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, version, version, 0,
                                  deflate, 0, dos_date, *sizes, 0, 0, 0, 0, 0, offset))  # fmt: skip
        central.write(name)
    directory = central.getvalue()
    start = out.tell()
    out.write(directory)
    count = len(entries)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(directory), start, 0))
    return out.getvalue()


def plain_zip(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _central_entry(data: bytearray) -> int:
    return data.index(b"PK\x01\x02")


def needing_version(archive: bytes, version: int) -> bytes:
    """`archive` whose first entry says it needs zip version `version` / 10 to extract."""
    data = bytearray(archive)
    data[_central_entry(data) + 6] = version
    return bytes(data)


def with_empty_name(archive: bytes) -> bytes:
    """`archive` whose first entry's name, in the central directory, is empty."""
    data = bytearray(archive)
    entry = _central_entry(data)
    length = int.from_bytes(data[entry + 28 : entry + 30], "little")
    data[entry + 28 : entry + 30] = b"\0\0"
    del data[entry + 46 : entry + 46 + length]
    end = data.rindex(b"PK\x05\x06")
    size = int.from_bytes(data[end + 12 : end + 16], "little") - length
    data[end + 12 : end + 16] = size.to_bytes(4, "little")
    return bytes(data)


def mutated(archive: bytes, count: int, *, seed: int) -> list[bytes]:
    """`count` copies of `archive`, each with one to six bytes set at random (the same ones
    for the same seed); half of them changed in the central directory, which the zip library
    reads first."""
    rng = random.Random(seed)  # noqa: S311 - repeatable test input, not a secret
    directory = archive.index(b"PK\x01\x02")
    copies = []
    for number in range(count):
        data = bytearray(archive)
        start = directory if number % 2 else 0
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(start, len(data))] = rng.randrange(256)
        copies.append(bytes(data))
    return copies


async def while_pinging(
    client: AsyncClient, request: Awaitable[Response]
) -> tuple[Response, list[float]]:
    """`request`'s answer, and how long each `/healthz` asked meanwhile took to answer."""
    task = asyncio.ensure_future(request)
    latencies: list[float] = []
    while not task.done():
        started = time.perf_counter()
        health = await client.get("/healthz")
        latencies.append(time.perf_counter() - started)
        assert health.status_code == 200
        await asyncio.sleep(0.01)
    return await task, latencies
