"""What the service needs from its host: a clear refusal where something is missing, and no
dependence on the state dir's mount options or on the cgroup version."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
from conftest import Server, host_uids_of_a_running_program

from execbox.sandbox.cgroup_files import CGROUP_ROOT, cgroups_of
from execbox.sandbox.native import host, unmask


def _serve_and_fail(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "execbox", "serve"],
        env={**os.environ, "EXECBOX_PORT": "1", "EXECBOX_STATE_DIR": "/run/execbox-test", **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _v1_host() -> bool:
    return (CGROUP_ROOT / "memory" / "tasks").exists()


def test_a_host_without_usable_cgroups_is_refused_with_the_reason() -> None:
    if _v1_host():
        # The v2 hierarchy beside v1's has no controllers: as on a host that delegates none.
        env = {"EXECBOX_CGROUP_VERSION": "2"}
        expected = "offers no"
    else:
        # This test's own cgroup holds processes (this one): controllers cannot go below it.
        env = {"EXECBOX_CGROUP": cgroups_of()[""]}
        expected = "no internal processes"
    done = _serve_and_fail(env)
    assert done.returncode == 2, done.stderr
    assert "execbox cannot start" in done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_user_namespace_restrictions_are_named_with_their_fix() -> None:
    values = {
        "/proc/sys/user/max_user_namespaces": "0\n",
        "/proc/sys/kernel/unprivileged_userns_clone": "0\n",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1\n",
        "/sys/kernel/security/apparmor/profiles": "unrelated (enforce)\n",
    }
    found = host.userns_problems(values.get)
    assert len(found) == 3
    assert "sysctl -w user.max_user_namespaces" in found[0]
    assert "sysctl -w kernel.unprivileged_userns_clone=1" in found[1]
    assert "deploy/apparmor/bwrap-execbox" in found[2]
    values["/sys/kernel/security/apparmor/profiles"] = "bwrap (unconfined)\n"
    values["/proc/sys/user/max_user_namespaces"] = "15000\n"
    values["/proc/sys/kernel/unprivileged_userns_clone"] = "1\n"
    assert host.userns_problems(values.get) == []


def test_seccomp_absence_is_named() -> None:
    assert host.seccomp_problems({"/proc/self/status": "Name: x\n"}.get)
    assert host.seccomp_problems(lambda path: None if "actions" in path else "Seccomp: 0") == []
    assert host.seccomp_problems(host.read_file) == []  # this host has it


def test_a_noexec_state_dir_still_runs_programs() -> None:
    """Debian mounts /run noexec: nothing the server executes may live on the state dir."""
    with tempfile.TemporaryDirectory(dir="/tmp") as mount:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "noexec,nosuid,nodev", "t", mount], check=True
        )
        try:
            server = Server(env={"EXECBOX_STATE_DIR": f"{mount}/execbox"}).start()
            try:
                for language, code, expected in [
                    ("bash", "echo hi", "hi"),
                    ("c", '#include <stdio.h>\nint main(){puts("c");}', "c"),
                ]:
                    answer = httpx.post(
                        server.url + "/", json={"lang": language, "code": code}, timeout=120
                    ).json()
                    assert answer == {"output": expected, "error": False, "status": "ok"}
            finally:
                server.stop()
        finally:
            subprocess.run(["umount", "-l", mount], check=False)
    assert Path(mount).exists() is False


def test_only_the_masks_a_container_puts_over_proc_are_unmounted() -> None:
    mountinfo = "\n".join(
        f"{n} 1 0:1 / {point} rw - {fstype} x rw"
        for n, (point, fstype) in enumerate(
            [
                ("/proc", "proc"),
                ("/proc/sys", "proc"),
                ("/proc/keys", "tmpfs"),
                ("/proc/sys/fs/binfmt_misc", "binfmt_misc"),
                ("/proc/sys/kernel/x", "proc"),
                ("/sys/firmware", "tmpfs"),
            ]
        )
    )
    assert unmask.proc_masks(mountinfo) == ["/proc/sys/kernel/x", "/proc/sys", "/proc/keys"]


def test_two_servers_on_one_host_never_share_sandbox_uids() -> None:
    first, second = Server().start(), Server().start()
    try:
        ranges = []
        for server in (first, second):
            with httpx.Client(base_url=server.url, timeout=60) as client:
                uids = host_uids_of_a_running_program(client)
            assert uids
            ranges.append({uid // 1000 for uid in uids})
        assert ranges[0].isdisjoint(ranges[1]), ranges
    finally:
        first.stop()
        second.stop()
