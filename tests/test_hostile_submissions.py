"""Stored submissions under attack: results too big to store, submissions that make a worker
fail or take the server down, and one caller's backlog against another's submission."""

from __future__ import annotations

import signal
import sqlite3
import time

import httpx
from conftest import Server, slow

from execbox.submissions.store import SCHEMA


def wait_state(
    url: str, id: str, states: set[str], timeout: float = 60, headers: dict | None = None
) -> dict:
    deadline = time.monotonic() + slow(timeout)
    while True:
        body = httpx.get(f"{url}/api/v1/submissions/{id}", timeout=30, headers=headers).json()
        if body["state"] in states:
            return body
        assert time.monotonic() < deadline, f"submission {id} never got to {states}: {body}"
        time.sleep(0.05)


def submit(url: str, body: dict, **kwargs) -> str:
    response = httpx.post(url + "/api/v1/submissions", json=body, timeout=30, **kwargs)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def assert_workers_alive(url: str) -> None:
    id = submit(url, {"language": "bash", "code": "echo still here"})
    assert wait_state(url, id, {"done"})["result"]["run"]["stdout"] == "still here\n"


# Each case writes this much to stdout and to stderr: 12 cases make 6 MiB, far past the 1 MiB
# the server is given; two cases fit in it exactly.
CASE_BYTES = 256 * 1024
LOUD = f"import sys\nsys.stdout.write('o' * {CASE_BYTES})\nsys.stderr.write('e' * {CASE_BYTES})"
RESULT_BOUND = 1024 * 1024


def test_a_result_past_the_bound_is_cut_and_flagged(tmp_path):
    """The cases spend one output budget in the order they run: the first two keep all their
    output and pass, the rest are output_limit (they cannot pass) with a message naming it."""
    srv = Server(
        env={
            "EXECBOX_SUBMISSIONS_DB": str(tmp_path / "s.db"),
            "EXECBOX_MAX_RESULT_BYTES": str(RESULT_BOUND),
            "EXECBOX_MAX_CONCURRENCY": "1",
        }
    ).start()
    try:
        id = submit(
            srv.url,
            {
                "language": "python",
                "code": LOUD,
                "limits": {"output_bytes": 4 * CASE_BYTES},
                "test_cases": [{"stdin": "", "expected_output": "o" * CASE_BYTES}] * 12,
            },
        )
        result = wait_state(srv.url, id, {"done"}, timeout=120)["result"]
        cases = result["cases"]
        assert len(cases) == 12 and result["status"] == "output_limit"
        kept = sum(len(c["stdout"]) + len(c["stderr"]) for c in cases)
        assert kept == RESULT_BOUND
        for case in cases[:2]:
            assert case["status"] == "ok" and case["passed"] is True
            assert case["stderr"] == "e" * CASE_BYTES
        for case in cases[2:]:
            assert case["status"] == "output_limit" and case["passed"] is False
            assert case["stdout_truncated"] and case["stdout"] == case["stderr"] == ""
            assert "EXECBOX_MAX_RESULT_BYTES" in case["message"]
        assert_workers_alive(srv.url)
    finally:
        srv.stop()


def test_a_result_the_store_refuses_ends_as_internal_error(tmp_path):
    """SQLite refuses rows past its length limit ('string or blob too big'); a trigger in the
    store refuses results past 200 kB the same way, so a test can reach it. With one worker:
    the submission must end as internal_error, and the worker must go on."""
    db_path = tmp_path / "s.db"
    db = sqlite3.connect(db_path)
    db.executescript(SCHEMA)
    db.execute(
        "CREATE TRIGGER too_big BEFORE UPDATE OF result ON submissions "
        "WHEN length(NEW.result) > 200000 BEGIN SELECT RAISE(ABORT, 'string or blob too big'); END"
    )
    db.close()
    srv = Server(
        env={"EXECBOX_SUBMISSIONS_DB": str(db_path), "EXECBOX_MAX_CONCURRENCY": "1"}
    ).start()
    try:
        id = submit(
            srv.url,
            {
                "language": "python",
                "code": "print('x' * 300000)",
                "limits": {"output_bytes": 1024 * 1024},
            },
        )
        done = wait_state(srv.url, id, {"done"})
        assert "internal error" in done["error"] and "string or blob too big" in done["error"]
        assert "could not be stored" in done["error"]
        assert_workers_alive(srv.url)
    finally:
        srv.stop()


def test_a_submission_that_takes_the_server_down_is_given_up(tmp_path):
    """A submission running each time the server dies (SIGKILL: the OOM killer, a crash) is run
    again a bounded number of times, then failed with a message: no restart loop."""
    env = {"EXECBOX_SUBMISSIONS_DB": str(tmp_path / "s.db"), "EXECBOX_MAX_CONCURRENCY": "1"}
    poison = {"language": "bash", "code": "sleep 50", "limits": {"wall_time_ms": 60000}}
    id = None
    for _ in range(3):
        srv = Server(env=env).start()
        try:
            id = id or submit(srv.url, poison)
            wait_state(srv.url, id, {"running"})
        finally:
            srv.stop(signal.SIGKILL)
    srv = Server(env=env).start()
    try:
        given_up = wait_state(srv.url, id, {"done"}, timeout=20)
        assert "given up after 3 attempts" in given_up["error"]
        assert_workers_alive(srv.url)
    finally:
        srv.stop()


def test_a_graceful_restart_does_not_count_as_an_attempt(tmp_path):
    env = {
        "EXECBOX_SUBMISSIONS_DB": str(tmp_path / "s.db"),
        "EXECBOX_MAX_CONCURRENCY": "1",
        "EXECBOX_SHUTDOWN_GRACE_S": "0.5",
    }
    slow_one = {
        "language": "bash",
        "code": f"sleep {slow(3):.0f}; echo slept",
        "limits": {"wall_time_ms": int(slow(20) * 1000)},
    }
    id = None
    for _ in range(3):
        srv = Server(env=env).start()
        try:
            id = id or submit(srv.url, slow_one)
            wait_state(srv.url, id, {"running"})
        finally:
            srv.stop(signal.SIGTERM)
    srv = Server(env=env).start()
    try:
        assert wait_state(srv.url, id, {"done"})["result"]["run"]["stdout"] == "slept\n"
    finally:
        srv.stop()


def test_stored_submissions_are_served_round_robin_with_a_share_per_caller(tmp_path):
    """Caller A queues its whole share of sleeps (one slot); caller B's one submission runs
    next, not after all of A's; A past its share gets a 429 while B still gets in."""
    srv = Server(
        env={
            "EXECBOX_SUBMISSIONS_DB": str(tmp_path / "s.db"),
            "EXECBOX_MAX_CONCURRENCY": "1",
            "EXECBOX_API_KEYS": "key-a,key-b",
            "EXECBOX_MAX_PENDING_SUBMISSIONS": "20",
            "EXECBOX_CALLER_QUEUE_SHARE": "0.5",
            "EXECBOX_SHUTDOWN_GRACE_S": "1",
        }
    ).start()
    a, b = {"X-API-Key": "key-a"}, {"X-API-Key": "key-b"}
    # Long enough that none of A's ends before its 11th is posted, even on a slow host.
    nap = slow(2)
    sleep = {"language": "bash", "code": f"sleep {nap}"}
    try:
        batch = httpx.post(
            srv.url + "/api/v1/submissions/batch", json={"submissions": [sleep] * 10}, headers=a
        )
        assert batch.status_code == 202, batch.text
        wait_state(srv.url, batch.json()["ids"][0], {"running"}, timeout=30, headers=a)
        refused = httpx.post(srv.url + "/api/v1/submissions", json=sleep, headers=a)
        assert refused.status_code == 429, refused.text
        assert "at most 10" in refused.json()["message"]
        started = time.monotonic()
        id = submit(srv.url, {"language": "bash", "code": "echo b"}, headers=b)
        done = wait_state(srv.url, id, {"done"}, timeout=60, headers=b)
        waited = time.monotonic() - started
        assert done["result"]["run"]["stdout"] == "b\n"
        # First in, first out, B would wait for all ten of A's sleeps; round robin, for one.
        assert waited < 2 * nap + slow(2), f"B waited {waited:.1f} s behind A's backlog"
    finally:
        srv.stop()
