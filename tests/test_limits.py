"""Every limit trips with its own status, the run is killed, and the service stays healthy."""

from __future__ import annotations

import time

import pytest
from conftest import sandbox_processes, slow

# Every test here runs against both sandbox backends.
BACKENDS = ("native", "docker")


@pytest.fixture(autouse=True)
def healthy_after(client):
    yield
    assert client.get("/healthz").status_code == 200


def test_cpu_loop_is_a_time_limit(run):
    started = time.monotonic()
    body = run("python", "while True: pass", limits={"cpu_time_ms": 500, "wall_time_ms": 5000})
    assert body["status"] == "time_limit"
    assert body["run"]["cpu_time_ms"] >= 500
    assert body["run"]["wall_time_ms"] < 3000
    assert "time limit" in body["run"]["message"]
    assert time.monotonic() - started < 10


def test_sleep_is_a_wall_time_limit(run):
    body = run("bash", "sleep 30", limits={"wall_time_ms": 700})
    assert body["status"] == "time_limit"
    assert 700 <= body["run"]["wall_time_ms"] < slow(3) * 1000
    assert body["run"]["cpu_time_ms"] < slow(0.5) * 1000


def test_cpu_time_counts_every_process(run):
    code = "for i in 1 2 3 4; do (while :; do :; done) & done; wait"
    body = run("bash", code, limits={"cpu_time_ms": 800, "wall_time_ms": 10000})
    assert body["status"] == "time_limit"
    assert body["run"]["wall_time_ms"] < 5000


def test_compile_time_limit(run):
    # Template recursion that keeps the compiler busy far longer than the limit allows.
    code = (
        "template<int N> struct F { static const long v = F<N-1>::v + F<N-2>::v; };\n"
        "template<> struct F<1> { static const long v = 1; };\n"
        "template<> struct F<0> { static const long v = 0; };\n"
        "int main() { return F<100000>::v > 0; }\n"
    )
    body = run("c++", code, compile_limits={"wall_time_ms": 1500, "cpu_time_ms": 1000})
    assert body["status"] in ("time_limit", "compile_error", "memory_limit")
    assert body["run"] is None
    assert body["compile"]["status"] == body["status"]


@pytest.mark.parametrize(
    "language,code",
    [
        ("python", "x = []\nwhile True: x.append(' ' * 10_000_000)"),
        (
            "c",
            "#include <stdlib.h>\n#include <string.h>\n"
            "int main(void) { for (;;) { char *p = malloc(1 << 24); memset(p, 1, 1 << 24); } }",
        ),
        ("javascript", "const a = []; for (;;) a.push(new Array(1e6).fill(7));"),
    ],
)
def test_memory_bomb_is_a_memory_limit(run, language, code):
    body = run(language, code, limits={"memory_mb": 128, "wall_time_ms": 10000})
    assert body["status"] == "memory_limit", body
    assert "memory limit" in body["run"]["message"]
    assert body["run"]["memory_bytes"] <= 130 * 1024 * 1024


def test_memory_within_limit_is_fine(run):
    body = run(
        "python", "x = bytearray(100 * 1024 * 1024); print(len(x))", limits={"memory_mb": 256}
    )
    assert body["status"] == "ok"
    assert body["run"]["memory_bytes"] >= 100 * 1024 * 1024


def test_each_run_gets_its_own_limits_whatever_ran_before(run):
    # Boxes wait with the limits of the last run of their toolchain; a run that asks for
    # less (or more) must still get exactly its own, in either order.
    code = "x = bytearray(100 * 1024 * 1024); print(len(x))"
    for memory, status in [(256, "ok"), (64, "memory_limit"), (64, "memory_limit"), (256, "ok")]:
        body = run("python", code, limits={"memory_mb": memory, "wall_time_ms": 10000})
        assert body["status"] == status, (memory, body)
    # Children never waited for stay processes (zombies) until the run ends.
    forks = "import os\nfor i in range(20):\n    os.fork() or os._exit(0)\nprint('forked')"
    for processes, status in [(64, "ok"), (8, "runtime_error"), (64, "ok")]:
        body = run("python", forks, limits={"processes": processes})
        assert body["status"] == status, (processes, body)


def test_yes_is_an_output_limit_with_output_capped(run):
    started = time.monotonic()
    body = run("bash", "yes", limits={"output_bytes": 10_000})
    assert body["status"] == "output_limit"
    assert body["run"]["stdout_truncated"] is True
    assert len(body["run"]["stdout"]) == 10_000
    assert body["run"]["stdout"].startswith("y\ny\n")
    assert time.monotonic() - started < 5


def test_stderr_is_capped_too(run):
    body = run(
        "python",
        "import sys\nwhile True: sys.stderr.write('e' * 1000)",
        limits={"output_bytes": 5000},
    )
    assert body["status"] == "output_limit"
    assert body["run"]["stderr_truncated"] is True
    assert len(body["run"]["stderr"]) == 5000


def test_output_just_under_the_cap_is_ok(run):
    body = run("python", "print('a' * 9999)", limits={"output_bytes": 10_000})
    assert body["status"] == "ok"
    assert body["run"]["stdout_truncated"] is False


def test_fork_bomb_is_contained(run):
    body = run("bash", ":(){ :|:& };:", limits={"processes": 32, "wall_time_ms": 2000})
    assert body["status"] in ("time_limit", "runtime_error", "ok")
    assert sandbox_processes() == []
    # And the next run works normally.
    assert run("bash", "echo after")["run"]["stdout"] == "after\n"


def test_process_limit_refuses_more_processes(run):
    # The program itself is one of the 10: nine children start, the tenth fork fails.
    code = (
        "import os, time\nn = 0\nfor _ in range(50):\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(5)\n"
        "        os._exit(0)\n    n += 1\nprint(n, flush=True)\nos._exit(0)"
    )
    body = run("python", code, limits={"processes": 10, "wall_time_ms": 3000})
    assert body["run"]["stdout"] == "9\n"


def test_background_and_daemonised_processes_die_with_the_run(run):
    code = (
        "sleep 1000 &\n"
        "setsid sleep 1001 < /dev/null > /dev/null 2>&1 &\n"
        "( ( sleep 1002 & ) & )\n"
        "nohup sleep 1003 > /dev/null 2>&1 &\n"
        "echo started"
    )
    body = run("bash", code)
    assert body["status"] == "ok"
    assert body["run"]["stdout"] == "started\n"
    assert sandbox_processes() == []


def test_the_result_comes_when_the_program_ends_not_its_background_jobs(run):
    # A background job holding stdout open must not hold the result back; what the program
    # wrote before it ended is all there, and the job dies with the run.
    body = run("bash", "(sleep 30; echo late) &\necho early", limits={"wall_time_ms": 20000})
    assert body["status"] == "ok" and body["run"]["stdout"] == "early\n"
    assert body["run"]["wall_time_ms"] < 5000
    assert sandbox_processes() == []


def test_everything_written_just_before_the_end_is_kept(run):
    # The output still in the pipes when the program ends is drained before the box is
    # killed: every byte, every time.
    code = "import os\nos.write(1, b'x' * 300_000)\nos.write(2, b'y' * 70_000)\nos._exit(0)"
    for _ in range(8):
        body = run("python", code, limits={"output_bytes": 1_000_000})
        assert body["status"] == "ok"
        assert body["run"]["stdout"] == "x" * 300_000
        assert body["run"]["stderr"] == "y" * 70_000


def test_file_size_limit(run):
    code = (
        "with open('/tmp/big', 'wb') as f:\n    f.write(b'x' * (3 * 1024 * 1024))\nprint('wrote')"
    )
    body = run("python", code, limits={"file_size_mb": 1})
    assert body["status"] != "ok"
    assert "wrote" not in body["run"]["stdout"]


def test_limit_above_maximum_is_refused(client):
    response = client.post(
        "/api/v1/execute",
        json={"language": "python", "code": "print(1)", "limits": {"memory_mb": 10**6}},
    )
    assert response.status_code == 400
    message = response.json()["message"]
    assert "memory_mb" in message and "maximum" in message


@pytest.mark.parametrize(
    "field",
    ["wall_time_ms", "cpu_time_ms", "memory_mb", "processes", "output_bytes", "file_size_mb"],
)
def test_negative_limits_are_refused(client, field):
    response = client.post(
        "/api/v1/execute", json={"language": "python", "code": "print(1)", "limits": {field: -1}}
    )
    assert response.status_code == 400
    assert field in response.json()["message"]


def test_signal_is_reported_by_name(run):
    body = run("c", "int main(void) { int *p = 0; return *p; }")
    assert body["status"] == "runtime_error"
    assert body["run"]["signal"] == "SIGSEGV"
    assert body["run"]["exit_code"] is None
