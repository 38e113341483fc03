"""Judge0's time limits as an operator sets them (EXECBOX_JUDGE0_LIMITS, judge0.conf's
CPU_TIME_LIMIT, MAX_CPU_TIME_LIMIT...): shown by /config_info, applied to submissions, and
a wrong value refused at start with the reason."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from conftest import Server, judge0_slow_host_limits, slow

from execbox.api.judge0_limits import DEFAULTS, MAXIMA, judge0_limits
from execbox.config import Settings


def test_without_changes_the_limits_are_judge0s_own():
    allowed = judge0_limits(Settings(judge0_limits=""))
    assert allowed.defaults == DEFAULTS and allowed.maxima == MAXIMA
    assert allowed.defaults["cpu_time_limit"] == 5.0 and allowed.maxima["cpu_time_limit"] == 15.0


def test_changes_apply_to_their_limit_only():
    allowed = judge0_limits(Settings(judge0_limits=" cpu_time_limit=2 , max_wall_time_limit=60"))
    assert allowed.defaults["cpu_time_limit"] == 2.0
    assert allowed.maxima["wall_time_limit"] == 60.0
    assert allowed.maxima["cpu_time_limit"] == 15.0
    assert allowed.defaults["wall_time_limit"] == 10.0


@pytest.mark.parametrize(
    "text,message",
    [
        ("cpu=2", "is not one of cpu_time_limit, max_cpu_time_limit"),
        ("memory_limit=1000", "is not one of"),
        ("cpu_time_limit", "given as name=seconds"),
        ("cpu_time_limit=fast", "'fast' is not a number of seconds"),
        ("wall_time_limit=0", "is not between 0 and 3600 seconds"),
        ("cpu_time_limit=20", "cpu_time_limit (20) is above max_cpu_time_limit (15)"),
        ("max_wall_time_limit=5", "wall_time_limit (10) is above max_wall_time_limit (5)"),
    ],
)
def test_a_wrong_change_is_named(text, message):
    with pytest.raises(ValueError) as caught:
        judge0_limits(Settings(judge0_limits=text))
    assert message in str(caught.value)


def test_a_wrong_change_stops_the_server_with_the_reason():
    done = subprocess.run(
        [sys.executable, "-m", "execbox", "serve"],
        env={**os.environ, "EXECBOX_PORT": "1", "EXECBOX_JUDGE0_LIMITS": "cpu_time_limit=99"},
        capture_output=True,
        text=True,
        timeout=slow(60),
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    assert "execbox cannot start: EXECBOX_JUDGE0_LIMITS: cpu_time_limit (99) is above" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def tuned():
    # On a slow host, on top of the stretched limits every test server has.
    limits = f"{judge0_slow_host_limits()},cpu_time_limit=1,max_cpu_time_limit=40"
    # The server's own maximum above the operator's Judge0 one, which it would otherwise cut.
    server_max = str(int(slow(45) * 1000))
    server = Server(
        env={"EXECBOX_JUDGE0_LIMITS": limits, "EXECBOX_MAX_CPU_TIME_MS": server_max}
    ).start()
    yield server
    server.stop()


def test_config_info_shows_the_operators_limits(tuned):
    config = httpx.get(tuned.url + "/config_info").json()
    assert config["cpu_time_limit"] == 1.0 and config["max_cpu_time_limit"] == 40.0
    assert config["max_memory_limit"] == MAXIMA["memory_limit"]  # not a time: Judge0's own


def _submit(server: Server, **fields) -> httpx.Response:
    return httpx.post(
        f"{server.url}/submissions?wait=true&fields=stdout,status,cpu_time_limit,time",
        json={"language_id": 71, **fields},
        timeout=slow(120),
    )


def test_submissions_get_the_operators_default_and_maximum(tuned):
    spinning = _submit(tuned, source_code="while True: pass").json()
    assert spinning["status"]["description"] == "Time Limit Exceeded", spinning
    assert spinning["cpu_time_limit"] == "1.0"  # a decimal, as Judge0 shows it
    # Above Judge0's own maximum (15 s), within the operator's (and the server's).
    allowed = _submit(tuned, source_code="print('hi')", cpu_time_limit=20).json()
    assert allowed["status"]["description"] == "Accepted", allowed
    assert allowed["cpu_time_limit"] == "20.0" and allowed["stdout"] == "hi\n"
    refused = _submit(tuned, source_code="print('hi')", cpu_time_limit=41)
    assert refused.status_code == 422
    assert refused.json() == {"cpu_time_limit": ["must be between 0 and 40"]}


def test_judge0s_limits_shrink_to_a_servers_lower_maxima():
    allowed = judge0_limits(Settings(max_cpu_time_ms=4000, max_wall_time_ms=8000))
    assert allowed.defaults["cpu_time_limit"] == 4.0 and allowed.maxima["cpu_time_limit"] == 4.0
    assert allowed.defaults["cpu_extra_time"] == 0.0  # the two make one CPU limit
    assert allowed.defaults["wall_time_limit"] == 8.0 and allowed.maxima["wall_time_limit"] == 8.0
    small = judge0_limits(Settings(max_output_bytes=256 * 1024, max_memory_mb=64))
    assert small.defaults["max_file_size"] == 256 and small.maxima["memory_limit"] == 64 * 1024


def test_a_submission_asking_for_nothing_runs_on_a_server_with_low_maxima():
    # Judge0's default CPU limit (5 s + 1 s extra) is above this server's maximum: the
    # submission still runs, within the server's maximum, and says so.
    # 4 s of CPU is below Judge0's default whatever the host (a hello world needs far less).
    cpu_ms, wall_ms = 4000, int(slow(8) * 1000)
    server = Server(
        env={
            "EXECBOX_JUDGE0_LIMITS": "",
            "EXECBOX_MAX_CPU_TIME_MS": str(cpu_ms),
            "EXECBOX_MAX_WALL_TIME_MS": str(wall_ms),
        }
    ).start()
    try:
        done = httpx.post(
            f"{server.url}/submissions?wait=true&fields=stdout,status,cpu_time_limit,wall_time_limit",
            json={"language_id": 71, "source_code": "print('hi')"},
            timeout=slow(120),
        )
        assert done.status_code == 201, done.text
        body = done.json()
        assert body["status"]["description"] == "Accepted" and body["stdout"] == "hi\n", body
        assert float(body["cpu_time_limit"]) == cpu_ms / 1000
        assert float(body["wall_time_limit"]) == min(10, wall_ms / 1000)
        config = httpx.get(server.url + "/config_info").json()
        assert config["max_cpu_time_limit"] == cpu_ms / 1000
        # Asking past the server's maximum is refused Judge0's way, naming the real one.
        past = httpx.post(
            f"{server.url}/submissions?wait=true",
            json={
                "language_id": 71,
                "source_code": "print(1)",
                "cpu_time_limit": cpu_ms / 1000 + 1,
            },
            timeout=slow(120),
        )
        assert past.status_code == 422, past.text
        assert past.json() == {"cpu_time_limit": [f"must be between 0 and {cpu_ms / 1000:g}"]}
    finally:
        server.stop()
