"""Reading a host process's cgroup files, whoever made its cgroup (both backends use this)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def read(path: Path | str) -> str:
    with open(path) as f:
        return f.read()


def keyed(text: str) -> dict[str, int]:
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def cgroups_of(pid: int | str = "self") -> dict[str, str]:
    """A process's cgroup path per v1 controller, and under key '' for v2."""
    paths = {}
    for line in read(Path(f"/proc/{pid}/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def cpu_time_reader(pid: int) -> Callable[[], int | None] | None:
    """A reader of the CPU time (ns) of host process ``pid``'s cgroup, whoever made that cgroup
    (the Docker engine, say); None when this host cannot see it. The reader answers None once
    the cgroup is gone."""
    try:
        paths = cgroups_of(pid)
    except OSError:
        return None
    usage = CGROUP_ROOT / "cpuacct" / paths.get("cpuacct", "").lstrip("/") / "cpuacct.usage"
    if "cpuacct" in paths and usage.exists():
        return lambda: _read_or_none(usage, int)
    for mount in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        stat = mount / paths.get("", "/").lstrip("/") / "cpu.stat"
        if "" in paths and stat.exists():
            return lambda: _read_or_none(stat, lambda text: keyed(text)["usage_usec"] * 1000)
    return None


def _read_or_none(path: Path, parse: Callable[[str], int]) -> int | None:
    try:
        return parse(read(path))
    except (OSError, KeyError, ValueError):
        return None
