"""What every sandbox backend applies the same way: the environment a program gets, the
per-process rlimits behind a stage's limits, and how the way a run ended becomes its result.

The backends only report facts (how the program ended, its CPU time, whether their watcher
stopped it, whether the kernel's OOM killer struck); what those facts mean is decided here, so
that the same program hitting the same limit reads the same on either backend.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from execbox.config import Limits

# Where a program starts (the work dir holding its files), on either backend.
WORKDIR = "/box"

# HOME is /tmp, not the work dir: a program (or a compiler) that writes dotfiles into its home
# must not add files to the work dir, whose files are a compile's artifacts.
ENVIRONMENT: Mapping[str, str] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "USER": "runner",
    "LOGNAME": "runner",
    "PWD": WORKDIR,
}

# Open files per process, and no core dumps (a dump of a big program would fill the tmpfs).
OPEN_FILES = 1024
CORE_BYTES = 0
# The stack rlimit is the memory limit, up to this (Judge0 documents the same cap).
MAX_STACK_MB = 256


def environment(extra: Mapping[str, str]) -> dict[str, str]:
    """A program's whole environment: the common one, then its language's own variables."""
    return {**ENVIRONMENT, **extra}


@dataclass(frozen=True)
class Rlimits:
    """Per-process rlimits: a backstop behind the stage's cgroup limits, never an address-space
    limit (it breaks the JVM, Go and V8)."""

    cpu_soft_s: int  # SIGXCPU here ...
    cpu_hard_s: int  # ... and SIGKILL here, a second later, for a program that ignores it
    file_size_bytes: int
    stack_bytes: int
    core_bytes: int = CORE_BYTES
    open_files: int = OPEN_FILES


def rlimits(limits: Limits) -> Rlimits:
    cpu_s = math.ceil(limits.cpu_time_ms / 1000) + 1
    return Rlimits(
        cpu_soft_s=cpu_s,
        cpu_hard_s=cpu_s + 1,
        file_size_bytes=file_size_bytes(limits.file_size_mb),
        stack_bytes=min(limits.memory_mb, MAX_STACK_MB) << 20,
    )


def file_size_bytes(file_size_mb: int) -> int:
    """The file-size rlimit of a stage's processes."""
    return file_size_mb << 20


class LimitHit(StrEnum):
    TIME = "time"
    MEMORY = "memory"
    OUTPUT = "output"


def signal_of(code: int) -> int | None:
    """Death by signal N, reported as exit code 128 + N the way a shell does (by bwrap, and by
    the Docker backend's watching shell); None when ``code`` names no signal."""
    number = code - 128
    if 0 < number < signal.NSIG and number in {s.value for s in signal.Signals}:
        return number
    return None


@dataclass(frozen=True)
class Ending:
    """The facts a backend reports about how a run ended."""

    # As os.waitstatus_to_exitcode gives it: an exit code (128 + N when a shell or bwrap
    # passed on a death by signal N), or -N for a death by signal N seen directly; None when
    # the run was stopped before the program's status could be learnt.
    code: int | None
    cpu_time_ms: float
    # The limit the backend's own watcher stopped the run for (wall or CPU time, output), the
    # first one it saw; None when the program ended by itself.
    stopped_for: LimitHit | None = None
    oom_killed: bool = False  # the kernel's OOM killer killed a process of the stage


@dataclass(frozen=True)
class Verdict:
    exit_code: int | None  # None when the program died by a signal
    signal: int | None
    limit: LimitHit | None


def classify(ending: Ending, limits: Limits) -> Verdict:
    """What a run's ending means.

    A run the watcher stopped was killed by the sandbox (SIGKILL), whatever status the
    program managed to leave, and its limit comes first; then an OOM kill, then CPU time
    (over the limit, or the CPU rlimit's SIGXCPU). A file-size signal (SIGXFSZ) and a refused
    fork are the program's own failures: a runtime error, with the signal named."""
    exit_code, sig = _exit_and_signal(ending.code)
    limit = ending.stopped_for
    if limit is None and ending.oom_killed:
        limit = LimitHit.MEMORY
    if limit is None and (ending.cpu_time_ms > limits.cpu_time_ms or sig == signal.SIGXCPU):
        limit = LimitHit.TIME
    if ending.stopped_for is not None or (ending.code is None and limit is not None):
        exit_code, sig = None, signal.SIGKILL
    return Verdict(exit_code, sig, limit)


def _exit_and_signal(code: int | None) -> tuple[int | None, int | None]:
    if code is None:
        return None, None
    if code < 0:
        return None, -code
    if (number := signal_of(code)) is not None:
        return None, number
    return code, None
