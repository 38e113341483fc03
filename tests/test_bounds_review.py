"""Bounds a security review found missing: a zip whose end record lies about its entry count,
stored results that carried output files beyond the documented bound, and a language whose
discovery asks to bind-mount a whole system directory."""

from __future__ import annotations

import struct
import time
import zipfile
import zlib

import pytest
from conftest import slow

from execbox.api.archives import BadArchive, unzip

MiB = 1024 * 1024


def zip_with_understated_count(entries: int, claimed: int) -> bytes:
    """A zip of ``entries`` empty stored files whose end record claims only ``claimed``."""
    local = bytearray()
    central = bytearray()
    crc = zlib.crc32(b"")
    for index in range(entries):
        name = f"f{index:05}".encode()
        offset = len(local)
        local += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, 0, 0,
                             len(name), 0) + name  # fmt: skip
        central += struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 0, 20, 0, 0, 0, 0, 0, crc,
                               0, 0, len(name), 0, 0, 0, 0, 0, offset) + name  # fmt: skip
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, claimed, claimed, len(central),
                      len(local), 0)  # fmt: skip
    return bytes(local + central + end)


def test_a_zip_that_understates_its_entry_count_is_refused_before_it_is_parsed(monkeypatch):
    archive = zip_with_understated_count(entries=60_000, claimed=1)
    assert len(archive) < 10 * MiB  # under the request limit: the service would accept it
    parsed = []
    real_zipfile = zipfile.ZipFile
    monkeypatch.setattr(
        zipfile,
        "ZipFile",
        lambda *args, **kwargs: parsed.append(1) or real_zipfile(*args, **kwargs),
    )
    started = time.monotonic()
    with pytest.raises(BadArchive, match=r"more than 126 entries \(at most 63 files\)"):
        unzip(archive, max_files=63, max_bytes=10 * MiB)
    # zipfile parsing all 60,000 headers takes seconds; counting 127 of them, milliseconds.
    assert time.monotonic() - started < slow(0.5)
    assert not parsed, "zipfile parsed the whole central directory before the refusal"


def test_a_zip_within_the_entry_count_still_unpacks():
    files = unzip(zip_with_understated_count(entries=5, claimed=5), max_files=63, max_bytes=MiB)
    assert [file.name for file in files] == [f"f{index:05}" for index in range(5)]
    assert all(file.content == b"" for file in files)


def test_a_zip_with_a_garbled_central_directory_is_refused_as_invalid():
    archive = bytearray(zip_with_understated_count(entries=3, claimed=3))
    central = archive.index(b"PK\x01\x02")
    archive[central : central + 4] = b"XXXX"
    with pytest.raises(BadArchive, match="is not a valid zip archive"):
        unzip(bytes(archive), max_files=63, max_bytes=MiB)
