"""Start a process and watch it with asyncio.

asyncio's own subprocess support forks and waits for the exec on the event loop's thread. Here
the start (``start``) is a plain Popen, which spawns with vfork when it can (no preexec hook):
starting the sandbox helper, a small static binary, then blocks the loop for a fraction of a
millisecond. The pipes are attached to the loop (``attach``), and the exit is seen through a
pidfd.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from dataclasses import dataclass


@dataclass(eq=False)
class Process:
    popen: subprocess.Popen
    stdin: asyncio.StreamWriter
    stdout: int  # the read ends of its output pipes, non-blocking (the caller reads them)
    stderr: int
    _exited: asyncio.Future[int]

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def close_pipes(self) -> None:
        self.stdin.close()
        for pipe in (self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                pipe.close()

    def kill(self) -> None:
        if not self._exited.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, 9)  # not reaped yet: the pid is still this process


def start(argv: list[str], **popen_kwargs) -> subprocess.Popen:
    """Start a process with pipes on all three standard streams."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen_kwargs,
    )


async def attach(popen: subprocess.Popen) -> Process:
    """Watch a started process from the event loop: its pipes as streams, its exit."""
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(popen.pid)
    exited: asyncio.Future[int] = loop.create_future()

    def reap() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if not exited.done():
            exited.set_result(popen.wait())

    loop.add_reader(pidfd, reap)
    assert popen.stdout is not None and popen.stderr is not None
    for pipe in (popen.stdout, popen.stderr):
        os.set_blocking(pipe.fileno(), False)
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(loop=loop), popen.stdin
    )
    stdin = asyncio.StreamWriter(transport, protocol, None, loop)
    return Process(popen, stdin, popen.stdout.fileno(), popen.stderr.fileno(), exited)


def read_now(fd: int, limit: int = 1 << 20) -> bytes:
    """What a non-blocking pipe holds right now, up to ``limit`` bytes."""
    data = b""
    while len(data) < limit:
        try:
            chunk = os.read(fd, min(1 << 16, limit - len(data)))
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return data
