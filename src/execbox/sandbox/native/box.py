"""A box: one started sandbox, waiting for or running its one program.

Its life is split in three: launch.py starts it (one process start: the helper prepares the
stage's cgroup and work dir, becomes bwrap, and the stub waits as the sandbox's pid 1),
stub.py is what the host says to the stub and reads back, and supervise.py hands it its
program and watches that to the end. A box is used for exactly one program, then killed and
removed in the background.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from execbox.config import Limits
from execbox.sandbox.base import StageSpec
from execbox.sandbox.native import cgroups
from execbox.sandbox.native.process import Process

# bwrap (waiting outside the sandbox for its end) and the stub (the sandbox's pid 1) sit in the
# stage's cgroup beside the program's processes.
BOX_PROCESSES = 2


@dataclass(frozen=True)
class Profile:
    """What a box is started with and cannot change later: toolchain mounts, environment, and
    where its work dir lives: on the host (a compile stage, or a run that asked for output
    files: the host reads files after the stage) or only inside the box (other runs: no host
    mount at all)."""

    mounts: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    host_work: bool = False

    @classmethod
    def of(cls, spec: StageSpec) -> Profile:
        host_work = spec.collect_files or spec.outputs is not None
        return cls(tuple(spec.mounts), tuple(sorted(spec.env.items())), host_work)


@dataclass(eq=False)
class Box:
    stage: str
    uid: int
    work: Path | None  # the host work dir (a compile's); None: the work dir is in the box
    cgroup: cgroups.StageCgroup
    process: Process
    init: int  # a pidfd of the sandbox's pid 1: signalling it cannot hit a recycled pid
    command: int  # write end of the stub's command pipe
    status: int  # read end (non-blocking) of the pipe the stub reports the program's end on
    profile: Profile
    init_pid: int = 0  # the sandbox's pid 1 (the stub) as the host sees it

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def check_alive(self) -> None:
        """Raise unless the sandbox's pid 1 still runs (its pid was not recycled)."""
        signal.pidfd_send_signal(self.init, 0)

    def kill_init(self) -> None:
        """Kill the sandbox's pid 1: the kernel then kills every process of its pid namespace,
        which holds every process of the stage (none can leave it). Does not block."""
        if self.init >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.init, signal.SIGKILL)

    def kill(self) -> None:
        """Kill every process of the box (blocking). On cgroup v1 this returns once the cgroup
        lists none; on v2 it only writes cgroup.kill, and the kernel finishes the killing after
        it returns: a caller that needs every process dead (before reading the box's files)
        awaits the box's process too, as supervise.run_in_box does (the kernel lets a pid
        namespace's init end only once every other process in it has, and the box's process
        ends after its init)."""
        self.kill_init()
        self.cgroup.kill()

    def close_fds(self) -> None:
        for fd in (self.init, self.command, self.status):
            if fd >= 0:
                os.close(fd)
        self.init = self.command = self.status = -1
        self.process.close_pipes()


def box_pids(limits: Limits) -> int:
    """The stage cgroup's process limit: the program's, and bwrap's and the stub's."""
    return limits.processes + BOX_PROCESSES
