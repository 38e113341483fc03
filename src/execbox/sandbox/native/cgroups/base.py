"""What both cgroup versions share: a stage's cgroup, the driver interface, and removing
cgroups whose processes are dying."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from execbox.sandbox.cgroup_files import read

REMOVE_ATTEMPTS = 200


class CgroupError(Exception):
    pass


def write(path: Path | str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


@dataclass
class StageCgroup:
    """The cgroup of one stage."""

    driver: CgroupDriver
    name: str

    def cpu_time_ns(self) -> int:
        return self.driver.cpu_time_ns(self.name)

    def memory_peak(self) -> int:
        return self.driver.memory_peak(self.name)

    def oom_killed(self) -> bool:
        return self.driver.oom_killed(self.name)

    def kill(self) -> None:
        self.driver.kill(self.name)

    def procs(self) -> list[int]:
        return self.driver.procs(self.name)

    def set_limits(self, memory_bytes: int, pids: int) -> None:
        self.driver.set_limits(self.name, memory_bytes, pids)

    def reset_stats(self) -> None:
        """Count CPU time and peak memory from now on (a box's stub ran before its program)."""
        self.driver.reset_stats(self.name)


class CgroupDriver:
    version: int

    def __init__(self, group: str) -> None:
        self.group = group  # this server's own directory, below which stage cgroups live

    def prepare(self) -> None:
        """Make this server's own directories (the parents of every stage cgroup)."""
        raise NotImplementedError

    def launch_steps(self, name: str, memory_bytes: int, pids: int, cpus: float) -> list[str]:
        """The sandbox helper's steps (helper.c, ``launch``) that create a stage's cgroup with
        these limits and move the helper into it before it becomes bwrap."""
        raise NotImplementedError

    def adopt(self, name: str, memory_bytes: int, pids: int) -> StageCgroup:
        """The stage cgroup that ``launch_steps`` create, with the limits they set."""
        raise NotImplementedError

    def set_limits(self, name: str, memory_bytes: int, pids: int) -> None:
        raise NotImplementedError

    def reset_stats(self, name: str) -> None:
        raise NotImplementedError

    def cpu_time_ns(self, name: str) -> int:
        raise NotImplementedError

    def memory_peak(self, name: str) -> int:
        raise NotImplementedError

    def oom_killed(self, name: str) -> bool:
        raise NotImplementedError

    def procs(self, name: str) -> list[int]:
        raise NotImplementedError

    def kill(self, name: str) -> None:
        raise NotImplementedError

    def dirs(self, name: str) -> list[Path]:
        raise NotImplementedError

    def server_dirs(self) -> list[Path]:
        """Every server directory (this one's and dead servers'): the parents of ``group``."""
        raise NotImplementedError

    def remove(self, name: str) -> None:
        """Kill what is left and remove the stage's cgroup directories."""
        self.kill(name)
        for directory in self.dirs(name):
            rmdir_when_empty(directory)

    def remove_server(self, server: str) -> None:
        """Remove every stage cgroup a (dead) server left, then its own directories."""
        for parent in self.server_dirs():
            base = parent / server
            if not base.is_dir():
                continue
            for stage in [p for p in base.iterdir() if p.is_dir()]:
                kill_pids(pids_of(stage))
                rmdir_when_empty(stage)
            rmdir_when_empty(base)

    def servers(self) -> set[str]:
        names: set[str] = set()
        for parent in self.server_dirs():
            if parent.is_dir():
                names.update(p.name for p in parent.iterdir() if p.is_dir())
        return names


def pids_of(directory: Path) -> list[int]:
    try:
        return [int(p) for p in read(directory / "cgroup.procs").split()]
    except FileNotFoundError:
        return []
    except OSError as err:
        # Another server removing the same dead server's cgroup: it is going away.
        if err.errno == errno.ENODEV:
            return []
        raise


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def rmdir_when_empty(directory: Path) -> None:
    """A cgroup can be removed once its last process is reaped, which takes a moment."""
    for attempt in range(REMOVE_ATTEMPTS):
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            kill_pids(pids_of(directory))
            time.sleep(0.001 if attempt < 20 else 0.01)
    raise CgroupError(f"cannot remove cgroup {directory}")


MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 0x2, 0x4, 0x8, 0x20, 0x1000


def make_writable(mount: Path) -> None:
    """A container gets its cgroup mounts read-only: make this mount (not the hierarchy, which
    the host shares) read-write, as docker-in-docker does, or say what the container lacks."""
    if os.access(mount, os.W_OK):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC
    if libc.mount(None, str(mount).encode(), None, flags, None) != 0 or not os.access(
        mount, os.W_OK
    ):
        reason = os.strerror(ctypes.get_errno())
        raise CgroupError(
            f"the cgroup mount {mount} is read-only and cannot be made writable ({reason}): "
            "in a container, give execbox CAP_SYS_ADMIN with seccomp and AppArmor unconfined "
            "and its own cgroup namespace (README, 'In a container'), or mount "
            "/sys/fs/cgroup read-write"
        )
