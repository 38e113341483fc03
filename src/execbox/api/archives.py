"""Unpacking a zip a client sent (Judge0's ``additional_files``) without trusting it.

A zip says how big each entry is, but the deflate stream decides: an entry that declares one
byte can inflate to gigabytes, and several entries can point at one stream. Each entry is
inflated here in bounded chunks, from its own compressed bytes, and the archive is refused as
soon as an entry inflates past its declared size, the archive past ``max_bytes``, or past
``MAX_RATIO`` times its own size. This is CPU work: callers run it off the event loop, in the
small pool ``run_bounded`` uses, so a flood of archives cannot take every worker thread.
"""

from __future__ import annotations

import asyncio
import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from execbox.engine import SourceFile

CHUNK_BYTES = 64 * 1024
# Inflated bytes per byte of archive, beyond the first MiB: text compresses ~10x, zeros ~1000x.
MAX_RATIO = 100
RATIO_FREE_BYTES = 1024 * 1024
LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
LOCAL_MAGIC = b"PK\x03\x04"
# zipfile's own layout of a central-directory header: 46 bytes, then name, extra, comment.
CENTRAL_HEADER = struct.Struct(zipfile.structCentralDir)  # type: ignore[attr-defined]
CENTRAL_MAGIC = b"PK\x01\x02"
NAME_LENGTH = zipfile._CD_FILENAME_LENGTH  # type: ignore[attr-defined]
COMMENT_LENGTH = zipfile._CD_COMMENT_LENGTH  # type: ignore[attr-defined]

_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="execbox-unpack")
T = TypeVar("T")


class BadArchive(ValueError):
    """The archive is malformed, or unpacks to more than is allowed; the message says which."""


async def run_bounded(work: Callable[[], T]) -> T:
    """Run CPU-bound unpacking off the event loop, at most two at a time."""
    return await asyncio.get_running_loop().run_in_executor(_pool, work)


def unzip(data: bytes, max_files: int, max_bytes: int) -> list[SourceFile]:
    """The regular files of a zip archive, each inflated under the bounds above."""
    budget = min(max_bytes, max(RATIO_FREE_BYTES, MAX_RATIO * len(data)))
    try:
        _check_entry_count(data, max_files)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = [info for info in archive.infolist() if not info.is_dir()]
            if len(entries) > max_files:
                raise BadArchive(f"has {len(entries)} files (at most {max_files})")
            declared = sum(info.file_size for info in entries)
            if declared > budget:
                raise BadArchive(f"unzips to {declared} bytes (at most {budget})")
            files = []
            for info in entries:
                content = _inflate(data, info, budget)
                budget -= len(content)
                files.append(SourceFile(info.filename, content))
            return files
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,  # a corrupt deflate stream
        struct.error,
        NotImplementedError,  # a compression method zipfile lacks
        ValueError,
        OSError,
        EOFError,
    ) as err:
        if isinstance(err, BadArchive):
            raise
        raise BadArchive("is not a valid zip archive") from None


def _check_entry_count(data: bytes, max_files: int) -> None:
    """Refuse an archive with too many entries before zipfile builds an object for each.

    The end record's entry count is only a claim: zipfile parses central-directory headers
    until the directory's declared size is used up, whatever the count says. So the headers
    are walked here the same way (a fixed part plus three variable lengths), stopping as soon
    as there are too many.
    """
    end = zipfile._EndRecData(io.BytesIO(data))  # type: ignore[attr-defined]
    if end is None:
        raise BadArchive("is not a valid zip archive")
    # Directories count too: an archive may hold a few beside its files, not thousands.
    limit = 2 * max_files
    claimed = end[zipfile._ECD_ENTRIES_TOTAL]  # type: ignore[attr-defined]
    if claimed > limit:
        raise BadArchive(f"has {claimed} entries (at most {max_files} files)")
    walked = _count_directory_entries(data, end, limit)
    if walked > limit:
        raise BadArchive(f"has more than {limit} entries (at most {max_files} files)")


def _count_directory_entries(data: bytes, end: list, limit: int) -> int:
    """The central directory's headers counted as zipfile would parse them, up to limit + 1."""
    size = end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    offset = end[zipfile._ECD_OFFSET]  # type: ignore[attr-defined]
    # Where zipfile looks for the directory: data prepended to the archive shifts it.
    start = end[zipfile._ECD_LOCATION] - size  # type: ignore[attr-defined]
    if end[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:  # type: ignore[attr-defined]
        start -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator  # type: ignore[attr-defined]
    if start < 0 or offset < 0:
        raise BadArchive("is not a valid zip archive")
    directory = data[start : start + size]
    position = count = 0
    while position < size and count <= limit:
        header = directory[position : position + CENTRAL_HEADER.size]
        if len(header) < CENTRAL_HEADER.size or header[:4] != CENTRAL_MAGIC:
            raise BadArchive("is not a valid zip archive")
        fields = CENTRAL_HEADER.unpack(header)
        name_length, extra_length, comment_length = fields[NAME_LENGTH : COMMENT_LENGTH + 1]
        position += CENTRAL_HEADER.size + name_length + extra_length + comment_length
        count += 1
    return count


def _inflate(data: bytes, info: zipfile.ZipInfo, budget: int) -> bytes:
    """One entry's bytes, read from its own compressed data and checked against its header."""
    if info.flag_bits & 0x1:
        raise BadArchive(f"entry {info.filename!r} is encrypted")
    raw = _compressed(data, info)
    name = info.filename
    limit = min(budget, info.file_size)
    if info.compress_type == zipfile.ZIP_STORED:
        content = raw
        if len(content) > limit:
            raise BadArchive(f"entry {name!r} is larger than it declares or than allowed")
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        content = _inflate_deflate(raw, limit, name)
    else:
        raise BadArchive(f"entry {name!r} uses an unsupported compression (stored or deflate)")
    if len(content) != info.file_size or zlib.crc32(content) != info.CRC:
        raise BadArchive(f"entry {name!r} does not match its declared size and checksum")
    return content


def _compressed(data: bytes, info: zipfile.ZipInfo) -> bytes:
    start = info.header_offset
    header = data[start : start + LOCAL_HEADER.size]
    if len(header) < LOCAL_HEADER.size or header[:4] != LOCAL_MAGIC:
        raise BadArchive(f"entry {info.filename!r} has no valid local header")
    fields = LOCAL_HEADER.unpack(header)
    begin = start + LOCAL_HEADER.size + fields[9] + fields[10]
    raw = data[begin : begin + info.compress_size]
    if len(raw) != info.compress_size:
        raise BadArchive(f"entry {info.filename!r} is cut short")
    return raw


def _inflate_deflate(raw: bytes, limit: int, name: str) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    pending = raw
    while not inflater.eof:
        if not pending:
            out += inflater.flush()  # what zlib still holds: at most its window
            if not inflater.eof or len(out) > limit:
                raise BadArchive(f"entry {name!r} is cut short or inflates past its size")
            break
        # Never ask for more than one chunk past the limit: a bomb stops within a chunk.
        out += inflater.decompress(pending, min(CHUNK_BYTES, limit - len(out) + 1))
        if len(out) > limit:
            raise BadArchive(f"entry {name!r} inflates past its declared size or the limit")
        pending = inflater.unconsumed_tail
    return bytes(out)
