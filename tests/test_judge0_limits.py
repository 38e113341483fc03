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
    server = Server(env={"EXECBOX_JUDGE0_LIMITS": limits}).start()
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
    # Above Judge0's own maximum (15 s), within the operator's (and the server's 30 s).
    allowed = _submit(tuned, source_code="print('hi')", cpu_time_limit=20).json()
    assert allowed["status"]["description"] == "Accepted", allowed
    assert allowed["cpu_time_limit"] == "20.0" and allowed["stdout"] == "hi\n"
    refused = _submit(tuned, source_code="print('hi')", cpu_time_limit=41)
    assert refused.status_code == 422
    assert refused.json() == {"cpu_time_limit": ["must be between 0 and 40"]}


def test_the_servers_own_maximum_still_holds(tuned):
    if judge0_slow_host_limits():
        pytest.skip("on a slow host the server's maximum is stretched past the operator's")
    # Within the operator's Judge0 maximum (40 s) but past the server's MAX_CPU_TIME_MS (30 s).
    past = _submit(tuned, source_code="print('hi')", cpu_time_limit=35)
    assert past.status_code == 400, past.text
    assert "30000" in past.json()["error"], past.text
