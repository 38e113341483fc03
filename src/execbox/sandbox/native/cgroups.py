"""One cgroup per sandbox stage, on cgroup v1 or v2 (detected at start).

The cgroup holds every process of a stage: it limits memory (no swap) and processes, measures
CPU time and peak memory, tells whether the OOM killer fired, and kills the whole stage at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from execbox.sandbox.cgroup_files import CGROUP_ROOT, cgroups_of, keyed, read

V1_CONTROLLERS = ("memory", "pids", "cpuacct", "cpu")
V2_CONTROLLERS = ("memory", "pids", "cpu")
# The control files a run reads and writes, and their controllers.
V1_FILES = {
    "memory.limit_in_bytes": "memory",
    "memory.memsw.limit_in_bytes": "memory",
    "memory.max_usage_in_bytes": "memory",
    "memory.oom_control": "memory",
    "memory.failcnt": "memory",
    "pids.max": "pids",
    "cpuacct.usage": "cpuacct",
}
REMOVE_ATTEMPTS = 200


class CgroupError(Exception):
    pass


def _write(path: Path | str, value: str) -> None:
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
            _rmdir_when_empty(directory)

    def remove_server(self, server: str) -> None:
        """Remove every stage cgroup a (dead) server left, then its own directories."""
        for parent in self.server_dirs():
            base = parent / server
            if not base.is_dir():
                continue
            for stage in [p for p in base.iterdir() if p.is_dir()]:
                _kill_pids(_pids_of(stage))
                _rmdir_when_empty(stage)
            _rmdir_when_empty(base)

    def servers(self) -> set[str]:
        names: set[str] = set()
        for parent in self.server_dirs():
            if parent.is_dir():
                names.update(p.name for p in parent.iterdir() if p.is_dir())
        return names


def _pids_of(directory: Path) -> list[int]:
    try:
        return [int(p) for p in read(directory / "cgroup.procs").split()]
    except FileNotFoundError:
        return []
    except OSError as err:
        # Another server removing the same dead server's cgroup: it is going away.
        if err.errno == errno.ENODEV:
            return []
        raise


def _kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _rmdir_when_empty(directory: Path) -> None:
    """A cgroup can be removed once its last process is reaped, which takes a moment."""
    for attempt in range(REMOVE_ATTEMPTS):
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            _kill_pids(_pids_of(directory))
            time.sleep(0.001 if attempt < 20 else 0.01)
    raise CgroupError(f"cannot remove cgroup {directory}")


class CgroupV1(CgroupDriver):
    version = 1

    def __init__(self, group: str, mounts: dict[str, Path], parent: str = "") -> None:
        super().__init__(group)
        self.mounts = mounts
        self.parent = parent.strip("/") or "execbox"
        # Plain strings: these paths are built several times per run, on the event loop.
        self._bases = {c: f"{mount}/{self.parent}/{group}/" for c, mount in mounts.items()}
        self._has_swap_accounting = (mounts["memory"] / "memory.memsw.limit_in_bytes").exists()
        # Per stage, the control files a run uses, kept open once used: the watchdog and the
        # result then read them without a path lookup each time.
        self._open: dict[str, dict[str, int]] = {}
        self._limits: dict[str, tuple[int, int]] = {}

    def _dir(self, controller: str, name: str) -> Path:
        return Path(self._bases[controller] + name)

    def _file(self, controller: str, name: str, file: str) -> str:
        return f"{self._bases[controller]}{name}/{file}"

    def _fd(self, name: str, file: str) -> int:
        """A stage's control file, opened on first use and kept open until its removal."""
        files = self._open.setdefault(name, {})
        fd = files.get(file)
        if fd is None:
            fd = files[file] = os.open(self._file(V1_FILES[file], name, file), os.O_RDWR)
        return fd

    def _put(self, name: str, file: str, value: int) -> None:
        os.pwrite(self._fd(name, file), str(value).encode(), 0)

    def _get(self, name: str, file: str) -> str:
        return os.pread(self._fd(name, file), 4096, 0).decode()

    def dirs(self, name: str) -> list[Path]:
        return [self._dir(c, name) for c in self.mounts]

    def server_dirs(self) -> list[Path]:
        return [mount / self.parent for mount in self.mounts.values()]

    def prepare(self) -> None:
        for mount in self.mounts.values():
            (mount / self.parent / self.group).mkdir(parents=True, exist_ok=True)

    def launch_steps(self, name: str, memory_bytes: int, pids: int, cpus: float) -> list[str]:
        steps: list[str] = []
        for directory in self.dirs(name):
            steps += ["mkdir", str(directory)]
        steps += ["try-write", self._file("memory", name, "memory.swappiness"), "0"]
        # A new cgroup has no limits: memory first, then memory+swap (never below memory).
        steps += ["write", self._file("memory", name, "memory.limit_in_bytes"), str(memory_bytes)]
        if self._has_swap_accounting:
            swap = self._file("memory", name, "memory.memsw.limit_in_bytes")
            steps += ["write", swap, str(memory_bytes)]
        steps += ["write", self._file("pids", name, "pids.max"), str(pids)]
        if cpus > 0 and "cpu" in self.mounts:
            period = 100_000
            steps += ["write", self._file("cpu", name, "cpu.cfs_period_us"), str(period)]
            steps += ["write", self._file("cpu", name, "cpu.cfs_quota_us"), str(int(cpus * period))]
        for controller in self.mounts:
            steps += ["join", self._file(controller, name, "cgroup.procs")]
        return steps

    def adopt(self, name: str, memory_bytes: int, pids: int) -> StageCgroup:
        self._limits[name] = (memory_bytes, pids)
        return StageCgroup(self, name)

    def set_limits(self, name: str, memory_bytes: int, pids: int) -> None:
        current = self._limits.get(name)
        if current == (memory_bytes, pids):
            return  # the usual case: a box started with the default limits
        swap = "memory.memsw.limit_in_bytes"
        # memory+swap may never be below memory: lower memory first, raise it last.
        lower = current is None or memory_bytes <= current[0]
        order = ["memory.limit_in_bytes", swap] if lower else [swap, "memory.limit_in_bytes"]
        if current is None or memory_bytes != current[0]:
            for file in order:
                if file != swap or self._has_swap_accounting:
                    self._put(name, file, memory_bytes)
        if current is None or pids != current[1]:
            self._put(name, "pids.max", pids)
        self._limits[name] = (memory_bytes, pids)

    def reset_stats(self, name: str) -> None:
        self._put(name, "memory.max_usage_in_bytes", 0)
        self._put(name, "cpuacct.usage", 0)

    def cpu_time_ns(self, name: str) -> int:
        return int(self._get(name, "cpuacct.usage"))

    def memory_peak(self, name: str) -> int:
        return int(self._get(name, "memory.max_usage_in_bytes"))

    def oom_killed(self, name: str) -> bool:
        control = keyed(self._get(name, "memory.oom_control"))
        if "oom_kill" in control:
            return control["oom_kill"] > 0
        return int(self._get(name, "memory.failcnt")) > 0

    def remove(self, name: str) -> None:
        for fd in self._open.pop(name, {}).values():
            os.close(fd)
        self._limits.pop(name, None)
        super().remove(name)

    def procs(self, name: str) -> list[int]:
        return _pids_of(self._dir("pids", name))

    def kill(self, name: str) -> None:
        # The sandbox's pid namespace dies with its init (killed first by the caller), so no
        # process can fork any more: killing what is listed until nothing is left converges.
        for attempt in range(REMOVE_ATTEMPTS):
            pids = self.procs(name)
            if not pids:
                return
            _kill_pids(pids)
            time.sleep(0 if attempt < 20 else 0.005)


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
        _write(self._dir(name) / "memory.max", str(memory_bytes))
        _write(self._dir(name) / "pids.max", str(pids))

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
        return _pids_of(self._dir(name))

    def kill(self, name: str) -> None:
        directory = self._dir(name)
        try:
            _write(directory / "cgroup.kill", "1")
        except FileNotFoundError:
            return
        except OSError:
            _kill_pids(self.procs(name))


def _v2_mount() -> Path | None:
    for mount in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        if (mount / "cgroup.controllers").exists():
            return mount
    return None


def _enable_controllers(directory: Path) -> None:
    _write(directory / "cgroup.subtree_control", " ".join("+" + c for c in V2_CONTROLLERS))


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
        pids = _pids_of(source)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                _write(leaf / "cgroup.procs", str(pid))
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
        base = mount / configured.strip("/")
        base.mkdir(parents=True, exist_ok=True)
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


def _v2(group: str, configured: str) -> CgroupV2:
    mount = _v2_mount()
    if mount is None:
        raise CgroupError("no cgroup v2 hierarchy is mounted at /sys/fs/cgroup")
    available = set(read(mount / "cgroup.controllers").split())
    missing = [c for c in V2_CONTROLLERS if c not in available]
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


def _v1_mounts() -> dict[str, Path] | None:
    mounts = {c: CGROUP_ROOT / c for c in V1_CONTROLLERS if (CGROUP_ROOT / c / "tasks").exists()}
    if not {"memory", "pids", "cpuacct"} <= mounts.keys():
        return None
    return mounts


def detect(group: str, version: str = "auto", configured: str = "") -> CgroupDriver:
    """The cgroup version that offers memory, pids and CPU accounting on this host (v1 where
    its controllers are mounted, else v2), or a CgroupError that says what is missing."""
    if version in ("auto", "1"):
        mounts = _v1_mounts()
        if mounts is not None:
            return CgroupV1(group, mounts, configured)
        if version == "1":
            raise CgroupError(
                "cgroup v1 was asked for (EXECBOX_CGROUP_VERSION=1) but its memory, pids and "
                "cpuacct controllers are not mounted under /sys/fs/cgroup"
            )
    return _v2(group, configured)
