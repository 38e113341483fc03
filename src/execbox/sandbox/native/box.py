"""One sandbox's life: start it, hand it its one program, supervise that, collect the result.

Start (can happen ahead of time, off the request path): one process start. The helper
(helper.c, ``launch``) creates the stage's cgroup and work dir, joins the cgroup, drops to an
unprivileged host uid and becomes bwrap, so every process of the stage is in the cgroup from
its first instruction. The sandbox's pid 1 is the helper's stub, which waits on a pipe for its
command. Run: the host writes the request's files into the work dir, sets the cgroup's limits,
and sends the stub its rlimits and argv; the stub starts the program and reports its wait
status on a second pipe when it ends. The host then takes the output and kills the box; it is
used for exactly one program, and removed in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from execbox.config import Limits
from execbox.sandbox.base import StageResult, StageSpec
from execbox.sandbox.native import cgroups, helper, process, workdir
from execbox.sandbox.native.process import Process
from execbox.sandbox.policy import WORKDIR, Ending, LimitHit, classify, rlimits

READ_CHUNK = 1 << 16
MIN_POLL_S = 0.005
MAX_POLL_S = 0.1
DRAIN_TIMEOUT_S = 2.0
# What an ended program may have left in its pipes (a pipe holds 64 KiB, at most 1 MiB).
DRAIN_LIMIT_BYTES = 4 << 20
# Up to this many bytes of files are written into a box from the event loop itself.
INLINE_LOAD_BYTES = 256 * 1024
# bwrap (waiting outside the sandbox for its end) and the stub (the sandbox's pid 1) sit in the
# stage's cgroup beside the program's processes.
BOX_PROCESSES = 2
T = TypeVar("T")
STUB_READY = b"ready\n"


# The kernel's build configuration helps an exploit more than any program: where this kernel
# offers it, the sandbox's /proc shows an empty file instead (after bwrap's --proc).
MASK_ARGS = [
    arg
    for path in ("/proc/config.gz",)
    if os.path.exists(path)
    for arg in ("--ro-bind", "/dev/null", path)
]


def _stub_argv(command_fd: int, status_fd: int) -> list[str]:
    """The box's first program: the helper's stub (helper.c) waiting on its command pipe."""
    return [helper.SANDBOX_PATH, "stub", str(command_fd), str(status_fd)]


@dataclass(frozen=True)
class Profile:
    """What a box is started with and cannot change later: toolchain mounts, environment, and
    where its work dir lives: on the host (a compile stage, whose files the host reads after
    the stage) or only inside the box (a run: no host mount at all)."""

    mounts: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    host_work: bool = False

    @classmethod
    def of(cls, spec: StageSpec) -> Profile:
        return cls(tuple(spec.mounts), tuple(sorted(spec.env.items())), spec.collect_files)


@dataclass
class _Watch:
    """What the stage's watchers saw while it ran."""

    limit: LimitHit | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def trip(self, limit: LimitHit) -> None:
        if self.limit is None:
            self.limit = limit
        self.stopped.set()


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


async def _read_until(fd: int, parse: Callable[[bytes], T | None]) -> T | None:
    """Read a non-blocking pipe from the event loop until ``parse`` makes sense of what came
    (its result), or until EOF (None)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T | None] = loop.create_future()
    data = bytearray()

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        data.extend(chunk)
        parsed = parse(bytes(data)) if chunk else None
        if not chunk or parsed is not None:
            loop.remove_reader(fd)
            done.set_result(parsed)

    loop.add_reader(fd, readable)
    try:
        return await done
    finally:
        # Also when cancelled: awaiting cancels `done`, and a reader left behind would
        # later set a result on it.
        loop.remove_reader(fd)


def _child_pid(data: bytes) -> int | None:
    """bwrap's --info-fd: a JSON object with the sandbox's pid 1 once its namespaces exist."""
    try:
        return int(json.loads(data)["child-pid"])
    except (ValueError, KeyError):
        return None


def _line(data: bytes) -> bytes | None:
    """What the stub writes on its status pipe comes a line at a time."""
    return data if data.endswith(b"\n") else None


def stub_words(limits: Limits, argv: list[str], merge_stderr: bool = False) -> bytes:
    """What the stub reads: the policy's per-process rlimits (CPU seconds soft and hard, file
    size and stack in KiB), whether stderr joins stdout, then the program's argv."""
    limit = rlimits(limits)
    words = [
        str(limit.cpu_soft_s),
        str(limit.cpu_hard_s),
        str(limit.file_size_bytes >> 10),
        str(limit.stack_bytes >> 10),
        "1" if merge_stderr else "0",
        *argv,
    ]
    return b"".join(w.encode() + b"\0" for w in words)


@dataclass(eq=False)
class Box:
    stage: str
    uid: int
    work: Path | None  # the host work dir (a compile's); None: the work dir is in the box
    cgroup: cgroups.StageCgroup
    process: Process
    init: int  # a pidfd of the sandbox's pid 1: signalling it cannot hit a recycled pid
    command: int  # write end of the stub's command pipe
    status: int  # read end (non-blocking) of the pipe the stub reports the program's end on
    profile: Profile
    init_pid: int = 0  # the sandbox's pid 1 (the stub) as the host sees it

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def check_alive(self) -> None:
        """Raise unless the sandbox's pid 1 still runs (its pid was not recycled)."""
        signal.pidfd_send_signal(self.init, 0)

    def kill_init(self) -> None:
        """Kill the sandbox's pid 1: the kernel then kills every process of its pid namespace,
        which holds every process of the stage (none can leave it). Does not block."""
        if self.init >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.init, signal.SIGKILL)

    def kill(self) -> None:
        """Kill every process of the box, and wait until its cgroup lists none (blocking)."""
        self.kill_init()
        self.cgroup.kill()

    def close_fds(self) -> None:
        for fd in (self.init, self.command, self.status):
            if fd >= 0:
                os.close(fd)
        self.init = self.command = self.status = -1
        self.process.close_pipes()


async def start_box(
    *,
    launcher: str,
    bwrap: str,
    options: list[str],
    steps: list[str],
    stage: str,
    uid: int,
    work: Path | None,
    cgroup: cgroups.StageCgroup,
    profile: Profile,
    seccomp_program: bytes,
) -> Box | str:
    """Start a sandbox whose stub waits for its command; or the reason it did not start.

    ``steps`` are the helper's (cgroup and work dir); whatever they made is the caller's to
    remove, started or not."""
    info_read, info_write = os.pipe()
    command_read, command_write = os.pipe()
    status_read, status_write = os.pipe()
    os.set_blocking(status_read, False)
    os.set_blocking(info_read, False)
    fds = {
        "info": info_write,
        "command": command_read,
        "status": status_write,
        "seccomp": _pipe_with(seccomp_program),
    }
    options = [*options, *MASK_ARGS, "--seccomp", str(fds["seccomp"]), "--info-fd", str(info_write)]
    fds["args"] = _pipe_with("\0".join(options).encode() + b"\0")
    # The helper prepares the stage, drops to the sandbox's uid and execs bwrap: no Python code
    # runs between fork and exec, so the spawn uses vfork (a fraction of a millisecond, on the
    # event loop) instead of copying the service's memory.
    argv = [launcher, "launch", str(uid), *steps, "--", bwrap, "--args", str(fds["args"]), "--"]
    argv += _stub_argv(command_read, status_write)
    popen: subprocess.Popen | None = None
    init = -1
    try:
        try:
            popen = process.start(argv, pass_fds=tuple(fds.values()), env={})
        finally:
            for fd in fds.values():
                os.close(fd)
        box_process = await process.attach(popen)
        child = await _read_until(info_read, _child_pid)
        if child is not None:
            try:
                init = os.pidfd_open(child)
            except ProcessLookupError:
                child = None  # bwrap gave up right after starting the sandbox
        # bwrap reports the sandbox's pid before it mounts its file systems; the stub says when
        # it runs, which is after all of that.
        if child is not None and await _read_until(status_read, _line) != STUB_READY:
            child = None
        if child is None:
            if init >= 0:
                os.close(init)
                init = -1
            await box_process.wait()
            stderr = process.read_now(box_process.stderr)
            box_process.close_pipes()
            return stderr.decode(errors="replace").strip() or "bwrap did not start"
        box = Box(
            stage, uid, work, cgroup, box_process, init, command_write, status_read, profile, child
        )
        command_write = status_read = -1  # the box owns them now
        return box
    except BaseException:
        if init >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(init, signal.SIGKILL)
            os.close(init)
        if popen is not None and popen.returncode is None:
            popen.kill()  # its sandbox dies with it (--die-with-parent)
            await asyncio.to_thread(popen.wait)
        await asyncio.to_thread(cgroup.kill)
        raise
    finally:
        for fd in (info_read, command_write, status_read):
            if fd >= 0:
                os.close(fd)


async def run_in_box(box: Box, spec: StageSpec, cpus: float) -> StageResult:
    """Give the box its program and watch it to the end; the box is killed afterwards."""
    try:
        if sum(len(item.content) for item in spec.files) <= INLINE_LOAD_BYTES:
            _load(box, spec)  # a few small writes: cheaper than a hop to a worker thread
        else:
            await asyncio.to_thread(_load, box, spec)
        started = time.monotonic()
        os.write(box.command, stub_words(spec.limits, spec.argv, spec.merge_stderr))
        os.close(box.command)
        box.command = -1
        result = await _supervise(box, spec, started, cpus)
    finally:
        box.kill_init()
        if spec.collect_files:
            # The stage's files are read next: only once every process of it is dead. (Other
            # stages return at once; the box's cleanup waits for its end in the background.)
            await asyncio.to_thread(box.kill)
            await box.process.wait()
    if spec.collect_files and box.work is not None:
        _refuse_oversized_artifacts(box.work, spec, result)
    return result


def _refuse_oversized_artifacts(work: Path, spec: StageSpec, result: StageResult) -> None:
    """A stage that left more than it may hand back is refused, and its work dir's tmpfs
    unmounted at once: nothing of it is read into the service, and its memory is freed."""
    limit = spec.collect_limit_bytes or spec.limits.memory_mb << 20
    used = workdir.used_bytes(work)
    if used > limit and result.internal_error is None:
        result.refusal = (
            f"compile output too large: {used >> 20} MB of files, more than the "
            f"{limit >> 20} MB the run may hold"
        )
        workdir.unmount(work)


def box_pids(limits: Limits) -> int:
    """The stage cgroup's process limit: the program's, and bwrap's and the stub's."""
    return limits.processes + BOX_PROCESSES


def _load(box: Box, spec: StageSpec) -> None:
    if box.work is not None:
        workdir.write_files(box.work, spec.files, box.uid)
    elif spec.files:
        # The work dir is a tmpfs inside the box, reached through its pid 1's root. Nothing of
        # the program has run yet (the stub waits for its command), so nothing in there can
        # have been planted; the pidfd check after the open rules out a recycled pid.
        root = f"/proc/{box.init_pid}/root{WORKDIR}"
        workdir.write_files(Path(root), spec.files, box.uid, alive=box.check_alive, as_uid=True)
    box.cgroup.set_limits(spec.limits.memory_mb * 1024 * 1024, box_pids(spec.limits))
    box.cgroup.reset_stats()


class _Capture:
    """One output stream of the run, read from its pipe as data arrives, capped at ``cap``
    bytes (more trips the output limit and is read and dropped, so the writer never blocks)."""

    def __init__(
        self, name: str, fd: int, cap: int, watch: _Watch, relay, combined: list[bytes]
    ) -> None:
        self.name, self.fd, self.cap, self.watch, self.relay = name, fd, cap, watch, relay
        self.combined = combined  # both streams' kept chunks, in the order they were read
        self.chunks: list[bytes] = []
        self.kept = 0
        self.truncated = False
        self.closed = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_reader(fd, self.read_available)

    def read_available(self, limit: int = 1 << 20) -> None:
        """Take what the pipe holds now, up to ``limit`` bytes (a writer may still be going)."""
        taken = 0
        while taken < limit and not self.closed.done():
            try:
                chunk = os.read(self.fd, READ_CHUNK)
            except BlockingIOError:
                return
            if not chunk:
                self.stop()
                return
            taken += len(chunk)
            if self.truncated:
                continue
            room = self.cap - self.kept
            if len(chunk) > room:
                chunk = chunk[:room]
                self.truncated = True
                self.watch.trip(LimitHit.OUTPUT)
            if chunk:
                self.chunks.append(chunk)
                self.combined.append(chunk)
                self.kept += len(chunk)
                if self.relay is not None:
                    self.relay.put_nowait((self.name, chunk))

    def stop(self) -> None:
        if not self.closed.done():
            asyncio.get_running_loop().remove_reader(self.fd)
            self.closed.set_result(None)

    def result(self) -> tuple[bytes, bool]:
        return b"".join(self.chunks), self.truncated


@dataclass(frozen=True)
class BadStatus:
    """What the stub wrote where a wait status belongs, when it is none."""

    text: str


def wait_status(line: bytes) -> int | BadStatus:
    """The wait status in the stub's line, checked to be one that wait(2) gives for a process
    that ended: exited (code in bits 8-15) or killed by a signal (bits 0-6, core flag 7)."""
    try:
        status = int(line)
    except ValueError:
        status = -1
    if 0 <= status <= 0xFFFF:
        exited = status & 0xFF == 0
        signalled = status >> 8 == 0 and 0 < status & 0x7F < 0x7F
        if exited or signalled:
            return status
    return BadStatus(line[:64].decode(errors="replace").strip())


async def _stub_status(fd: int) -> int | BadStatus | None:
    """The program's wait status, as the stub reports it when the program ends; None when the
    stub ended without one (it failed, or the sandbox was killed first)."""
    line = await _read_until(fd, _line)
    return None if line is None else wait_status(line)


async def _relay_output(relay, pieces: asyncio.Queue) -> None:
    """An interactive run's output, to its client piece by piece, in the order it was read."""
    while (piece := await pieces.get()) is not None:
        with contextlib.suppress(Exception):  # a client that left does not stop the run
            await relay(*piece)


async def _supervise(box: Box, spec: StageSpec, started: float, cpus: float) -> StageResult:
    process, cgroup, limits = box.process, box.cgroup, spec.limits
    watch = _Watch()
    live = spec.interactive
    pieces: asyncio.Queue | None = asyncio.Queue() if live else None
    combined: list[bytes] = []
    stdout = _Capture("stdout", process.stdout, limits.output_bytes, watch, pieces, combined)
    stderr = _Capture("stderr", process.stderr, limits.output_bytes, watch, pieces, combined)
    tasks = {
        "status": asyncio.create_task(_stub_status(box.status)),
        "exit": asyncio.create_task(process.wait()),
        "stop": asyncio.create_task(watch.stopped.wait()),
        "watchdog": asyncio.create_task(_watchdog(cgroup, limits, started, watch, cpus)),
    }
    if live is not None:
        assert pieces is not None
        tasks["stdin"] = asyncio.create_task(_feed_live(process.stdin, live.stdin))
        tasks["signals"] = asyncio.create_task(_relay_signals(box, live.signals))
        tasks["relay"] = asyncio.create_task(_relay_output(live.output, pieces))
    else:
        tasks["stdin"] = asyncio.create_task(_feed(process.stdin, spec.stdin))
    try:
        ends = {tasks["status"], tasks["exit"], tasks["stop"]}
        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        wall_ms = (time.monotonic() - started) * 1000
        report = None
        if tasks["status"].done() and not watch.stopped.is_set():
            report = tasks["status"].result()
        status = report if isinstance(report, int) else None
        tasks["watchdog"].cancel()
        # Whatever is left (daemons, a process that tripped a limit) dies with the sandbox's
        # pid namespace. (Process.kill() is avoided: it may reap the process behind asyncio's
        # back.)
        box.kill_init()
        if status is not None:
            # The program has ended and all it wrote is in the pipes: take it now, without
            # waiting for the sandbox's teardown (which holds the pipes open a while longer).
            for capture in (stdout, stderr):
                capture.read_available(limit=DRAIN_LIMIT_BYTES)
                capture.stop()
            returncode = os.waitstatus_to_exitcode(status)
        else:
            returncode = await tasks["exit"]
            closed = asyncio.gather(stdout.closed, stderr.closed)
            try:
                await asyncio.wait_for(closed, DRAIN_TIMEOUT_S)
            except TimeoutError:
                return StageResult(None, None, b"", b"", internal_error="output did not close")
        if pieces is not None:
            pieces.put_nowait(None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(tasks["relay"]), DRAIN_TIMEOUT_S)
    finally:
        stdout.stop()
        stderr.stop()
        for task in tasks.values():
            task.cancel()
    if isinstance(report, BadStatus):
        # The stub is out of the program's reach (not dumpable): this is the sandbox's fault.
        message = f"the sandbox's pid 1 reported {report.text!r}, not a wait status"
        return StageResult(None, None, b"", b"", internal_error=message)
    (out, out_cut), (err, err_cut) = stdout.result(), stderr.result()
    cpu_ms = cgroup.cpu_time_ns() / 1e6
    memory = cgroup.memory_peak()
    ending = Ending(returncode, cpu_ms, watch.limit, oom_killed=cgroup.oom_killed())
    verdict = classify(ending, limits)
    if (
        verdict.limit is None
        and status is None
        and returncode in (1, 125)
        and err.startswith((b"bwrap: ", b"stub"))
    ):
        message = err.decode(errors="replace").strip() or "the sandbox's stub failed"
        return StageResult(None, None, b"", b"", internal_error=message)
    return StageResult(
        exit_code=verdict.exit_code,
        signal=verdict.signal,
        stdout=out,
        stderr=err,
        stdout_truncated=out_cut,
        stderr_truncated=err_cut,
        wall_time_ms=round(wall_ms, 3),
        cpu_time_ms=round(cpu_ms, 3),
        memory_bytes=memory,
        limit=verdict.limit,
        output=b"".join(combined),
    )


async def _watchdog(cgroup, limits: Limits, started: float, watch: _Watch, cpus: float) -> None:
    """Trip the time limit on wall clock or on the CPU time of all the stage's processes."""
    cores = cpus or os.cpu_count() or 1
    wall_deadline = started + limits.wall_time_ms / 1000
    cpu_limit_ns = limits.cpu_time_ms * 1_000_000
    while True:
        now = time.monotonic()
        if now >= wall_deadline:
            watch.trip(LimitHit.TIME)
            return
        used = cgroup.cpu_time_ns()  # one small cgroup file: cheaper read here than in a thread
        if used >= cpu_limit_ns:
            watch.trip(LimitHit.TIME)
            return
        # CPU time cannot be spent faster than the cores allow: sleep until it could run out.
        cpu_left_s = (cpu_limit_ns - used) / 1e9 / cores
        pause = min(wall_deadline - now, max(MIN_POLL_S, min(cpu_left_s, MAX_POLL_S)))
        await asyncio.sleep(pause)


async def _feed_live(stdin: asyncio.StreamWriter, pieces: asyncio.Queue[bytes | None]) -> None:
    """An interactive run's stdin: pieces as the client sends them; None closes it."""
    try:
        while (piece := await pieces.get()) is not None:
            stdin.write(piece)
            await stdin.drain()
        stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass


async def _relay_signals(box: Box, numbers: asyncio.Queue[int]) -> None:
    """Send the client's signals to every process of the run but the stub (pid 1) and bwrap
    (outside the sandbox, in its cgroup: a signal that ends it takes the sandbox down)."""
    keep = {box.init_pid, box.process.pid}
    while True:
        number = await numbers.get()
        for pid in await asyncio.to_thread(box.cgroup.procs):
            if pid not in keep:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, number)


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    """Write stdin while the program runs; a program that stops reading is not an error."""
    try:
        if data:
            stdin.write(data)
            await stdin.drain()
        stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass


__all__ = ["WORKDIR", "Box", "Profile", "run_in_box", "start_box"]
