"""A setting execbox cannot use stops it at start with a line naming the variable, never a
traceback, and never a server that runs programs with a nonsensical limit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from execbox.config import Settings, describe_bad_settings, unknown_settings


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
        ({"EXECBOX_STATE_DIR": "run/execbox"}, "EXECBOX_STATE_DIR: must be an absolute path"),
        ({"EXECBOX_DOCKER_IMAGES": "python:3.12"}, "'python:3.12' is not language=image"),
        ({"EXECBOX_CORS_ORIGINS": "docs.example.org"}, "'docs.example.org' is not an origin"),
        ({"EXECBOX_DATABASE_URL": "mysql://db/x"}, "EXECBOX_DATABASE_URL: must be a PostgreSQL"),
        ({"EXECBOX_HOST": ""}, "EXECBOX_HOST: empty (that would listen on every interface)"),
        ({"EXECBOX_API_KEYS": " , "}, "EXECBOX_API_KEYS: set, but holds no key"),
        ({"EXECBOX_BODY_TIMEOUT_S": "inf"}, "EXECBOX_BODY_TIMEOUT_S: Input should be a finite"),
        ({"EXECBOX_CPUS_PER_STAGE": "0.001"}, "EXECBOX_CPUS_PER_STAGE: must be 0 (no quota) or"),
        (
            {"EXECBOX_CLUSTER_HEARTBEAT_S": "30"},
            "EXECBOX_CLUSTER_STALLED_AFTER_S: must be at least twice EXECBOX_CLUSTER_HEARTBEAT_S",
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
    assert "  - EXECBOX_QUEUE_TIMEOUT_S: Input should be greater than 0 (got '0')" in lines
    assert len(lines) == 1  # field errors come first; the limits are checked on valid fields


def test_limits_are_checked_together() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(run_cpu_time_ms=0, compile_memory_mb=1)
    assert describe_bad_settings(caught.value).splitlines() == [
        "  - EXECBOX_RUN_CPU_TIME_MS: must be at least 1 (got 0)",
        "  - EXECBOX_COMPILE_MEMORY_MB: must be at least 8 (got 1)",
    ]


def test_log_level_is_read_in_any_case_and_trace_logs() -> None:
    assert Settings(log_level="WARNING").log_level == "warning"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from execbox.server import log_to_stderr\n"
            "from execbox.config import Settings\n"
            "log_to_stderr(Settings(log_level='TRACE'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_a_run_default_above_a_lowered_maximum_is_cut_to_it() -> None:
    # An operator lowering MAX_MEMORY_MB alone keeps a working server.
    settings = Settings(max_memory_mb=128)
    assert settings.run_limits().memory_mb == 256 and settings.max_limits().memory_mb == 128


def test_the_forms_operators_write_are_accepted() -> None:
    Settings(
        cors_origins="https://docs.example.org, http://127.0.0.1:8000/",
        docker_images="python=python:3.12-slim, go=golang:1.22",
        database_url="host=db dbname=execbox user=execbox",
    )
    Settings(cors_origins="*", database_url="postgres://execbox@db/execbox")


def test_a_long_value_is_shown_cut_short() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(port="9" * 10_000)
    assert len(describe_bad_settings(caught.value)) < 200


def test_the_defaults_and_a_slow_hosts_limits_are_valid() -> None:
    Settings()
    Settings(
        run_cpu_time_ms=150_000,
        run_wall_time_ms=300_000,
        max_cpu_time_ms=300_000,
        max_wall_time_ms=600_000,
        compile_cpu_time_ms=150_000,
    )


def test_a_misspelt_setting_is_named_at_start() -> None:
    # A typo would otherwise leave the default silently in force (here: every core).
    done = serve_with(EXECBOX_MAX_CONCURENCY="1", EXECBOX_JUDGE0_LIMITS="stop=here")
    assert done.returncode == 2  # the Judge0 setting stops it, after the warnings
    assert (
        "EXECBOX_MAX_CONCURENCY is not a setting of execbox: ignored "
        "(did you mean EXECBOX_MAX_CONCURRENCY?)" in done.stderr
    )


def test_tooling_variables_are_not_warned_about() -> None:
    environ = {"EXECBOX_PUBLISH_PORT": "9000", "EXECBOX_TEST_SLOWNESS": "3", "PATH": "/bin"}
    assert unknown_settings({**environ, "EXECBOX_PORT": "1"}) == []


def test_a_store_path_that_cannot_be_written_is_named(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = serve_with(EXECBOX_SUBMISSIONS_DB=str(blocker / "store" / "db.sqlite3"))
    assert done.returncode == 2
    assert f"EXECBOX_SUBMISSIONS_DB: cannot write in {blocker}/store (Not a directory)" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
