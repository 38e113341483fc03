"""One container's life: how it is created, handed its one program, and read to the end.

A container is created and started ahead of time (the warm pool) with every limit that Docker
fixes at creation: memory (= memory + swap), pids, CPU quota, ulimits, a read-only root with
size-limited tmpfs mounts, no network, no capabilities, no-new-privileges, an unprivileged
user, and docker-init as pid 1. Its shell waits on the attached stdin for a tar stream.

To run, the host attaches, sends one tar archive -- the program's files under /box, the
program's stdin and a generated run script under /tmp -- and closes its side. The shell
extracts it and runs the script: CPU rlimit, start the program, wait for it, kill whatever
it left, then end stdout and stderr with a marker line carrying a per-run nonce and the
container's own cgroup figures (exit code, CPU time, peak memory, OOM kills), and for a compile
stage an archive of the work dir. Nothing is bind-mounted from the host, and the host never
reads the container's file system: files come back only inside that stream (read and judged by
``stream``).

The program runs as the same uid as that control shell, so the shell must keep the nonce from
it: a program that knew it could end the stream with figures of its choosing. The shell that
reads the script is a copy of /bin/sh that its own uid cannot read: the kernel makes a process
that executes an unreadable file non-dumpable, and a non-dumpable process's memory and open
files (/proc/PID/mem, /proc/PID/fd: the deleted script is still open there) are closed to
processes of its uid without CAP_SYS_PTRACE. The program's own exec makes it dumpable again.
The markers are written after every other process of the uid is dead, so nothing of the program
reads them back from the stream's pipe either.
"""

from __future__ import annotations

import io
import secrets
import shlex
import tarfile
import time
from dataclasses import dataclass

from execbox.sandbox import policy
from execbox.sandbox.base import StageSpec
from execbox.sandbox.docker.artifacts import artifact_budget
from execbox.sandbox.docker.outputs import outputs_script
from execbox.sandbox.docker.seccomp_profile import SECCOMP_PROFILE
from execbox.sandbox.policy import WORKDIR

USER = 65534  # the toolchain discovery helpers' uid; each run's container has its own
LABEL = "org.execbox"
RUN_SCRIPT = "/tmp/.box-run"
STDIN_FILE = "/tmp/.box-stdin"
# The unreadable copy of /bin/sh that runs the script (named sh: busybox picks its applet by
# name). The archive creates it empty, write and execute only, for its owner.
CONTROL_DIR = "/tmp/.box-control"
CONTROL_SHELL = f"{CONTROL_DIR}/sh"
# The container's command (docker-init is pid 1 and reaps): wait for the archive, then run.
STUB = f"tar -x -o -C / -f - && cat /bin/sh > {CONTROL_SHELL} && exec {CONTROL_SHELL} {RUN_SCRIPT}"

# Figures from the container's own cgroup, as mounted inside it (cgroup v1 or v2).
CGROUP_FIGURES = r"""
_cg=/sys/fs/cgroup
_cpu() {
  if [ -r $_cg/cpuacct/cpuacct.usage ]; then read _v < $_cg/cpuacct/cpuacct.usage; echo $_v
  elif [ -r $_cg/cpu.stat ]; then
    while read _k _v; do [ "$_k" = usage_usec ] && echo "${_v}000"; done < $_cg/cpu.stat
  else echo 0; fi
}
_peak() {
  for _f in $_cg/memory/memory.max_usage_in_bytes $_cg/memory.peak; do
    [ -r $_f ] && { read _v < $_f; echo $_v; return; }
  done
  echo 0
}
_ooms() {
  for _f in $_cg/memory/memory.oom_control $_cg/memory.events; do
    [ -r $_f ] && { while read _k _v; do [ "$_k" = oom_kill ] && echo $_v; done < $_f; return; }
  done
  echo 0
}
"""


@dataclass(frozen=True)
class Profile:
    """What a container is created with and cannot change later."""

    image: str
    env: tuple[tuple[str, str], ...]
    memory_mb: int
    processes: int
    file_size_mb: int

    @classmethod
    def of(cls, spec: StageSpec, default_image: str) -> Profile:
        limits = spec.limits
        return cls(
            image=spec.image or default_image,
            env=tuple(sorted(spec.env.items())),
            memory_mb=limits.memory_mb,
            processes=limits.processes,
            file_size_mb=limits.file_size_mb,
        )


# Host files that tell about the kernel, the machine or other users, hidden in every container
# (on top of Docker's own set, which a list here replaces): /sys but the cgroup file system.
MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/key-users",
    "/proc/config.gz",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/block",
    "/sys/bus",
    "/sys/class",
    "/sys/dev",
    "/sys/devices",
    "/sys/firmware",
    "/sys/hypervisor",
    "/sys/kernel",
    "/sys/module",
    "/sys/power",
]


def container_config(
    api, profile: Profile, cpus: float, labels: dict[str, str], uid: int = USER
) -> dict:
    """The Engine API's create body for a container of this profile, whose processes run as
    ``uid`` (each container its own: per-user kernel limits such as inotify instances are not
    shared between runs)."""
    from docker.types import LogConfig, Ulimit

    memory = f"{profile.memory_mb}m"
    tmpfs_options = f"rw,exec,nosuid,nodev,size={profile.memory_mb}m"
    # The request's files (a compiled binary among them) are unpacked under this limit; the
    # run script lowers it to the stage's own before the program starts.
    file_size = max(policy.file_size_bytes(profile.file_size_mb), profile.memory_mb << 20)
    host_config = api.create_host_config(
        network_mode="none",
        init=True,
        read_only=True,
        tmpfs={
            WORKDIR: f"{tmpfs_options},uid={uid},gid={uid},mode=0700",
            "/tmp": f"{tmpfs_options},mode=1777",
        },
        mem_limit=memory,
        memswap_limit=memory,
        # docker-init and the waiting shell count too.
        pids_limit=profile.processes + 2,
        nano_cpus=int(cpus * 1e9) if cpus > 0 else None,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges", f"seccomp={SECCOMP_PROFILE}"],
        ulimits=[
            Ulimit(name="core", soft=policy.CORE_BYTES, hard=policy.CORE_BYTES),
            Ulimit(name="nofile", soft=policy.OPEN_FILES, hard=policy.OPEN_FILES),
            Ulimit(name="fsize", soft=file_size, hard=file_size),
        ],
        log_config=LogConfig(type="none"),
        ipc_mode="private",
    )
    config = api.create_container_config(
        profile.image,
        ["sh", "-c", STUB],
        user=f"{uid}:{uid}",
        environment=policy.environment(dict(profile.env)),
        working_dir=WORKDIR,
        stdin_open=True,
        network_disabled=True,
        hostname="execbox",
        labels=labels,
        host_config=host_config,
    )
    config["HostConfig"]["MaskedPaths"] = MASKED_PATHS
    # Closing our side of the attach connection gives the shell's tar its end of file.
    config["StdinOnce"] = True
    return config


def run_script(spec: StageSpec, nonce: str) -> str:
    """The script the container's shell sources once the archive is in place."""
    limit = policy.rlimits(spec.limits)
    argv = " ".join(shlex.quote(word) for word in spec.argv)
    collect = ""
    if spec.collect_files:
        # Measured first, then streamed: no copy in the container's memory, and an archive
        # larger than the host takes is not sent at all (the host refuses it by its size).
        tar = f"tar -c -C {WORKDIR} -f - . 2>/dev/null"
        collect = (
            f"_size=$({tar} | wc -c)\n"
            f'printf "\\n{nonce} archive %s\\n" "$_size"\n'
            f'[ "$_size" -gt {artifact_budget(spec)} ] || {tar}\n'
        )
    elif spec.outputs is not None:
        collect = outputs_script(spec.outputs, nonce)
    else:
        collect = f'printf "\\n{nonce} end\\n"\n'
    return (
        f"rm -rf {RUN_SCRIPT} {CONTROL_DIR}\n"
        f"exec 4<{STDIN_FILE}\n"
        f"rm -f {STDIN_FILE}\n"
        # The soft limit first: a hard limit below the soft one (unlimited) is refused.
        f"ulimit -S -t {limit.cpu_soft_s} && ulimit -H -t {limit.cpu_hard_s} "
        f"&& ulimit -s {limit.stack_bytes >> 10} "
        # dash counts file sizes in 512-byte blocks
        f"&& ulimit -f {limit.file_size_bytes // 512} || exit 125\n"
        "unset HOSTNAME\n"
        f"{CGROUP_FIGURES}\n"
        "_start=$(_cpu)\n"
        # In the background, so that this shell's own messages ("Killed") can be silenced
        # without touching the program's stderr; its stdin must then be given explicitly.
        f"{argv} <&4 4<&- {'2>&1 ' if spec.merge_stderr else ''}&\n"
        "exec 4<&- 3>&2 2>/dev/null\n"
        "wait $!\n"
        "_code=$?\n"
        "kill -9 -1\n"
        f'printf "\\n{nonce} %s %s %s %s\\n" "$_code" "$(($(_cpu) - _start))" "$(_peak)" '
        '"$(_ooms)" >&3\n'
        f"{collect}"
    )


def archive(spec: StageSpec, nonce: str) -> bytes:
    """The tar stream the container's shell extracts at /: files, stdin, run script."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = [
            (f"{WORKDIR}/{file.path}", file.content, 0o755 if file.executable else 0o644)
            for file in spec.files
        ]
        entries.append((STDIN_FILE, spec.stdin, 0o600))
        entries.append((RUN_SCRIPT, run_script(spec, nonce).encode(), 0o600))
        entries.append((CONTROL_SHELL, b"", 0o300))
        directories: set[str] = set()
        for path, content, mode in entries:
            parts = path.lstrip("/").split("/")
            for depth in range(2, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    directories.add(directory)
                    tar.addfile(_info(directory, tarfile.DIRTYPE, 0o755))
            info = _info(path.lstrip("/"), tarfile.REGTYPE, mode)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid = info.gid = USER
    info.mtime = int(time.time())
    return info


def new_nonce() -> str:
    return secrets.token_hex(16)
