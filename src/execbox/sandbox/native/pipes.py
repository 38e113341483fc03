"""Pipes between the host and a box: one that carries data in at start, and reading one
from the event loop until what came makes sense."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def pipe_with(data: bytes) -> int:
    """A pipe's read end holding data (bwrap reads its seccomp program and options to EOF).

    The data must fit the pipe's buffer (64 KiB): nothing reads it before bwrap starts.
    """
    if len(data) > 65536:
        raise ValueError(f"{len(data)} bytes do not fit in a pipe")
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, data)
    finally:
        os.close(write_end)
    return read_end


async def read_until(fd: int, parse: Callable[[bytes], T | None]) -> T | None:
    """Read a non-blocking pipe from the event loop until ``parse`` makes sense of what came
    (its result), or until EOF (None)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T | None] = loop.create_future()
    data = bytearray()

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        data.extend(chunk)
        parsed = parse(bytes(data)) if chunk else None
        if not chunk or parsed is not None:
            loop.remove_reader(fd)
            done.set_result(parsed)

    loop.add_reader(fd, readable)
    try:
        return await done
    finally:
        # Also when cancelled: awaiting cancels `done`, and a reader left behind would
        # later set a result on it.
        loop.remove_reader(fd)
