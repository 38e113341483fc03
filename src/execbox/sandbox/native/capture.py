"""A running box's streams: its output read and capped as it arrives, its stdin fed, and for an
interactive run, output relayed and signals sent as they come."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field

from execbox.sandbox.native.box import Box
from execbox.sandbox.policy import LimitHit

READ_CHUNK = 1 << 16


@dataclass
class Watch:
    """What the stage's watchers saw while it ran."""

    limit: LimitHit | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def trip(self, limit: LimitHit) -> None:
        if self.limit is None:
            self.limit = limit
        self.stopped.set()


class Capture:
    """One output stream of the run, read from its pipe as data arrives, capped at ``cap``
    bytes (more trips the output limit and is read and dropped, so the writer never blocks)."""

    def __init__(
        self, name: str, fd: int, cap: int, watch: Watch, relay, combined: list[bytes]
    ) -> None:
        self.name, self.fd, self.cap, self.watch, self.relay = name, fd, cap, watch, relay
        self.combined = combined  # both streams' kept chunks, in the order they were read
        self.chunks: list[bytes] = []
        self.kept = 0
        self.truncated = False
        self.closed = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_reader(fd, self.read_available)

    def read_available(self, limit: int = 1 << 20) -> None:
        """Take what the pipe holds now, up to ``limit`` bytes (a writer may still be going)."""
        taken = 0
        while taken < limit and not self.closed.done():
            try:
                chunk = os.read(self.fd, READ_CHUNK)
            except BlockingIOError:
                return
            if not chunk:
                self.stop()
                return
            taken += len(chunk)
            if self.truncated:
                continue
            room = self.cap - self.kept
            if len(chunk) > room:
                chunk = chunk[:room]
                self.truncated = True
                self.watch.trip(LimitHit.OUTPUT)
            if chunk:
                self.chunks.append(chunk)
                self.combined.append(chunk)
                self.kept += len(chunk)
                if self.relay is not None:
                    self.relay.put_nowait((self.name, chunk))

    def stop(self) -> None:
        if not self.closed.done():
            asyncio.get_running_loop().remove_reader(self.fd)
            self.closed.set_result(None)

    def result(self) -> tuple[bytes, bool]:
        return b"".join(self.chunks), self.truncated


async def relay_output(relay, pieces: asyncio.Queue) -> None:
    """An interactive run's output, to its client piece by piece, in the order it was read."""
    while (piece := await pieces.get()) is not None:
        with contextlib.suppress(Exception):  # a client that left does not stop the run
            await relay(*piece)


async def feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    """Write stdin while the program runs; a program that stops reading is not an error."""
    try:
        if data:
            stdin.write(data)
            await stdin.drain()
        stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass


async def feed_live(stdin: asyncio.StreamWriter, pieces: asyncio.Queue[bytes | None]) -> None:
    """An interactive run's stdin: pieces as the client sends them; None closes it."""
    try:
        while (piece := await pieces.get()) is not None:
            stdin.write(piece)
            await stdin.drain()
        stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass


async def relay_signals(box: Box, numbers: asyncio.Queue[int]) -> None:
    """Send the client's signals to every process of the run but the stub (pid 1) and bwrap
    (outside the sandbox, in its cgroup: a signal that ends it takes the sandbox down)."""
    keep = {box.init_pid, box.process.pid}
    while True:
        number = await numbers.get()
        for pid in await asyncio.to_thread(box.cgroup.procs):
            if pid not in keep:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, number)
