"""cgroup v2: one unified hierarchy; where this server's stage cgroups go, and each stage's
limits and figures."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from execbox.sandbox.cgroup_files import CGROUP_ROOT, cgroups_of, keyed, read
from execbox.sandbox.native.cgroups.base import (
    REMOVE_ATTEMPTS,
    CgroupDriver,
    CgroupError,
    StageCgroup,
    kill_pids,
    make_writable,
    pids_of,
    write,
)

V2_CONTROLLERS = ("memory", "pids", "cpu")


class CgroupV2(CgroupDriver):
    version = 2

    def __init__(self, group: str, base: Path) -> None:
        super().__init__(group)
        self.base = base  # a delegated directory with memory, pids and cpu enabled for children
        self._cpu_base: dict[str, int] = {}
        self._peak_fds: dict[str, int] = {}

    def _dir(self, name: str) -> Path:
        return self.base / self.group / name

    def dirs(self, name: str) -> list[Path]:
        return [self._dir(name)]

    def server_dirs(self) -> list[Path]:
        return [self.base]

    def prepare(self) -> None:
        server = self.base / self.group
        server.mkdir(exist_ok=True)
        _enable_controllers(server)

    def launch_steps(self, name: str, memory_bytes: int, pids: int, cpus: float) -> list[str]:
        directory = self._dir(name)
        steps = ["mkdir", str(directory)]
        steps += ["try-write", str(directory / "memory.swap.max"), "0"]
        steps += ["try-write", str(directory / "memory.oom.group"), "1"]
        steps += ["write", str(directory / "memory.max"), str(memory_bytes)]
        steps += ["write", str(directory / "pids.max"), str(pids)]
        if cpus > 0:
            period = 100_000
            steps += ["write", str(directory / "cpu.max"), f"{int(cpus * period)} {period}"]
        return [*steps, "join", str(directory / "cgroup.procs")]

    def adopt(self, name: str, memory_bytes: int, pids: int) -> StageCgroup:
        return StageCgroup(self, name)

    def set_limits(self, name: str, memory_bytes: int, pids: int) -> None:
        write(self._dir(name) / "memory.max", str(memory_bytes))
        write(self._dir(name) / "pids.max", str(pids))

    def reset_stats(self, name: str) -> None:
        # v2 counters cannot be zeroed: remember where CPU time stood. Linux 6.12 and later
        # reset memory.peak for reads through the descriptor that wrote to it; before, the peak
        # keeps bwrap's set-up if that was above the program's use (a few MiB).
        self._cpu_base[name] = self._cpu_usec(name)
        try:
            fd = os.open(self._dir(name) / "memory.peak", os.O_RDWR)
        except OSError:
            return
        try:
            os.write(fd, b"0")
        except OSError:
            os.close(fd)
            return
        self._peak_fds[name] = fd

    def _cpu_usec(self, name: str) -> int:
        return keyed(read(self._dir(name) / "cpu.stat"))["usage_usec"]

    def cpu_time_ns(self, name: str) -> int:
        return (self._cpu_usec(name) - self._cpu_base.get(name, 0)) * 1000

    def remove(self, name: str) -> None:
        fd = self._peak_fds.pop(name, None)
        if fd is not None:
            os.close(fd)
        super().remove(name)
        self._cpu_base.pop(name, None)

    def memory_peak(self, name: str) -> int:
        fd = self._peak_fds.get(name)
        if fd is not None:
            return int(os.pread(fd, 64, 0))
        peak = self._dir(name) / "memory.peak"
        if peak.exists():
            return int(read(peak))
        return int(read(self._dir(name) / "memory.current"))

    def oom_killed(self, name: str) -> bool:
        events = keyed(read(self._dir(name) / "memory.events"))
        return events.get("oom_kill", 0) > 0 or events.get("oom_group_kill", 0) > 0

    def procs(self, name: str) -> list[int]:
        return pids_of(self._dir(name))

    def kill(self, name: str) -> None:
        directory = self._dir(name)
        try:
            write(directory / "cgroup.kill", "1")
        except FileNotFoundError:
            return
        except OSError:
            kill_pids(self.procs(name))


def _v2_mount() -> Path | None:
    for mount in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        if (mount / "cgroup.controllers").exists():
            return mount
    return None


def _enable_controllers(directory: Path) -> None:
    """Enable memory, pids and cpu for the children of ``directory``; only those it lacks, so
    that a cgroup that has them already is never written to (its processes would make even a
    no-op write fail)."""
    enabled = set(read(directory / "cgroup.subtree_control").split())
    missing = [c for c in V2_CONTROLLERS if c not in enabled]
    if missing:
        write(directory / "cgroup.subtree_control", " ".join("+" + c for c in missing))


def _delegated(directory: Path) -> bool:
    """Whether systemd delegated this cgroup to its unit (``Delegate=yes`` sets the xattr)."""
    for name in ("trusted.delegate", "user.delegate"):
        try:
            if os.getxattr(directory, name) == b"1":
                return True
        except OSError:
            continue
    return False


def _move_all(source: Path, leaf: Path) -> None:
    """Move every process of ``source`` (a cgroup that is wholly ours) into ``leaf``."""
    leaf.mkdir(exist_ok=True)
    for _ in range(REMOVE_ATTEMPTS):  # processes may fork while they are moved
        pids = pids_of(source)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                write(leaf / "cgroup.procs", str(pid))
    raise CgroupError(f"processes keep appearing in {source}")


def _v2_placement(mount: Path, configured: str) -> Path:
    """The v2 directory below which this server's stage cgroups live, with memory, pids and
    cpu enabled for its children.

    - ``configured`` (EXECBOX_CGROUP): a cgroup the operator gave to execbox.
    - A cgroup delegated to this server (systemd ``Delegate=yes``; or the root of a container's
      own cgroup namespace): every process in it is this service's, so they all move into a
      leaf and the stage cgroups go beside it ("no internal processes").
    - Otherwise (a login session, a service without delegation): a top-level cgroup of its own,
      ``execbox``, as container engines keep theirs; the server itself stays where it was
      started, and never moves processes it did not start.
    """
    if configured:
        # Each level down to it must hand the controllers on to the next.
        base = mount
        for part in Path(configured.strip("/")).parts:
            _enable_controllers(base)
            base = base / part
            base.mkdir(exist_ok=True)
        _enable_controllers(base)
        return base
    own = mount / cgroups_of().get("", "/").lstrip("/")
    if own == mount:
        try:
            _enable_controllers(mount)
        except OSError as err:
            if err.errno != errno.EBUSY:
                raise
            # A container's cgroup namespace: its root holds the container's processes.
            _move_all(mount, mount / "execbox-init")
            _enable_controllers(mount)
        base = mount / "execbox"
    elif _delegated(own):
        _move_all(own, own / "execbox-server")
        _enable_controllers(own)
        base = own / "execbox"
    else:
        _enable_controllers(mount)
        base = mount / "execbox"
    base.mkdir(exist_ok=True)
    _enable_controllers(base)
    return base


# Where this process placed its stage cgroups: moving into a leaf happens once per process.
_placements: dict[str, Path] = {}


def placed_v2(group: str, configured: str) -> CgroupV2:
    mount = _v2_mount()
    if mount is None:
        raise CgroupError("no cgroup v2 hierarchy is mounted at /sys/fs/cgroup")
    available = set(read(mount / "cgroup.controllers").split())
    missing = [c for c in V2_CONTROLLERS if c not in available]
    if not missing:
        make_writable(mount)
    if missing:
        raise CgroupError(
            f"the cgroup v2 hierarchy at {mount} offers no {', '.join(missing)} controller "
            f"(offered: {' '.join(sorted(available)) or 'none'}): they are bound to cgroup v1 "
            "hierarchies or not delegated to this container. Boot with the unified hierarchy "
            "(systemd.unified_cgroup_hierarchy=1), or run execbox in a container with its own "
            "cgroup namespace (--cgroupns=private) on a cgroup v2 host"
        )
    try:
        base = _placements.get(configured) or _v2_placement(mount, configured)
        _placements[configured] = base
    except OSError as err:
        where = f"EXECBOX_CGROUP={configured}" if configured else "its cgroup"
        hint = (
            "a cgroup that holds other processes cannot hand controllers to children (cgroup "
            "v2's 'no internal processes' rule): give execbox a cgroup of its own, e.g. run it "
            "as the shipped systemd unit (deploy/systemd/execbox.service, Delegate=yes) or with "
            "systemd-run -p Delegate=yes, or unset EXECBOX_CGROUP"
            if err.errno == errno.EBUSY
            else "execbox must run as root with /sys/fs/cgroup writable (in a container: "
            "--privileged or a writable cgroup mount with --cgroupns=private)"
        )
        raise CgroupError(
            f"cannot enable the memory, pids and cpu controllers in {where}: "
            f"{err.strerror or err} ({getattr(err, 'filename', '') or ''}); {hint}"
        ) from err
    return CgroupV2(group, base)
