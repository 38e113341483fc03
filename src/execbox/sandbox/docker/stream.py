"""Reading one run's attach stream to its end, and judging what it said.

The host sends the run's archive (``container.archive``), then reads stdout and stderr as
Docker multiplexes them until the control shell's markers arrive (and, for a compile, its
work dir's archive; for output files, theirs), the stream closes, a time limit passes or the
output overflows. The markers' figures (exit code, CPU time, peak memory, OOM kills) come from
the container's own cgroup; without them, what the host saw decides.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from execbox.sandbox.base import StageResult, StageSpec
from execbox.sandbox.docker.frames import Demultiplexer
from execbox.sandbox.docker.outputs import stream_archive_cap
from execbox.sandbox.policy import Ending, LimitHit

READ_CHUNK = 1 << 16
CPU_POLL_S = 0.05
EXIT_WAIT_S = 2.0  # a container whose stream ended: how long it may take to be seen exited


@dataclass
class Outcome:
    """What the host saw of one run, before it is turned into a StageResult."""

    streams: Demultiplexer
    wall_ms: float
    timed_out: bool
    ended: bool  # the stream closed before the markers: the container died
    host_cpu_ms: float = 0.0  # the last CPU time read from the host (when it can read it)
    collect_s: float = 0.0  # from the program's end to the output files' (or giving up)


def send_and_read(sock: socket.socket, payload: bytes, spec: StageSpec, nonce: str, cpu_ns):
    """Send the archive, then read the attach stream until both markers (and an archive)
    arrived, the stream closed, a time limit passed or output overflowed. ``cpu_ns`` reads the
    container's CPU time from the host (None where the host cannot see its cgroup)."""
    limits = spec.limits
    streams = Demultiplexer(limits.output_bytes, nonce, stream_archive_cap(spec))
    sock.settimeout(None)
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)
    started = time.monotonic()
    deadline = started + limits.wall_time_ms / 1000
    cpu_limit_ns = limits.cpu_time_ms * 1_000_000
    cpu_start = cpu_ns() if cpu_ns else None
    timed_out = ended = False
    cpu_used_ns = 0
    program_ended: float | None = None  # when the figures came (output files may follow)
    while not streams.done:
        now = time.monotonic()
        if program_ended is None and streams.stderr.marker is not None and spec.outputs:
            # The program is over: its limits are met, and what the script does next (choose
            # and send its output files) gets what the execution has left of its own time.
            program_ended, cpu_start = now, None
            deadline = now + max(0.0, spec.outputs.collect_time_s)
        if program_ended is not None:
            if now >= deadline:
                break  # its output files did not come in time: the result says unavailable
        elif cpu_start is not None and (used := cpu_ns()) is not None:
            cpu_used_ns = used - cpu_start
        if program_ended is None and (now >= deadline or cpu_used_ns >= cpu_limit_ns):
            timed_out = True
            break
        sock.settimeout(deadline - now if cpu_start is None else min(deadline - now, CPU_POLL_S))
        try:
            chunk = sock.recv(READ_CHUNK)
        except TimeoutError:
            continue
        if not chunk:
            ended = True
            break
        streams.feed(chunk)
        if streams.overflow:
            break
    finished = time.monotonic()
    wall_ms = ((program_ended or finished) - started) * 1000
    collect_s = finished - program_ended if program_ended is not None else 0.0
    return Outcome(streams, wall_ms, timed_out, ended, cpu_used_ns / 1e6, collect_s)


def judge(
    outcome: Outcome, spec: StageSpec, oom_killed: bool, exit_status: int | None = None
) -> StageResult:
    """Turn what the stream said into the backend-neutral result."""
    streams = outcome.streams
    stdout, out_cut = streams.stdout.result()
    stderr, err_cut = streams.stderr.result()
    figures = streams.stderr.marker or []
    code: int | None = None
    cpu_ms = outcome.host_cpu_ms
    memory = 0
    ooms = 0
    if len(figures) == 4 and all(word.isdigit() for word in figures) and int(figures[0]) < 256:
        code = int(figures[0])
        cpu_ms = max(0, int(figures[1])) / 1e6
        memory = int(figures[2])
        ooms = int(figures[3])
    elif exit_status is not None and exit_status > 128:
        # The program killed the shell that watched it (kill -9 -1): the container ended
        # with that shell's death, the program's with it.
        code = exit_status
    elif not (outcome.timed_out or streams.overflow or oom_killed):
        detail = stderr.decode(errors="replace").strip()[-300:]
        return StageResult(
            None, None, b"", b"", internal_error=f"the container ended early: {detail}"
        )
    stopped_for = (
        LimitHit.TIME if outcome.timed_out else LimitHit.OUTPUT if streams.overflow else None
    )
    ending = Ending(code, cpu_ms, stopped_for, oom_killed=ooms > 0 or oom_killed)
    return StageResult.judged(
        ending, spec.limits, (stdout, out_cut), (stderr, err_cut), outcome.wall_ms, memory
    )
