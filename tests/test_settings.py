"""A setting execbox cannot use stops it at start with a line naming the variable, never a
traceback, and never a server that runs programs with a nonsensical limit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from execbox.cli import describe_bad_settings
from execbox.config import Settings


def serve_with(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EXECBOX_")}
    return subprocess.run(
        [sys.executable, "-m", "execbox", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        env={**clean, "EXECBOX_STATE_DIR": "/run/execbox-test-settings", **env},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"EXECBOX_MAX_CONCURRENCY": "abc"},
            "EXECBOX_MAX_CONCURRENCY: Input should be a valid integer",
        ),
        ({"EXECBOX_BACKEND": "podman"}, "EXECBOX_BACKEND: Input should be 'native' or 'docker'"),
        ({"EXECBOX_RUN_CPU_TIME_MS": "-5"}, "EXECBOX_RUN_CPU_TIME_MS: must be at least 1 (got -5)"),
        ({"EXECBOX_MAX_CONCURRENCY": "0"}, "EXECBOX_MAX_CONCURRENCY: Input should be greater"),
        ({"EXECBOX_SANDBOX_UID_BASE": "0"}, "EXECBOX_SANDBOX_UID_BASE: Input should be greater"),
        (
            {"EXECBOX_RUN_MEMORY_MB": "4096"},
            "EXECBOX_RUN_MEMORY_MB: the default a request gets (4096) is above "
            "EXECBOX_MAX_MEMORY_MB (2048)",
        ),
    ],
)
def test_a_bad_setting_stops_the_server_with_its_name(env: dict[str, str], named: str) -> None:
    done = serve_with(**env)
    assert done.returncode == 2, done.stderr
    assert "execbox cannot start: bad settings:" in done.stderr
    assert named in done.stderr
    assert "Traceback" not in done.stderr


def test_field_errors_are_named_before_the_limits_are_checked() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(run_cpu_time_ms=0, compile_memory_mb=1, queue_timeout_s=0)
    lines = describe_bad_settings(caught.value).splitlines()
    assert "  - EXECBOX_QUEUE_TIMEOUT_S: Input should be greater than 0 (got 0)" in lines
    assert len(lines) == 1  # field errors come first; the limits are checked on valid fields


def test_limits_are_checked_together() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(run_cpu_time_ms=0, compile_memory_mb=1)
    assert describe_bad_settings(caught.value).splitlines() == [
        "  - EXECBOX_RUN_CPU_TIME_MS: must be at least 1 (got 0)",
        "  - EXECBOX_COMPILE_MEMORY_MB: must be at least 8 (got 1)",
    ]


def test_log_level_is_read_in_any_case() -> None:
    assert Settings(log_level="WARNING").log_level == "warning"


def test_the_defaults_and_a_slow_hosts_limits_are_valid() -> None:
    Settings()
    Settings(
        run_cpu_time_ms=150_000,
        run_wall_time_ms=300_000,
        max_cpu_time_ms=300_000,
        max_wall_time_ms=600_000,
        compile_cpu_time_ms=150_000,
    )
