"""One sandbox policy for both backends: the same environment, and the same limit hit reads
the same (status, exit code, signal) whichever backend ran it."""

from __future__ import annotations

import json
import signal

import pytest

from execbox.config import Limits
from execbox.sandbox.policy import (
    ENVIRONMENT,
    Ending,
    LimitHit,
    classify,
    environment,
    rlimits,
    signal_of,
)

# The server tests run against both sandbox backends.
BACKENDS = ("native", "docker")

LIMITS = Limits(5000, 3000, 256, 64, 65536, 16)  # wall, CPU, MB, processes, output, file MB


# The classification, as pure logic.


@pytest.mark.parametrize(
    "ending,expected",
    [
        (Ending(0, 10.0), (0, None, None)),
        (Ending(3, 10.0), (3, None, None)),
        # A death by signal, seen directly (-N) or passed on by a shell or bwrap (128 + N).
        (Ending(-signal.SIGSEGV, 10.0), (None, signal.SIGSEGV, None)),
        (Ending(128 + signal.SIGSEGV, 10.0), (None, signal.SIGSEGV, None)),
        # The file-size rlimit's signal is the program's runtime error, named.
        (Ending(128 + signal.SIGXFSZ, 10.0), (None, signal.SIGXFSZ, None)),
        # 128 + a number that names no signal is an exit code.
        (Ending(128 + 32, 10.0), (160, None, None)),
        # CPU time over the limit, or the CPU rlimit's signal, is a time limit.
        (Ending(0, 3000.5), (0, None, LimitHit.TIME)),
        (Ending(-signal.SIGXCPU, 100.0), (None, signal.SIGXCPU, LimitHit.TIME)),
        (Ending(-signal.SIGKILL, 10.0, oom_killed=True), (None, signal.SIGKILL, LimitHit.MEMORY)),
        # What the watcher stopped the run for comes before anything else.
        (
            Ending(-signal.SIGKILL, 9999.0, LimitHit.OUTPUT, oom_killed=True),
            (None, signal.SIGKILL, LimitHit.OUTPUT),
        ),
        (Ending(0, 9999.0, LimitHit.TIME, oom_killed=True), (None, signal.SIGKILL, LimitHit.TIME)),
        # OOM before CPU time.
        (Ending(1, 9999.0, oom_killed=True), (1, None, LimitHit.MEMORY)),
        # Stopped before the program's status was known: killed by the sandbox.
        (Ending(None, 10.0, LimitHit.TIME), (None, signal.SIGKILL, LimitHit.TIME)),
        (Ending(None, 10.0, oom_killed=True), (None, signal.SIGKILL, LimitHit.MEMORY)),
    ],
)
def test_classify(ending, expected):
    verdict = classify(ending, LIMITS)
    assert (verdict.exit_code, verdict.signal, verdict.limit) == expected


def test_signal_of():
    assert signal_of(128 + 9) == signal.SIGKILL
    assert signal_of(128) is None and signal_of(1) is None and signal_of(128 + 65) is None


def test_rlimits_follow_the_limits():
    got = rlimits(Limits(1000, 1500, 512, 8, 1, 3))
    assert (got.cpu_soft_s, got.cpu_hard_s) == (3, 4)  # SIGXCPU past the limit, then SIGKILL
    assert got.file_size_bytes == 3 << 20
    assert got.stack_bytes == 256 << 20  # the memory limit, capped
    assert rlimits(Limits(1000, 1000, 64, 8, 1, 1)).stack_bytes == 64 << 20
    assert (got.core_bytes, got.open_files) == (0, 1024)


def test_a_language_variable_overrides_the_common_environment():
    assert environment({"HOME": "/x", "A": "1"}) == {**ENVIRONMENT, "HOME": "/x", "A": "1"}


# The same on both backends, as a user sees it.

PYTHON_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}


def test_the_environment_is_the_policys(run):
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    body = run("python", code)
    assert body["status"] == "ok", body
    assert json.loads(body["run"]["stdout"]) == {**ENVIRONMENT, **PYTHON_ENV}


def test_home_is_writable_and_outside_the_work_dir(run):
    code = 'cd; echo "$PWD"; echo hi > .dotfile && cat .dotfile; ls -A /box'
    body = run("bash", code)
    assert body["status"] == "ok", body
    assert body["run"]["stdout"] == "/tmp\nhi\nmain.sh\n"


FILL_MEMORY = "x = []\nwhile True: x.append(bytearray(1 << 20))"
FORK_UNTIL_REFUSED = (
    "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(5)\n"
    "        os._exit(0)"
)


@pytest.mark.parametrize(
    "language,code,limits,expected",
    [
        ("python", "while True: pass", {"cpu_time_ms": 500}, ("time_limit", None, "SIGKILL")),
        ("bash", "sleep 30", {"wall_time_ms": 500}, ("time_limit", None, "SIGKILL")),
        ("python", FILL_MEMORY, {"memory_mb": 64}, ("memory_limit", None, "SIGKILL")),
        ("bash", "yes", {"output_bytes": 1000}, ("output_limit", None, "SIGKILL")),
        # The file-size rlimit kills the writer with SIGXFSZ: the program's runtime error.
        (
            "bash",
            "exec head -c 3000000 /dev/zero > /tmp/big",
            {"file_size_mb": 1},
            ("runtime_error", None, "SIGXFSZ"),
        ),
        # A refused fork is the program's own failure (here an uncaught exception).
        ("python", FORK_UNTIL_REFUSED, {"processes": 4}, ("runtime_error", 1, None)),
        ("bash", "kill -SEGV $$", {}, ("runtime_error", None, "SIGSEGV")),
        ("bash", "exit 7", {}, ("runtime_error", 7, None)),
    ],
)
def test_the_same_limit_hit_reads_the_same(run, language, code, limits, expected):
    body = run(language, code, limits=limits)
    assert (body["status"], body["run"]["exit_code"], body["run"]["signal"]) == expected, body
