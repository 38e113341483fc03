"""The command line runs files through the same sandbox."""

from __future__ import annotations

import os
import subprocess
import sys


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "EXECBOX_STATE_DIR": "/run/execbox-test-cli"}
    return subprocess.run(
        [sys.executable, "-m", "execbox", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=120,
    )


def test_run_a_file_with_stdin_and_args(tmp_path):
    program = tmp_path / "prog.py"
    program.write_text("import sys\nprint(input().upper(), sys.argv[1:])\n")
    done = cli("run", "--stdin", "shout\n", str(program), "a1", "a2")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "SHOUT ['a1', 'a2']\n"
    assert "ok" in done.stderr


def test_run_reports_failure_and_json(tmp_path):
    program = tmp_path / "bad.sh"
    program.write_text("echo oops >&2; exit 4\n")
    done = cli("run", str(program))
    assert done.returncode == 4 and "oops" in done.stderr and "runtime_error" in done.stderr
    done = cli("run", "--json", str(program))
    assert '"status": "runtime_error"' in done.stdout


def test_languages_lists_every_language():
    done = cli("languages")
    assert done.returncode == 0
    for name in ("python", "go", "bash", "javascript", "java", "rust", "c++"):
        assert name in done.stdout
