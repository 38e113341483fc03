"""One output budget per execution (EXECBOX_MAX_RESULT_BYTES), shared by all its stages and
test cases and enforced while they run: the server never holds more than about that much of
a request's output, whatever its cases' ``output_bytes``."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from conftest import Server

from execbox.config import Limits
from execbox.engine import ExecutionResult, StageReport, Status
from execbox.engine.output_budget import OutputBudget
from execbox.submissions.result_bound import bound_result

BUDGET = 1024 * 1024
MIB = 1024 * 1024
# Far below what the old code held (every case's output, twice over with the interleaved
# copy: 12 x 8 MiB x 2 for the submission), far above what the budget lets through.
MAX_GROWTH_MIB = 32

# Writes the number of bytes its stdin names to stdout, and as many to stderr.
LOUD = (
    "import sys\n"
    "n = int(sys.stdin.read())\n"
    "sys.stdout.write('o' * n)\n"
    "sys.stdout.flush()\n"
    "sys.stderr.write('e' * n)\n"
)


def peak_rss_mib(server: Server) -> float:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024


@pytest.fixture
def server(tmp_path):
    srv = Server(
        env={
            "EXECBOX_SUBMISSIONS_DB": str(tmp_path / "s.db"),
            "EXECBOX_MAX_RESULT_BYTES": str(BUDGET),
            "EXECBOX_MAX_CONCURRENCY": "1",
        }
    ).start()
    try:
        # A first execution of each kind, so that what it allocates once is in the baseline.
        warm = {"language": "python", "code": LOUD, "stdin": "10"}
        assert httpx.post(srv.url + "/api/v1/execute", json=warm, timeout=60).status_code == 200
        submitted = httpx.post(srv.url + "/api/v1/submissions", json=warm, timeout=60)
        assert submitted.status_code == 202, submitted.text
        wait_done(srv.url, submitted.json()["id"])
        yield srv
    finally:
        srv.stop()


def wait_done(url: str, id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(f"{url}/api/v1/submissions/{id}", timeout=30).json()
        if body["state"] == "done":
            return body
        assert time.monotonic() < deadline, f"submission {id} not done: {body}"
        time.sleep(0.05)


def test_a_synchronous_run_keeps_at_most_the_budget(server):
    """16 MiB on each stream under a 16 MiB per-stream cap: the run is stopped at the budget,
    not at 32 MiB (64 MiB held with the interleaved copy)."""
    before = peak_rss_mib(server)
    body = {
        "language": "python",
        "code": LOUD,
        "stdin": str(16 * MIB),
        "limits": {"output_bytes": 16 * MIB, "wall_time_ms": 30000, "cpu_time_ms": 30000},
    }
    response = httpx.post(server.url + "/api/v1/execute", json=body, timeout=180)
    growth = peak_rss_mib(server) - before
    assert response.status_code == 200, response.text[:500]
    run = response.json()["run"]
    assert run["status"] == "output_limit" and run["stdout_truncated"]
    assert "EXECBOX_MAX_RESULT_BYTES" in run["message"]
    assert 0 < len(run["stdout"]) + len(run["stderr"]) <= BUDGET
    assert len(response.content) < BUDGET + 64 * 1024
    assert growth < MAX_GROWTH_MIB, f"server peak RSS grew {growth:.0f} MiB"


def test_a_submissions_cases_share_one_budget(server):
    """12 cases: two small ones that fit and pass, then ten writing 4 MiB to each stream. The
    budget is spent in the order the cases run: the small ones keep all their output, the
    first big one is cut where the budget ends, the rest end at their first byte; every big
    one is an output_limit naming the budget. The server never holds the cases' 80 MiB."""
    small, big = 200 * 1024, 4 * MIB
    cases = [{"stdin": str(small), "expected_output": "o" * small}] * 2
    cases += [{"stdin": str(big), "expected_output": "o" * 16}] * 10
    before = peak_rss_mib(server)
    submitted = httpx.post(
        server.url + "/api/v1/submissions",
        json={
            "language": "python",
            "code": LOUD,
            "limits": {"output_bytes": big, "wall_time_ms": 30000, "cpu_time_ms": 30000},
            "test_cases": cases,
        },
        timeout=60,
    )
    assert submitted.status_code == 202, submitted.text
    result = wait_done(server.url, submitted.json()["id"])["result"]
    growth = peak_rss_mib(server) - before
    reports = result["cases"]
    assert len(reports) == 12 and result["status"] == "output_limit"
    for case in reports[:2]:
        assert case["status"] == "ok" and case["passed"] is True
        assert case["stdout"] == "o" * small and case["stderr"] == "e" * small
    for case in reports[2:]:
        assert case["status"] == "output_limit" and case["passed"] is False
        assert "EXECBOX_MAX_RESULT_BYTES" in case["message"]
    assert reports[2]["stdout"] == "o" * (BUDGET - 2 * 2 * small)
    assert all(c["stdout"] == c["stderr"] == "" for c in reports[3:])
    assert sum(len(c["stdout"]) + len(c["stderr"]) for c in reports) <= BUDGET
    assert growth < MAX_GROWTH_MIB, f"server peak RSS grew {growth:.0f} MiB"


LIMITS = Limits(
    wall_time_ms=1000, cpu_time_ms=1000, memory_mb=64, processes=8, output_bytes=64, file_size_mb=1
)


def report(stdout: bytes, stderr: bytes, status: Status = Status.OK) -> StageReport:
    return StageReport(
        status=status,
        exit_code=0,
        signal=None,
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=False,
        stderr_truncated=False,
        wall_time_ms=1,
        cpu_time_ms=1,
        memory_bytes=0,
        limits=LIMITS,
        output=stdout + stderr,
    )


def test_two_streams_past_what_is_left_are_cut_fairly():
    budget = OutputBudget(100)
    assert budget.cap(LIMITS).output_bytes == 64  # the stage's own cap is the smaller
    first = budget.charge(report(b"a" * 10, b"b" * 60), capped=False, is_run=True)
    assert first.status is Status.OK and budget.left == 30
    assert budget.cap(LIMITS).output_bytes == 30
    second = budget.charge(report(b"c" * 5, b"d" * 30), capped=True, is_run=True)
    assert (second.stdout, second.stderr, second.output) == (
        b"c" * 5,
        b"d" * 25,
        b"c" * 5 + b"d" * 25,
    )
    assert second.status is Status.OUTPUT_LIMIT and second.stderr_truncated
    assert not second.stdout_truncated and "EXECBOX_MAX_RESULT_BYTES" in (second.message or "")
    assert budget.left == 0 and budget.cap(LIMITS).output_bytes == 0


def test_a_cut_compile_keeps_its_status():
    budget = OutputBudget(10)
    failed = report(b"", b"x" * 30, Status.COMPILE_ERROR)
    failed.message = "exited with code 1"
    cut = budget.charge(failed, capped=False, is_run=False)
    assert cut.status is Status.COMPILE_ERROR and cut.stderr == b"x" * 10
    assert cut.message.startswith("exited with code 1; output cut")


def test_the_store_bound_leaves_a_bounded_result_alone_and_cuts_one_past_it():
    """The store's last line of defence replays the engine's budget: a result the engine
    bounded is stored as it is; one past the bound is cut in stage order."""
    within = ExecutionResult("python", "3", Status.OK, None, None, [report(b"a" * 40, b"")] * 2)
    within.run = within.cases[0]
    assert bound_result(within, 100).cases == within.cases
    past = ExecutionResult("python", "3", Status.OK, None, None, [report(b"a" * 60, b"b")] * 2)
    past.run = past.cases[0]
    bounded = bound_result(past, 100)
    assert bounded.status is Status.OUTPUT_LIMIT and bounded.run is bounded.cases[0]
    assert [c.status for c in bounded.cases] == [Status.OK, Status.OUTPUT_LIMIT]
    second = bounded.cases[1]
    assert len(second.stdout) + len(second.stderr) == 39 and len(second.output or b"") == 39
