"""The stub protocol: what the host tells the box's pid 1 (helper.c's stub) and what it
reads back.

The stub starts waiting on its command pipe, and says ``ready`` on its status pipe once the
sandbox is set up. The host writes one command: the program's rlimits, whether stderr joins
stdout, and its argv, NUL-separated, then closes the pipe. When the program ends, the stub
writes its wait status as one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from execbox.config import Limits
from execbox.sandbox.native import helper
from execbox.sandbox.native.pipes import read_until
from execbox.sandbox.policy import rlimits

STUB_READY = b"ready\n"


def stub_argv(command_fd: int, status_fd: int) -> list[str]:
    """The box's first program: the helper's stub (helper.c) waiting on its command pipe."""
    return [helper.SANDBOX_PATH, "stub", str(command_fd), str(status_fd)]


def read_line(data: bytes) -> bytes | None:
    """What the stub writes on its status pipe comes a line at a time."""
    return data if data.endswith(b"\n") else None


def stub_words(limits: Limits, argv: list[str], merge_stderr: bool = False) -> bytes:
    """What the stub reads: the policy's per-process rlimits (CPU seconds soft and hard, file
    size and stack in KiB), whether stderr joins stdout, then the program's argv."""
    limit = rlimits(limits)
    words = [
        str(limit.cpu_soft_s),
        str(limit.cpu_hard_s),
        str(limit.file_size_bytes >> 10),
        str(limit.stack_bytes >> 10),
        "1" if merge_stderr else "0",
        *argv,
    ]
    return b"".join(w.encode() + b"\0" for w in words)


@dataclass(frozen=True)
class BadStatus:
    """What the stub wrote where a wait status belongs, when it is none."""

    text: str


def wait_status(line: bytes) -> int | BadStatus:
    """The wait status in the stub's line, checked to be one that wait(2) gives for a process
    that ended: exited (code in bits 8-15) or killed by a signal (bits 0-6, core flag 7)."""
    try:
        status = int(line)
    except ValueError:
        status = -1
    if 0 <= status <= 0xFFFF:
        exited = status & 0xFF == 0
        signalled = status >> 8 == 0 and 0 < status & 0x7F < 0x7F
        if exited or signalled:
            return status
    return BadStatus(line[:64].decode(errors="replace").strip())


async def stub_status(fd: int) -> int | BadStatus | None:
    """The program's wait status, as the stub reports it when the program ends; None when the
    stub ended without one (it failed, or the sandbox was killed first)."""
    line = await read_until(fd, read_line)
    return None if line is None else wait_status(line)
