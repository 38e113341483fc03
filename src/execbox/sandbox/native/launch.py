"""Starting a box: one process start, ahead of time or on the spot.

The helper (helper.c, ``launch``) creates the stage's cgroup and work dir, joins the cgroup,
drops to an unprivileged host uid and becomes bwrap, so every process of the stage is in the
cgroup from its first instruction. The sandbox's pid 1 is the helper's stub, which waits on a
pipe for its command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

from execbox.sandbox.native import cgroups, process
from execbox.sandbox.native.box import Box, Profile
from execbox.sandbox.native.pipes import pipe_with, read_until
from execbox.sandbox.native.rootfs import MASK_ARGS
from execbox.sandbox.native.stub import STUB_READY, read_line, stub_argv


class BoxStartError(Exception):
    """A box did not start (bwrap's own words, or what failed on the host's side)."""


def _child_pid(data: bytes) -> int | None:
    """bwrap's --info-fd: a JSON object with the sandbox's pid 1 once its namespaces exist."""
    try:
        return int(json.loads(data)["child-pid"])
    except (ValueError, KeyError):
        return None


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
) -> Box:
    """Start a sandbox whose stub waits for its command; BoxStartError when it does not.

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
        "seccomp": pipe_with(seccomp_program),
    }
    options = [*options, *MASK_ARGS, "--seccomp", str(fds["seccomp"]), "--info-fd", str(info_write)]
    fds["args"] = pipe_with("\0".join(options).encode() + b"\0")
    # The helper prepares the stage, drops to the sandbox's uid and execs bwrap: no Python code
    # runs between fork and exec, so the spawn uses vfork (a fraction of a millisecond, on the
    # event loop) instead of copying the service's memory.
    argv = [launcher, "launch", str(uid), *steps, "--", bwrap, "--args", str(fds["args"]), "--"]
    argv += stub_argv(command_read, status_write)
    popen: subprocess.Popen | None = None
    init = -1
    try:
        try:
            popen = process.start(argv, pass_fds=tuple(fds.values()), env={})
        finally:
            for fd in fds.values():
                os.close(fd)
        # The program's standard streams are pipes the service made (root's, mode 0600): given
        # to the box's uid, the program may reopen them as /dev/stdin, /dev/stdout and
        # /dev/stderr (`echo x > /dev/stderr`), as anywhere else. No other box can reach them.
        for pipe in (popen.stdin, popen.stdout, popen.stderr):
            assert pipe is not None
            os.fchown(pipe.fileno(), uid, -1)
        box_process = await process.attach(popen)
        child = await read_until(info_read, _child_pid)
        if child is not None:
            try:
                init = os.pidfd_open(child)
            except ProcessLookupError:
                child = None  # bwrap gave up right after starting the sandbox
        # bwrap reports the sandbox's pid before it mounts its file systems; the stub says when
        # it runs, which is after all of that.
        if child is not None and await read_until(status_read, read_line) != STUB_READY:
            child = None
        if child is None:
            if init >= 0:
                os.close(init)
                init = -1
            await box_process.wait()
            stderr = process.read_now(box_process.stderr)
            box_process.close_pipes()
            raise BoxStartError(stderr.decode(errors="replace").strip() or "bwrap did not start")
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
