"""Validate the files of a request: relative paths inside the work dir, nothing else."""

from __future__ import annotations

from pathlib import PurePosixPath

from execbox.engine.errors import InvalidRequest
from execbox.engine.model import SourceFile

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024
MAX_DEPTH = 8


def check_name(name: str) -> str:
    """Return the normalised relative path, or raise InvalidRequest naming the problem."""
    if not name:
        raise InvalidRequest("file name must not be empty")
    if "\x00" in name:
        raise InvalidRequest(f"file name {name!r} contains a NUL byte")
    if len(name.encode()) > MAX_PATH_BYTES:
        raise InvalidRequest(f"file name is longer than {MAX_PATH_BYTES} bytes")
    if name.startswith("/"):
        raise InvalidRequest(f"file name {name!r} is absolute; use a path relative to the work dir")
    if "\\" in name:
        raise InvalidRequest(f"file name {name!r} contains a backslash")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts:
        raise InvalidRequest(f"file name {name!r} does not name a file")
    if ".." in parts:
        raise InvalidRequest(f"file name {name!r} leaves the work dir ('..' is not allowed)")
    if len(parts) > MAX_DEPTH:
        raise InvalidRequest(f"file name {name!r} is nested deeper than {MAX_DEPTH} directories")
    for part in parts:
        if len(part.encode()) > MAX_NAME_BYTES:
            raise InvalidRequest(
                f"a part of file name {name!r} is longer than {MAX_NAME_BYTES} bytes"
            )
        if any(ord(c) < 32 for c in part):
            raise InvalidRequest(f"file name {name!r} contains a control character")
    return str(PurePosixPath(*parts))


def check_files(files: list[SourceFile], max_files: int) -> list[SourceFile]:
    if not files:
        raise InvalidRequest("send `code` or at least one file")
    if len(files) > max_files:
        raise InvalidRequest(f"too many files: {len(files)} (at most {max_files})")
    seen: set[str] = set()
    checked = []
    for item in files:
        name = check_name(item.name)
        if name in seen:
            raise InvalidRequest(f"file {name!r} is given twice")
        seen.add(name)
        checked.append(SourceFile(name, item.content))
    # A file may not also be a directory of another (a.txt and a.txt/b).
    for name in seen:
        for parent in PurePosixPath(name).parents:
            if str(parent) in seen:
                raise InvalidRequest(f"{str(parent)!r} is both a file and a directory")
    return checked
