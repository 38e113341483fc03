"""Load handling against real servers: bursts, timeouts, fairness, disconnects, shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import Server, sandbox_processes, server_cgroups, wait_for

SLEEPER = "import sys, time; time.sleep(float(sys.argv[1])); print(sys.argv[2])"


def post_run(url: str, seconds: float, tag: str, key: str | None = None, timeout: float = 120):
    headers = {"X-API-Key": key} if key else {}
    return httpx.post(
        url + "/api/v1/execute",
        headers=headers,
        timeout=timeout,
        json={"language": "python", "code": SLEEPER, "args": [str(seconds), tag]},
    )


@pytest.fixture()
def make_server():
    servers: list[Server] = []

    def _make(**env: str) -> Server:
        server = Server(
            env={
                k.upper() if k.startswith("EXECBOX") else "EXECBOX_" + k.upper(): v
                for k, v in env.items()
            }
        ).start()
        servers.append(server)
        return server

    yield _make
    for server in servers:
        server.stop()


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_burst_far_above_capacity_loses_nothing(make_server):
    server = make_server(max_concurrency="2", queue_size="8", caller_queue_share="1")
    count = 40
    with ThreadPoolExecutor(count) as pool:
        responses = list(pool.map(lambda i: post_run(server.url, 0.2, f"req-{i}"), range(count)))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == count, [r.status_code for r in responses]
    assert len(ok) >= 10
    assert refused, "a burst of 40 on 2 slots + 8 queued must refuse some"
    for response in refused:
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["error"] == "queue_full"
    outputs = sorted(r.json()["run"]["stdout"] for r in ok)
    assert len(set(outputs)) == len(ok), "a result was duplicated"
    assert all(r.json()["status"] == "ok" for r in ok)
    assert metric(server.url, "execbox_rejections_total") == len(refused)
    assert metric(server.url, "execbox_queue_depth") == 0


def test_waiting_too_long_is_503_with_retry_after(make_server):
    server = make_server(max_concurrency="1", queue_timeout_s="1")
    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(post_run, server.url, 6, "holder")
        wait_for(lambda: metric(server.url, "execbox_running") == 1, what="the holder running")
        started = time.monotonic()
        waiter = post_run(server.url, 0, "waiter")
        waited = time.monotonic() - started
        assert holder.result().status_code == 200
    assert waiter.status_code == 503
    assert waiter.json()["error"] == "queue_timeout"
    assert "Retry-After" in waiter.headers
    assert 0.9 < waited < 5


def test_a_flooding_caller_does_not_starve_another(make_server):
    server = make_server(
        max_concurrency="1", queue_size="20", caller_queue_share="0.5", api_keys="flood,quiet"
    )
    done_at: dict[str, float] = {}

    def flood(i: int):
        response = post_run(server.url, 0.3, f"flood-{i}", key="flood")
        done_at[f"flood-{i}"] = time.monotonic()
        return response

    with ThreadPoolExecutor(16) as pool:
        floods = [pool.submit(flood, i) for i in range(15)]
        wait_for(
            lambda: metric(server.url, "execbox_rejections_total") >= 1,
            what="the flood filling its share",
        )
        quiet = post_run(server.url, 0, "quiet", key="quiet")
        quiet_at = time.monotonic()
        results = [f.result() for f in floods]
    assert quiet.status_code == 200
    codes = [r.status_code for r in results]
    assert codes.count(429) >= 1, "one caller may hold only half the queue"
    assert all(c in (200, 429) for c in codes)
    later = [t for name, t in done_at.items() if t > quiet_at]
    assert len(later) >= 5, "the quiet caller should be served before most of the flood"


def test_api_keys_are_required_when_configured(make_server):
    server = make_server(api_keys="secret")
    response = httpx.post(server.url + "/api/v1/execute", json={"language": "bash", "code": "echo"})
    assert response.status_code == 401
    assert post_run(server.url, 0, "in", key="secret").status_code == 200


def test_memory_budget_serialises_big_runs(make_server):
    server = make_server(max_concurrency="2", memory_budget_mb="400")

    def big(tag):
        return httpx.post(
            server.url + "/api/v1/execute",
            timeout=60,
            json={
                "language": "python",
                "code": SLEEPER,
                "args": ["1", tag],
                "limits": {"memory_mb": 300},
            },
        )

    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(big, ["a", "b"]))
    elapsed = time.monotonic() - started
    assert [r.status_code for r in results] == [200, 200]
    assert elapsed >= 2.0, "two 300 MB runs must not share a 400 MB budget"


def test_disconnect_while_queued_leaves_the_queue(make_server):
    server = make_server(max_concurrency="1")
    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(post_run, server.url, 4, "holder")
        wait_for(lambda: metric(server.url, "execbox_running") == 1, what="the holder running")
        with pytest.raises(httpx.ReadTimeout):
            post_run(server.url, 0, "leaver", timeout=0.5)
        wait_for(lambda: metric(server.url, "execbox_queue_depth") == 0, what="the leaver gone")
        assert holder.result().status_code == 200
    assert metric(server.url, 'execbox_cancellations_total{stage="queued"}') == 1


def test_disconnect_while_running_kills_the_run(make_server):
    server = make_server()
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        post_run(server.url, 30, "abandoned", timeout=1)
    wait_for(lambda: metric(server.url, "execbox_running") == 0, what="the run's end")
    assert sandbox_processes() == []
    assert metric(server.url, 'execbox_cancellations_total{stage="running"}') == 1
    assert time.monotonic() - started < 10


def test_sigterm_finishes_work_in_flight_then_exits(make_server):
    server = make_server(max_concurrency="2", shutdown_grace_s="20")
    with ThreadPoolExecutor(3) as pool:
        running = [pool.submit(post_run, server.url, 3, f"inflight-{i}") for i in range(2)]
        wait_for(lambda: metric(server.url, "execbox_running") == 2, what="both runs running")
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: httpx.get(server.url + "/readyz").status_code == 503, what="draining")
        late = post_run(server.url, 0, "late")
        assert late.status_code == 503 and late.json()["error"] == "shutting_down"
        assert "Retry-After" in late.headers
        assert httpx.get(server.url + "/readyz").status_code == 503
        for future in running:
            response = future.result()
            assert response.status_code == 200 and response.json()["status"] == "ok"
    server.process.wait(30)
    assert sandbox_processes() == []
    assert not list(Path("/run/execbox-test").glob(f"srv-{server.process.pid}-*"))


def test_restart_after_a_killed_server_cleans_up(make_server):
    first = make_server()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: _ignore(post_run, first.url, 30, "orphan", timeout=5))
        wait_for(lambda: metric(first.url, "execbox_running") == 1, what="the orphan running")
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
    pid = first.process.pid
    leftovers = list(Path("/run/execbox-test").glob(f"srv-{pid}-*"))
    assert leftovers, "a killed server leaves its state behind"
    make_server()  # the next server cleans up at start
    assert not list(Path("/run/execbox-test").glob(f"srv-{pid}-*"))
    assert not server_cgroups(pid)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert f"srv-{pid}-" not in mounts
    assert sandbox_processes() == []


def _ignore(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except httpx.HTTPError:
        return None


def test_metrics_and_readiness(client, server):
    assert client.get("/readyz").json()["status"] == "ready"
    client.post("/api/v1/execute", json={"language": "bash", "code": "echo hi"})
    text = client.get("/metrics").text
    for name in (
        "execbox_queue_depth",
        "execbox_running",
        "execbox_executions_total",
        "execbox_queue_wait_seconds_bucket",
        "execbox_execution_seconds_bucket",
        "execbox_memory_reserved_bytes",
        "execbox_memory_budget_bytes",
    ):
        assert name in text
    assert 'execbox_executions_total{language="bash",status="ok"}' in text


def test_no_source_code_in_logs(server, client):
    client.post("/api/v1/execute", json={"language": "bash", "code": "echo TOPSECRET-CODE"})
    wait_for(lambda: '"event": "execution"' in server.log.read_text(), what="the access log")
    log = server.log.read_text()
    assert "TOPSECRET-CODE" not in log


def test_sigterm_leaves_no_cgroups(make_server):
    server = make_server()
    post_run(server.url, 0, "x")
    server.stop()
    pid = server.process.pid
    assert not server_cgroups(pid)
    assert (
        subprocess.run(
            ["grep", "-c", f"srv-{pid}-", "/proc/self/mountinfo"], capture_output=True, text=True
        ).stdout.strip()
        == "0"
    )
