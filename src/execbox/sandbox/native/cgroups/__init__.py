"""One cgroup per sandbox stage, on cgroup v1 or v2 (detected at start).

The cgroup holds every process of a stage: it limits memory (no swap) and processes, measures
CPU time and peak memory, tells whether the OOM killer fired, and kills the whole stage at once.
"""

from __future__ import annotations

from execbox.sandbox.native.cgroups.base import CgroupDriver, CgroupError, StageCgroup
from execbox.sandbox.native.cgroups.v1 import CgroupV1, v1_mounts
from execbox.sandbox.native.cgroups.v2 import CgroupV2, placed_v2

__all__ = ["CgroupDriver", "CgroupError", "CgroupV1", "CgroupV2", "StageCgroup", "detect"]


def detect(group: str, version: str = "auto", configured: str = "") -> CgroupDriver:
    """The cgroup version that offers memory, pids and CPU accounting on this host (v1 where
    its controllers are mounted, else v2), or a CgroupError that says what is missing."""
    if version in ("auto", "1"):
        mounts = v1_mounts()
        if mounts is not None:
            return CgroupV1(group, mounts, configured)
        if version == "1":
            raise CgroupError(
                "cgroup v1 was asked for (EXECBOX_CGROUP_VERSION=1) but its memory, pids and "
                "cpuacct controllers are not mounted under /sys/fs/cgroup"
            )
    return placed_v2(group, configured)
