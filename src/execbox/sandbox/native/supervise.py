"""Supervising a box's one program: its files go in, its command goes to the stub, and the
host watches it to the end (the stub's report, the box's end, or a limit: the watchdog's time,
the capture's output), then reads the facts off the stage's cgroup and has them judged by the
policy. The box is killed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

from execbox.config import Limits
from execbox.sandbox.base import StageResult, StageSpec
from execbox.sandbox.native import workdir
from execbox.sandbox.native.box import Box, box_pids
from execbox.sandbox.native.capture import (
    Capture,
    Watch,
    feed,
    feed_live,
    relay_output,
    relay_signals,
)
from execbox.sandbox.native.stub import BadStatus, stub_status, stub_words
from execbox.sandbox.policy import WORKDIR, Ending, LimitHit

MIN_POLL_S = 0.005
MAX_POLL_S = 0.1
DRAIN_TIMEOUT_S = 2.0
# What an ended program may have left in its pipes (a pipe holds 64 KiB, at most 1 MiB).
DRAIN_LIMIT_BYTES = 4 << 20
# Up to this many bytes of files are written into a box from the event loop itself.
INLINE_LOAD_BYTES = 256 * 1024


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
        if spec.collect_files or spec.outputs is not None:
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


async def _supervise(box: Box, spec: StageSpec, started: float, cpus: float) -> StageResult:
    process, cgroup, limits = box.process, box.cgroup, spec.limits
    watch = Watch()
    live = spec.interactive
    pieces: asyncio.Queue | None = asyncio.Queue() if live else None
    combined: list[bytes] = []
    stdout = Capture("stdout", process.stdout, limits.output_bytes, watch, pieces, combined)
    stderr = Capture("stderr", process.stderr, limits.output_bytes, watch, pieces, combined)
    tasks = {
        "status": asyncio.create_task(stub_status(box.status)),
        "exit": asyncio.create_task(process.wait()),
        "stop": asyncio.create_task(watch.stopped.wait()),
        "watchdog": asyncio.create_task(_watchdog(cgroup, limits, started, watch, cpus)),
    }
    if live is not None:
        assert pieces is not None
        tasks["stdin"] = asyncio.create_task(feed_live(process.stdin, live.stdin))
        tasks["signals"] = asyncio.create_task(relay_signals(box, live.signals))
        tasks["relay"] = asyncio.create_task(relay_output(live.output, pieces))
    else:
        tasks["stdin"] = asyncio.create_task(feed(process.stdin, spec.stdin))
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
    cpu_ms = cgroup.cpu_time_ns() / 1e6
    ending = Ending(returncode, cpu_ms, watch.limit, oom_killed=cgroup.oom_killed())
    result = StageResult.judged(
        ending,
        limits,
        stdout.result(),
        stderr.result(),
        wall_ms,
        cgroup.memory_peak(),
        output=b"".join(combined),
    )
    err = result.stderr
    if (
        result.limit is None
        and status is None
        and returncode in (1, 125)
        and err.startswith((b"bwrap: ", b"stub"))
    ):
        message = err.decode(errors="replace").strip() or "the sandbox's stub failed"
        return StageResult(None, None, b"", b"", internal_error=message)
    return result


async def _watchdog(cgroup, limits: Limits, started: float, watch: Watch, cpus: float) -> None:
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
