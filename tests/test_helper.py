"""The native sandbox's compiled helper (helper.c), run directly: both roles, every failure."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from execbox.config import Limits
from execbox.sandbox.native import helper
from execbox.sandbox.native.stub import stub_words

DEFAULTS = Limits(
    wall_time_ms=5000,
    cpu_time_ms=1000,
    memory_mb=64,
    processes=8,
    output_bytes=1024,
    file_size_mb=1,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return helper.build(tmp_path_factory.mktemp("helper"))


def stub(
    built: Path, words: bytes, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, int | None]:
    """Run the stub with its words; what it did, and the wait status it reported (if any)."""
    read_end, write_end = os.pipe()
    status_read, status_write = os.pipe()
    os.write(write_end, words)
    os.close(write_end)
    try:
        done = subprocess.run(
            [str(built), "stub", str(read_end), str(status_write)],
            pass_fds=(read_end, status_write),
            capture_output=True,
            timeout=30,
            env=env,
        )
        os.close(status_write)
        status_write = -1
        reported = os.read(status_read, 64)
        # The stub says it runs, then (if it started the program) the program's wait status.
        assert reported.startswith(b"ready\n"), reported
        status = reported.removeprefix(b"ready\n")
        return done, int(status) if status else None
    finally:
        for fd in (read_end, status_read, status_write):
            if fd >= 0:
                os.close(fd)


def test_build_is_reused_and_static(built):
    assert helper.build(built.parent) == built
    assert oct(built.stat().st_mode & 0o777) == "0o755"
    kind = subprocess.run(["file", "-b", str(built)], capture_output=True, text=True).stdout
    assert "statically linked" in kind or "static-pie" in kind


def test_a_writable_build_is_not_trusted(built, tmp_path):
    copy = tmp_path / built.name
    copy.write_bytes(built.read_bytes())
    copy.chmod(0o777)
    rebuilt = helper.build(tmp_path)
    assert rebuilt == copy and oct(copy.stat().st_mode & 0o777) == "0o755"


def test_stub_sets_the_limits_then_becomes_the_program(built):
    limits = DEFAULTS.replace(cpu_time_ms=2500, file_size_mb=3, memory_mb=128)
    script = "ulimit -St; ulimit -Ht; ulimit -f; ulimit -s; ulimit -c; ulimit -n; echo err >&2"
    done, status = stub(built, stub_words(limits, ["bash", "-c", script]))
    assert done.returncode == 0 and status == 0, done.stderr
    assert done.stdout.decode().split() == ["4", "5", "3072", "131072", "0", "1024"]
    assert done.stderr == b"err\n"


def test_stub_joins_stderr_to_stdout(built):
    done, _ = stub(built, stub_words(DEFAULTS, ["bash", "-c", "echo a; echo b >&2"], True))
    assert (done.stdout, done.stderr) == (b"a\nb\n", b"")


def test_stub_reports_the_program_s_end_as_a_wait_status(built):
    done, status = stub(built, stub_words(DEFAULTS, ["bash", "-c", "exit 3"]))
    assert (done.returncode, os.waitstatus_to_exitcode(status)) == (3, 3)
    done, status = stub(built, stub_words(DEFAULTS, ["bash", "-c", "kill -SEGV $$"]))
    assert (done.returncode, os.waitstatus_to_exitcode(status)) == (128 + 11, -11)


def test_stub_passes_signals_on_to_the_program_only(built):
    # The stub blocks signals for itself; the program starts with none blocked and none ignored,
    # even those its service ignores (ignored signals survive exec: CI runs with signal 32 so).
    code = "trap - INT; grep -E 'Sig(Blk|Ign)' /proc/self/status"
    done, status = stub(built, stub_words(DEFAULTS, ["bash", "-c", code]))
    assert status == 0
    assert done.stdout.decode().split() == [
        "SigBlk:",
        "0000000000000000",
        "SigIgn:",
        "0000000000000000",
    ]


def test_stub_reports_a_missing_program_as_a_shell_would(built):
    done, status = stub(built, stub_words(DEFAULTS, ["no-such-program"]))
    assert done.returncode == 127 and os.waitstatus_to_exitcode(status) == 127
    assert done.stderr == b"no-such-program: No such file or directory\n"


def test_stub_finds_programs_in_path_as_a_shell_would(built, tmp_path):
    # The first PATH entry holding the name wins; a script without a #! line runs with sh; a
    # file that is not executable is reported as 126 unless a later entry has a program.
    first, second = tmp_path / "first", tmp_path / "second"
    for directory in (first, second):
        directory.mkdir()
    (first / "greet").write_text("echo first $1\n")
    (first / "greet").chmod(0o755)
    (second / "greet").write_text("#!/bin/sh\necho second\n")
    (second / "greet").chmod(0o755)
    (first / "locked").write_text("echo locked\n")
    (first / "locked").chmod(0o644)
    path = f"{first}:{second}:/usr/bin:/bin"

    done, status = stub(built, stub_words(DEFAULTS, ["greet", "x"]), env={"PATH": path})
    assert (done.stdout, status) == (b"first x\n", 0), done.stderr

    done, status = stub(built, stub_words(DEFAULTS, ["locked"]), env={"PATH": path})
    assert done.returncode == 126 and os.waitstatus_to_exitcode(status) == 126
    assert done.stderr == b"locked: Permission denied\n"

    done, status = stub(built, stub_words(DEFAULTS, [str(first / "greet"), "y"]), env={})
    assert (done.stdout, status) == (b"first y\n", 0), done.stderr


@pytest.mark.parametrize(
    "words", [b"", b"1\x002\x003\x004\x000\x00", b"x\x002\x003\x004\x000\x00sh\x00", b"1\x002"]
)
def test_stub_refuses_malformed_commands(built, words):
    done, status = stub(built, words)
    assert done.returncode == 125 and done.stderr.startswith(b"stub: ") and status is None


def launch(built: Path, *words: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(built), "launch", *words], capture_output=True, timeout=30)


def test_launch_runs_the_program_as_the_sandbox_uid(built):
    done = launch(built, "61999", "--", "/usr/bin/id")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == "uid=61999 gid=61999 groups=61999"


@pytest.mark.parametrize("uid", ["0", "-1", "abc", ""])
def test_launch_refuses_root_and_nonsense(built, uid):
    done = launch(built, uid, "--", "/usr/bin/id")
    assert done.returncode == 125 and done.stdout == b""


@pytest.fixture
def cgroup_dir() -> Iterator[Path]:
    """Where a test cgroup (pids controller) may be made; removed afterwards."""
    path = Path(f"/sys/fs/cgroup/pids/execbox-helper-test-{os.getpid()}")
    if not path.parent.is_dir():
        path = Path(f"/sys/fs/cgroup/execbox-helper-test-{os.getpid()}")  # cgroup v2
    yield path
    if path.exists():
        path.rmdir()


def test_launch_prepares_the_stage_before_becoming_the_program(built, tmp_path, cgroup_dir):
    work = tmp_path / "work"
    options = "size=1048576,mode=0700,uid=61999,gid=61999"
    script = f"cat /proc/self/cgroup; cat {cgroup_dir}/pids.max"
    done = launch(
        built,
        "61999",
        "mkdir", str(cgroup_dir),
        "write", str(cgroup_dir / "pids.max"), "7",
        "try-write", str(cgroup_dir / "no-such-file"), "1",
        "join", str(cgroup_dir / "cgroup.procs"),
        "tmpfs", str(work), options,
        "--", "/bin/sh", "-c", script,
    )  # fmt: skip
    try:
        assert done.returncode == 0, done.stderr
        lines = done.stdout.decode().splitlines()
        assert any(line.endswith(f":/{cgroup_dir.name}") for line in lines), lines
        assert lines[-1] == "7"
        info = work.stat()
        assert (info.st_uid, oct(info.st_mode & 0o777)) == (61999, "0o700")
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        assert any(f" {work} " in line and " - tmpfs execbox " in line for line in mounts)
    finally:
        subprocess.run(["umount", str(work)], check=False)


@pytest.mark.parametrize(
    "steps,message",
    [
        (["write", "/nonexistent/file", "1"], b"execbox-helper: write /nonexistent/file: No such"),
        (["mkdir", "/"], b"execbox-helper: mkdir /: File exists"),
        (["join", "/nonexistent/cgroup.procs"], b"execbox-helper: join /nonexistent/cgroup"),
        (["frobnicate", "/"], b"execbox-helper: unknown or incomplete step"),
        (["mkdir"], b"execbox-helper: unknown or incomplete step"),
        (["mkdir", "/tmp/x"], b"execbox-helper: no program after --"),
        ([], b"execbox-helper: usage: launch UID"),
    ],
)
def test_launch_stops_at_a_failing_step(built, steps, message):
    program = ["/usr/bin/id"] if steps and steps != ["mkdir", "/tmp/x"] else []
    done = launch(built, "61999", *steps, "--", *program)
    assert done.returncode == 125 and done.stdout == b""
    assert done.stderr.startswith(message), done.stderr
