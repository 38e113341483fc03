"""The warm pool: sandboxes started ahead, each used once; and the path without a pool."""

from __future__ import annotations

import subprocess
import time

import httpx
from conftest import Server

from execbox.sandbox.native import helper


def warm_boxes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid=,uid=,args="], capture_output=True, text=True).stdout
    return [
        line.split()[0]
        for line in out.splitlines()
        if 61000 <= int(line.split()[1]) < 62000 and f"{helper.SANDBOX_PATH} stub " in line
    ]


def settled_boxes() -> set[str]:
    """The waiting boxes once the pool has stopped changing (refills run in the background)."""
    previous: set[str] = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        current = set(warm_boxes())
        if current and current == previous:
            return current
        previous = current
        time.sleep(0.3)
    return previous


def test_boxes_wait_ahead_and_are_used_once(run):
    run("bash", "echo warm-up")
    before = settled_boxes()
    assert before, "a warm pool keeps started sandboxes waiting"
    body = run("bash", "ls -A /tmp /box")
    assert body["status"] == "ok" and body["run"]["stdout"] == "/box:\nmain.sh\n\n/tmp:\n"
    # The box that ran the program is gone (its two processes: bwrap outside, the stub as the
    # sandbox's pid 1), however the pool refills.
    deadline = time.monotonic() + 10
    while len(before - set(warm_boxes())) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(before - set(warm_boxes())) >= 2, "the box that was used must not wait again"


def test_without_a_warm_pool():
    server = Server(env={"EXECBOX_WARM_POOL": "0"}).start()
    try:
        for language, code in [("bash", "echo cold"), ("python", "print('cold')")]:
            body = httpx.post(
                server.url + "/api/v1/execute",
                timeout=60,
                json={"language": language, "code": code},
            ).json()
            assert body["run"]["stdout"] == "cold\n"
        body = httpx.post(
            server.url + "/api/v1/execute",
            timeout=60,
            json={"language": "bash", "code": "sleep 5", "limits": {"wall_time_ms": 300}},
        ).json()
        assert body["status"] == "time_limit"
    finally:
        server.stop()
