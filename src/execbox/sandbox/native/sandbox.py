"""Run one stage: a fresh bwrap sandbox, unprivileged, inside its own cgroup.

Launch sequence: bwrap is started as an unprivileged host uid and blocks (``--block-fd``) once
its namespaces and mounts are in place; the host moves it into the stage's cgroup and sets its
rlimits, then releases it. So every process of the stage is counted from its first instruction.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import resource
import shutil
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from execbox.config import Settings
from execbox.sandbox.base import WORKDIR, LimitHit, StageResult, StageSpec
from execbox.sandbox.native import cgroups, seccomp, workdir

log = logging.getLogger("execbox.sandbox")

SANDBOX_UID = 1000
UID_POOL_SIZE = 64
# bwrap's own two processes (the monitor and the pid-1 reaper) sit in the stage's cgroup too.
BWRAP_PROCESSES = 2
ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "USER": "runner",
    "LOGNAME": "runner",
}
READ_CHUNK = 1 << 16
MIN_POLL_S = 0.005
MAX_POLL_S = 0.1
DRAIN_TIMEOUT_S = 2.0


class SandboxUnavailable(Exception):
    """The host cannot run the native sandbox (no bwrap, not root, no cgroups)."""


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _server_name(pid: int) -> str:
    return f"srv-{pid}-{_start_time(pid)}"


def _server_alive(name: str) -> bool:
    parts = name.split("-")
    if len(parts) != 3 or parts[0] != "srv" or not parts[1].isdigit():
        return False
    return _server_name(int(parts[1])) == name


def _root_fs_args() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for path in ("/etc/ld.so.cache", "/etc/localtime"):
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    return args


@dataclass
class _StageProcesses:
    """The processes of one stage: the cgroup that holds them, and a pidfd of the sandbox's
    pid 1 (signalling through it cannot hit a recycled pid)."""

    cgroup: cgroups.StageCgroup
    init: int | None = None

    def kill(self) -> None:
        if self.init is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.init, signal.SIGKILL)
        self.cgroup.kill()

    def close(self) -> None:
        if self.init is not None:
            os.close(self.init)
            self.init = None


def _remove_server_dir(directory: Path) -> None:
    """Remove a server's state; never while anything is still mounted below it (a toolchain
    bind would be deleted through it)."""
    if not directory.exists():
        return
    if workdir.unmount_all_under(directory):
        shutil.rmtree(directory, ignore_errors=True)
    else:
        log.error("not removing %s: mounts below it could not be unmounted", directory)


def _signal_of(code: int) -> int | None:
    """bwrap reports death by signal N as exit code 128 + N, as a shell does."""
    number = code - 128
    if 0 < number < signal.NSIG and number in {s.value for s in signal.Signals}:
        return number
    return None


@dataclass
class _Watch:
    """What the stage's watchers saw while it ran."""

    limit: LimitHit | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def trip(self, limit: LimitHit) -> None:
        if self.limit is None:
            self.limit = limit
        self.stopped.set()


class NativeSandbox:
    name = "native"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = _server_name(os.getpid())
        self.state = Path(settings.state_dir)
        self.work_root = self.state / self.server / "work"
        self._uids: asyncio.Queue[int] = asyncio.Queue()
        self._base_args: list[str] = []
        self._seccomp = b""
        self._cgroups: cgroups.CgroupDriver | None = None
        self._bwrap: str | None = None
        self._toolchains: dict[str, str] = {}
        self._cleanups: set[asyncio.Task[None]] = set()
        self._running: set[asyncio.subprocess.Process] = set()

    async def start(self) -> None:
        if os.geteuid() != 0:
            raise SandboxUnavailable("the native sandbox must be started as root")
        self._bwrap = shutil.which("bwrap")
        if self._bwrap is None:
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
        self._cgroups = cgroups.detect(self.server)
        self._clean_dead_servers()
        self._seccomp = seccomp.build_filter()
        self.work_root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state, 0o711)
        etc = self.state / self.server / "etc"
        etc.mkdir(exist_ok=True)
        (etc / "passwd").write_text(
            f"root:x:0:0:root:/root:/bin/false\n"
            f"runner:x:{SANDBOX_UID}:{SANDBOX_UID}:runner:/tmp:/bin/bash\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        )
        (etc / "group").write_text(f"root:x:0:\nrunner:x:{SANDBOX_UID}:\nnogroup:x:65534:\n")
        (etc / "hosts").write_text("127.0.0.1 localhost execbox\n::1 localhost\n")
        for path in etc.iterdir():
            path.chmod(0o644)
        self._base_args = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--uid", str(SANDBOX_UID),
            "--gid", str(SANDBOX_UID),
            "--hostname", "execbox",
            *_root_fs_args(),
            "--ro-bind", str(etc / "passwd"), "/etc/passwd",
            "--ro-bind", str(etc / "group"), "/etc/group",
            "--ro-bind", str(etc / "hosts"), "/etc/hosts",
            "--proc", "/proc",
            "--dev", "/dev",
        ]  # fmt: skip
        base = self.settings.sandbox_uid_base
        for uid in range(base, base + UID_POOL_SIZE):
            self._uids.put_nowait(uid)
        log.info("native sandbox ready: cgroup v%d, server %s", self._cgroups.version, self.server)

    def _clean_dead_servers(self) -> None:
        """Remove cgroups, mounts and work dirs that a server that died left behind."""
        assert self._cgroups is not None
        names = self._cgroups.servers()
        if self.state.is_dir():
            names.update(p.name for p in self.state.iterdir() if p.name.startswith("srv-"))
        for name in names:
            if name == self.server or _server_alive(name):
                continue
            log.warning("cleaning up after dead server %s", name)
            self._cgroups.remove_server(name)
            _remove_server_dir(self.state / name)

    async def close(self) -> None:
        for process in list(self._running):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        if self._cleanups:
            await asyncio.wait(set(self._cleanups), timeout=10)
        if self._cgroups is not None:
            await asyncio.to_thread(self._cgroups.remove_server, self.server)
        self._toolchains.clear()
        _remove_server_dir(self.state / self.server)

    async def run(self, spec: StageSpec) -> StageResult:
        assert self._cgroups is not None, "start() first"
        uid = await self._uids.get()
        stage = uuid.uuid4().hex[:16]
        work = self.work_root / stage
        size = spec.limits.memory_mb * 1024 * 1024
        try:
            cgroup = await asyncio.to_thread(self._prepare, spec, stage, work, uid)
            result = await self._execute(spec, uid, work, cgroup)
            # Every process of the stage is dead by now: reading its files is safe.
            if spec.collect_files and result.internal_error is None:
                result.files = await asyncio.to_thread(workdir.collect_files, work, size)
            return result
        except Exception as err:
            log.exception("sandbox failure")
            return StageResult(None, None, b"", b"", internal_error=f"sandbox failure: {err}")
        finally:
            # Removing the cgroup and the work dir is off the response's path.
            cleanup = asyncio.create_task(self._cleanup(stage, work, uid))
            self._cleanups.add(cleanup)
            cleanup.add_done_callback(self._cleanups.discard)

    async def _cleanup(self, stage: str, work: Path, uid: int) -> None:
        assert self._cgroups is not None
        try:
            await asyncio.to_thread(self._cgroups.remove, stage)
            await asyncio.to_thread(self._dispose_workdir, work)
        except Exception:
            log.exception("cleanup of stage %s failed", stage)
        finally:
            self._uids.put_nowait(uid)

    def _toolchain_source(self, path: str) -> str:
        """Where bwrap finds a toolchain directory: a read-only bind of it, made once, in a
        place the sandbox's uid can reach (the toolchain may live under /root, say)."""
        source = self._toolchains.get(path)
        if source is None:
            target = self.state / self.server / "toolchains" / str(len(self._toolchains))
            target.mkdir(parents=True, exist_ok=True)
            workdir.bind_readonly(path, target)
            source = self._toolchains[path] = str(target)
        return source

    def _prepare(self, spec: StageSpec, stage: str, work: Path, uid: int) -> cgroups.StageCgroup:
        assert self._cgroups is not None
        limits = spec.limits
        work.mkdir(mode=0o700)
        workdir.mount_tmpfs(work, limits.memory_mb * 1024 * 1024, uid)
        workdir.write_files(work, spec.files, uid)
        return self._cgroups.create(
            stage,
            memory_bytes=limits.memory_mb * 1024 * 1024,
            pids=limits.processes + BWRAP_PROCESSES,
            cpus=self.settings.cpus_per_stage,
        )

    @staticmethod
    def _dispose_workdir(work: Path) -> None:
        if os.path.ismount(work):
            workdir.unmount(work)
        with contextlib.suppress(FileNotFoundError):
            work.rmdir()

    def _options(self, spec: StageSpec, work: Path, fds: dict[str, int]) -> list[str]:
        """bwrap's options. They travel through --args FD, so that the sandbox's pid 1 shows
        no host paths in its command line."""
        args = list(self._base_args)
        for mount in spec.mounts:
            args += ["--ro-bind", self._toolchain_source(mount), mount]
        tmp_size = str(spec.limits.memory_mb * 1024 * 1024)
        args += ["--size", tmp_size, "--tmpfs", "/tmp"]
        args += ["--size", tmp_size, "--tmpfs", "/dev/shm"]
        args += ["--bind", str(work), WORKDIR, "--chdir", WORKDIR, "--remount-ro", "/"]
        args += ["--clearenv"]
        for key, value in {**ENV, **spec.env}.items():
            args += ["--setenv", key, value]
        args += ["--seccomp", str(fds["seccomp"])]
        args += ["--info-fd", str(fds["info"]), "--block-fd", str(fds["block"])]
        return args

    async def _execute(
        self, spec: StageSpec, uid: int, work: Path, cgroup: cgroups.StageCgroup
    ) -> StageResult:
        info_read, info_write = os.pipe()
        block_read, block_write = os.pipe()
        seccomp_read = _pipe_with(self._seccomp)
        fds = {"info": info_write, "block": block_read, "seccomp": seccomp_read}
        options = "\0".join(self._options(spec, work, fds)).encode() + b"\0"
        fds["args"] = _pipe_with(options)
        try:
            process = await asyncio.create_subprocess_exec(
                self._bwrap,
                "--args",
                str(fds["args"]),
                "--",
                *spec.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=tuple(fds.values()),
                user=uid,
                group=uid,
                extra_groups=[],
                env={},
                preexec_fn=functools.partial(_apply_rlimits, _rlimits(spec)),
            )
        finally:
            for fd in fds.values():
                os.close(fd)
        self._running.add(process)
        stage = _StageProcesses(cgroup)
        try:
            try:
                child = await asyncio.to_thread(_read_child_pid, info_read)
                if child is not None:
                    try:
                        # Only the sandbox's own pid 1: every process of the stage descends
                        # from it. (bwrap's monitor outside stays out; one move is ~0.4 ms.)
                        stage.init = os.pidfd_open(child)
                        cgroup.add(child)
                    except ProcessLookupError:
                        child = None  # bwrap gave up while setting up the sandbox
            finally:
                os.close(info_read)
            if child is None:
                os.close(block_write)
                stderr = (await process.stderr.read()) if process.stderr else b""
                await process.wait()
                message = stderr.decode(errors="replace").strip() or "bwrap did not start"
                return StageResult(None, None, b"", b"", internal_error=message)
            started = time.monotonic()
            os.write(block_write, b"go")
            os.close(block_write)
            return await self._supervise(process, spec, stage, started)
        finally:
            stage.close()
            self._running.discard(process)
            if process.returncode is None:
                await asyncio.to_thread(stage.kill)
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                await process.wait()

    async def _supervise(
        self,
        process: asyncio.subprocess.Process,
        spec: StageSpec,
        stage: _StageProcesses,
        started: float,
    ) -> StageResult:
        cgroup = stage.cgroup
        limits = spec.limits
        watch = _Watch()
        cap = limits.output_bytes
        assert process.stdout and process.stderr and process.stdin
        stdout_task = asyncio.create_task(_read_capped(process.stdout, cap, watch))
        stderr_task = asyncio.create_task(_read_capped(process.stderr, cap, watch))
        stdin_task = asyncio.create_task(_feed(process.stdin, spec.stdin))
        wait_task = asyncio.create_task(process.wait())
        watchdog = asyncio.create_task(self._watchdog(cgroup, limits, started, watch))
        stop_task = asyncio.create_task(watch.stopped.wait())
        await asyncio.wait({wait_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        wall_ms = (time.monotonic() - started) * 1000
        watchdog.cancel()
        stop_task.cancel()
        # Whatever is left (daemons, a process that tripped a limit) dies with the sandbox's
        # pid namespace; bwrap's monitor then exits by itself. (Process.kill() is avoided: it
        # may reap the process behind asyncio's back.)
        await asyncio.to_thread(stage.kill)
        returncode = await wait_task
        stdin_task.cancel()
        try:
            (stdout, out_cut), (stderr, err_cut) = await asyncio.wait_for(
                asyncio.gather(stdout_task, stderr_task), DRAIN_TIMEOUT_S
            )
        except TimeoutError:
            return StageResult(None, None, b"", b"", internal_error="output did not close")
        cpu_ms = cgroup.cpu_time_ns() / 1e6
        memory = cgroup.memory_peak()
        limit = watch.limit
        if limit is None and cgroup.oom_killed():
            limit = LimitHit.MEMORY
        exit_code: int | None = returncode
        sig: int | None = None
        if returncode < 0:
            exit_code, sig = None, -returncode
        elif (number := _signal_of(returncode)) is not None:
            exit_code, sig = None, number
        if limit is None and (cpu_ms > limits.cpu_time_ms or sig == signal.SIGXCPU):
            limit = LimitHit.TIME
        if limit is None and returncode == 1 and stderr.startswith(b"bwrap: "):
            message = stderr.decode(errors="replace").strip()
            return StageResult(None, None, b"", b"", internal_error=message)
        return StageResult(
            exit_code=exit_code,
            signal=sig,
            stdout=stdout,
            stderr=stderr,
            stdout_truncated=out_cut,
            stderr_truncated=err_cut,
            wall_time_ms=round(wall_ms, 3),
            cpu_time_ms=round(cpu_ms, 3),
            memory_bytes=memory,
            limit=limit,
        )

    async def _watchdog(self, cgroup, limits, started: float, watch: _Watch) -> None:
        """Trip the time limit on wall clock or on the CPU time of all the stage's processes."""
        cores = self.settings.cpus_per_stage or os.cpu_count() or 1
        wall_deadline = started + limits.wall_time_ms / 1000
        cpu_limit_ns = limits.cpu_time_ms * 1_000_000
        while True:
            now = time.monotonic()
            if now >= wall_deadline:
                watch.trip(LimitHit.TIME)
                return
            used = await asyncio.to_thread(cgroup.cpu_time_ns)
            if used >= cpu_limit_ns:
                watch.trip(LimitHit.TIME)
                return
            # CPU time cannot be spent faster than the cores allow: sleep until it could run out.
            cpu_left_s = (cpu_limit_ns - used) / 1e9 / cores
            pause = min(wall_deadline - now, max(MIN_POLL_S, min(cpu_left_s, MAX_POLL_S)))
            await asyncio.sleep(pause)


def _pipe_with(data: bytes) -> int:
    """A pipe's read end holding data (bwrap reads its seccomp program and options to EOF).

    The data must fit the pipe's buffer (64 KiB): nothing reads it before bwrap starts.
    """
    if len(data) > 65536:
        raise ValueError(f"{len(data)} bytes do not fit in a pipe")
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, data)
    finally:
        os.close(write_end)
    return read_end


def _read_child_pid(fd: int) -> int | None:
    """bwrap writes a JSON object with the sandbox's pid once its namespaces exist."""
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError):
            continue


def _rlimits(spec: StageSpec) -> tuple[tuple[int, tuple[int, int]], ...]:
    """Per-process limits, a backstop behind the cgroup (never RLIMIT_AS: it breaks JVM, Go, V8).

    They are lowered in the forked child before bwrap starts (raising them, or setting them on
    another uid's process, would need CAP_SYS_RESOURCE, which the service may not have).
    """
    limits = spec.limits
    cpu_s = math.ceil(limits.cpu_time_ms / 1000) + 1
    file_size = limits.file_size_mb * 1024 * 1024
    stack = min(limits.memory_mb, 256) * 1024 * 1024
    return (
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_CPU, (cpu_s, cpu_s + 1)),
        (resource.RLIMIT_FSIZE, (file_size, file_size)),
        (resource.RLIMIT_NOFILE, (1024, 1024)),
        (resource.RLIMIT_STACK, (stack, stack)),
    )


def _apply_rlimits(rlimits: tuple[tuple[int, tuple[int, int]], ...]) -> None:
    for which, (soft, hard) in rlimits:
        current_hard = resource.getrlimit(which)[1]
        if current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
            soft = min(soft, hard)
        resource.setrlimit(which, (soft, hard))


async def _read_capped(stream: asyncio.StreamReader, cap: int, watch: _Watch):
    """Read a stream to its end, keeping at most ``cap`` bytes; more trips the output limit."""
    chunks: list[bytes] = []
    kept = 0
    truncated = False
    while chunk := await stream.read(READ_CHUNK):
        if truncated:
            continue
        room = cap - kept
        if len(chunk) > room:
            chunks.append(chunk[:room])
            kept = cap
            truncated = True
            watch.trip(LimitHit.OUTPUT)
        else:
            chunks.append(chunk)
            kept += len(chunk)
    return b"".join(chunks), truncated


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    """Write stdin while the program runs; a program that stops reading is not an error."""
    try:
        if data:
            stdin.write(data)
            await stdin.drain()
        stdin.close()
        await stdin.wait_closed()
    except (BrokenPipeError, ConnectionResetError):
        pass
