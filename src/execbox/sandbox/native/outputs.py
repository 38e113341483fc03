"""Reading a run's output files from its host work dir, once every process of it is dead.

Like workdir.collect_files (a compile's artifacts): a depth-first walk holding one descriptor
per level, every open relative to its parent's descriptor with O_NOFOLLOW (a symlink, or a
directory swapped for one, is never followed), only regular files opened (O_NONBLOCK: a FIFO
could not block the open, and fstat refuses it anyway), at most MAX_WALK_ENTRIES entries and
MAX_WALK_DEPTH levels, and a file read only up to the size fstat gave, within what is left of
the byte bound. Blocking: called in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from execbox.sandbox.native.workdir import read_regular
from execbox.sandbox.outputs import (
    MAX_WALK_DEPTH,
    MAX_WALK_ENTRIES,
    OutputFile,
    OutputRequest,
    Outputs,
    acceptable_name,
    choose,
    matcher,
)

DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def collect_outputs(root: Path, request: OutputRequest) -> Outputs:
    found = _find(root, request)
    choice = choose(found, request)
    files = []
    left = request.max_bytes
    for name in choice.names:
        content = _read(root, name, left)
        if content is None:  # changed since the walk: nothing runs now, but trust no tree
            continue
        left -= len(content)
        files.append(OutputFile(name, content))
    return Outputs(tuple(files), tuple(sorted(choice.limits_hit)))


def _find(root: Path, request: OutputRequest) -> list[tuple[str, int]]:
    """Up to max_files + 1 matching regular files, (name, size), in walk order."""
    matches = matcher(request.patterns)
    found: list[tuple[str, int]] = []
    visited = 0
    root_fd = os.open(root, DIRECTORY)
    # One level per open directory: its fd, its path prefix, and its entries still to visit.
    path: list[tuple[int, str, list[tuple[str, int, int]]]] = []
    try:
        path.append((root_fd, "", _entries(root_fd)))
    except BaseException:
        os.close(root_fd)
        raise
    try:
        while path and len(found) <= request.max_files:
            dir_fd, prefix, entries = path[-1]
            if not entries or visited >= MAX_WALK_ENTRIES:
                os.close(path.pop()[0])
                continue
            name, mode, size = entries.pop()
            visited += 1
            relative = f"{prefix}{name}"
            if not acceptable_name(name):
                continue
            if stat.S_ISDIR(mode) and len(path) < MAX_WALK_DEPTH:
                try:
                    child = os.open(name, DIRECTORY, dir_fd=dir_fd)
                except OSError:
                    continue
                try:
                    path.append((child, relative + "/", _entries(child)))
                except BaseException:
                    os.close(child)
                    raise
            elif stat.S_ISREG(mode) and matches(relative):
                found.append((relative, size))
    finally:
        for fd, _, _ in path:
            os.close(fd)
    return found


def _entries(dir_fd: int) -> list[tuple[str, int, int]]:
    """A directory's entries as (name, mode, size), never following a link; reversed, so that
    popping them visits them in the order listed."""
    listed = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if len(listed) >= MAX_WALK_ENTRIES:
                break
            with contextlib.suppress(OSError):
                info = entry.stat(follow_symlinks=False)
                listed.append((entry.name, info.st_mode, info.st_size))
    listed.reverse()
    return listed


def _read(root: Path, name: str, budget: int) -> bytes | None:
    """A regular file's bytes, opened part by part without following links; None if it is
    not a regular file (any more) or is larger than ``budget``."""
    parts = name.split("/")
    fd = os.open(root, DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                child = os.open(part, DIRECTORY, dir_fd=fd)
            except OSError:
                return None
            os.close(fd)
            fd = child
        return read_regular(fd, parts[-1], budget)
    finally:
        os.close(fd)
