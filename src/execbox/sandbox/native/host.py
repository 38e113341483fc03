"""What the native sandbox needs from its host, checked before the service starts: each
problem is said with how to fix it, and the service refuses to run programs without limits."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from execbox.config import Settings
from execbox.sandbox.native import cgroups
from execbox.sandbox.servers import server_name

Reader = Callable[[str], str | None]


def read_file(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def userns_problems(read: Reader = read_file) -> list[str]:
    """Whether an unprivileged uid may create user namespaces (bubblewrap needs one)."""
    problems = []
    if (read("/proc/sys/user/max_user_namespaces") or "").strip() == "0":
        problems.append(
            "user namespaces are disabled (user.max_user_namespaces = 0): "
            "sysctl -w user.max_user_namespaces=15000 (and in /etc/sysctl.d/ to keep it)"
        )
    if (read("/proc/sys/kernel/unprivileged_userns_clone") or "").strip() == "0":
        problems.append(
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0): "
            "sysctl -w kernel.unprivileged_userns_clone=1"
        )
    restricted = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    if (restricted or "").strip() == "1" and not _bwrap_profile_loaded(read):
        problems.append(
            "AppArmor restricts unprivileged user namespaces "
            "(kernel.apparmor_restrict_unprivileged_userns = 1) and no profile lets bwrap "
            "create them: install deploy/apparmor/bwrap-execbox into /etc/apparmor.d/ and run "
            "apparmor_parser -r /etc/apparmor.d/bwrap-execbox (or Ubuntu's own "
            "bwrap-userns-restrict profile)"
        )
    return problems


def _bwrap_profile_loaded(read: Reader) -> bool:
    profiles = read("/sys/kernel/security/apparmor/profiles") or ""
    return any("bwrap" in line.split(" (")[0] for line in profiles.splitlines())


def seccomp_problems(read: Reader = read_file) -> list[str]:
    status = read("/proc/self/status") or ""
    if "Seccomp:" not in status:
        return ["the kernel has no seccomp (CONFIG_SECCOMP_FILTER): a kernel with it is needed"]
    actions = read("/proc/sys/kernel/seccomp/actions_avail")
    if actions is not None and "errno" not in actions.split():
        return [f"seccomp cannot return errors here (actions available: {actions.strip()})"]
    return []


def problems(settings: Settings) -> list[str]:
    """Everything that stops the native sandbox on this host, each with its fix."""
    if os.geteuid() != 0:
        return ["the native sandbox must be started as root (it makes cgroups and mounts)"]
    found = []
    if shutil.which("bwrap") is None:
        found.append("bubblewrap is not installed: apt-get install bubblewrap")
    found += userns_problems()
    found += seccomp_problems()
    try:
        cgroups.detect(server_name(), settings.cgroup_version, settings.cgroup)
    except (cgroups.CgroupError, OSError) as err:
        found.append(str(err))
    return found
