"""cgroup v1: one hierarchy per controller, each stage a directory in each of them."""

from __future__ import annotations

import os
import time
from pathlib import Path

from execbox.sandbox.cgroup_files import CGROUP_ROOT, keyed
from execbox.sandbox.native.cgroups.base import (
    REMOVE_ATTEMPTS,
    CgroupDriver,
    StageCgroup,
    kill_pids,
    make_writable,
    pids_of,
)

V1_CONTROLLERS = ("memory", "pids", "cpuacct", "cpu")
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
        return pids_of(self._dir("pids", name))

    def kill(self, name: str) -> None:
        # The sandbox's pid namespace dies with its init (killed first by the caller), so no
        # process can fork any more: killing what is listed until nothing is left converges.
        for attempt in range(REMOVE_ATTEMPTS):
            pids = self.procs(name)
            if not pids:
                return
            kill_pids(pids)
            time.sleep(0 if attempt < 20 else 0.005)


def v1_mounts() -> dict[str, Path] | None:
    mounts = {c: CGROUP_ROOT / c for c in V1_CONTROLLERS if (CGROUP_ROOT / c / "tasks").exists()}
    if not {"memory", "pids", "cpuacct"} <= mounts.keys():
        return None
    for mount in mounts.values():
        make_writable(mount)
    return mounts
