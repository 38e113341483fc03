"""The compose cluster (docker-compose.cluster.yml): PostgreSQL, a full node and a worker with
the native backend, and an API-only node without privileges. The official Judge0 Python SDK
pointed at the API-only node gets its programs run by the others, as a Judge0 user would."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import judge0
import pytest
from conftest import ROOT, docker_unavailable, free_port, slow, wait_compose_healthy

pytestmark = pytest.mark.skipif((reason := docker_unavailable()) is not None, reason=reason or "")
COMPOSE_FILE = ROOT / "docker-compose.cluster.yml"
LIMITS = {"cpu_time_limit": min(15.0, slow(5.0)), "wall_time_limit": min(20.0, slow(10.0))}


@dataclass(frozen=True)
class Cluster:
    api: str  # the API-only node
    full: str  # the node that serves and runs sandboxes
    compose: list[str]
    env: dict[str, str]

    def container(self, service: str) -> dict:
        ids = subprocess.run(
            [*self.compose, "ps", "-q", service], env=self.env, capture_output=True, text=True
        ).stdout.split()
        inspected = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True)
        [container] = json.loads(inspected.stdout)
        return container


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    subprocess.run(["make", "-s", "docker-cluster"], cwd=ROOT, check=True, stdin=subprocess.DEVNULL)
    api_port, full_port = free_port(), free_port()
    compose = ["docker-compose", "-f", str(COMPOSE_FILE), "-p", f"execbox-cluster-test-{api_port}"]
    env = {
        **os.environ,
        "EXECBOX_PUBLISH_PORT": str(api_port),
        "EXECBOX_FULL_PORT": str(full_port),
        "EXECBOX_DB_PASSWORD": f"test-{api_port}",
    }
    try:
        # `up` returns once the API node is created: after PostgreSQL and the full node are
        # healthy (its depends_on).
        up = subprocess.run(
            [*compose, "up", "-d", "--no-build"],
            env=env,
            capture_output=True,
            text=True,
            timeout=slow(300),
        )
        if up.returncode != 0:
            logs = subprocess.run(
                [*compose, "logs", "--tail", "40"], env=env, capture_output=True, text=True
            )
            pytest.fail(f"docker-compose up failed:\n{up.stderr[-3000:]}\n{logs.stdout[-6000:]}")
        nodes = Cluster(
            f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{full_port}", compose, env
        )
        wait_compose_healthy(nodes.full, compose, env, 180)
        wait_compose_healthy(nodes.api, compose, env, 180)
        yield nodes
    finally:
        subprocess.run(
            [*compose, "down", "-v", "-t", "10", "--remove-orphans"], env=env, capture_output=True
        )


def test_judge0_sdk_on_the_api_node_runs_python_and_bash(cluster: Cluster) -> None:
    client = judge0.Client(cluster.api)
    python = judge0.run(
        client=client, source_code="print('hello from python')", language=judge0.PYTHON, **LIMITS
    )
    bash = judge0.run(
        client=client, source_code="echo hello from bash", language=judge0.BASH, **LIMITS
    )
    assert (python.status, python.stdout) == (judge0.Status.ACCEPTED, "hello from python\n")
    assert (bash.status, bash.stdout) == (judge0.Status.ACCEPTED, "hello from bash\n")


def test_a_v1_submission_to_the_api_node_is_read_back_from_another(cluster: Cluster) -> None:
    created = httpx.post(
        cluster.api + "/api/v1/submissions",
        json={"language": "python", "code": "print(int(input()) * 2)", "stdin": "21"},
        timeout=30,
    )
    assert created.status_code == 202, created.text
    submission = created.json()["id"]
    deadline = time.monotonic() + slow(60)
    while (
        answer := httpx.get(f"{cluster.full}/api/v1/submissions/{submission}", timeout=10).json()
    )["state"] != "done":
        assert time.monotonic() < deadline, answer
        time.sleep(0.5)
    assert answer["result"]["status"] == "ok"
    assert answer["result"]["run"]["stdout"] == "42\n"


def test_a_synchronous_run_on_the_api_node_is_run_by_a_worker(cluster: Cluster) -> None:
    answer = httpx.post(cluster.api + "/", json={"lang": "bash", "code": "echo hello"}, timeout=60)
    assert answer.json() == {"output": "hello", "error": False, "status": "ok"}
    api = httpx.get(cluster.api + "/healthz", timeout=10).json()
    assert api["backend"] != "native"  # it ran nothing itself


def test_the_api_node_runs_without_privileges(cluster: Cluster) -> None:
    api = cluster.container("execbox-api")["HostConfig"]
    assert api["CapDrop"] == ["ALL"] and not api["CapAdd"]
    assert api["Privileged"] is False and api["ReadonlyRootfs"] is True
    assert cluster.container("execbox-api")["Config"]["User"] == "65534:65534"
    assert "SYS_ADMIN" in cluster.container("execbox-worker")["HostConfig"]["CapAdd"]


def test_both_sandbox_nodes_take_work_from_the_shared_queue(cluster: Cluster) -> None:
    # Four slots (two per node) and eight one-second runs queued at once: both nodes run some.
    ids = [
        httpx.post(
            cluster.api + "/api/v1/submissions",
            json={"language": "bash", "code": f"sleep 1; echo spread-{i}"},
            timeout=30,
        ).json()["id"]
        for i in range(8)
    ]
    deadline = time.monotonic() + slow(90)
    for i, submission in enumerate(ids):
        while (
            answer := httpx.get(f"{cluster.api}/api/v1/submissions/{submission}", timeout=10).json()
        )["state"] != "done":
            assert time.monotonic() < deadline, answer
            time.sleep(0.5)
        assert answer["result"]["run"]["stdout"] == f"spread-{i}\n"
    for service in ("execbox-full", "execbox-worker"):
        logs = subprocess.run(
            [*cluster.compose, "logs", service], env=cluster.env, capture_output=True, text=True
        ).stdout
        assert any(
            "Job execbox.run_submission" in line and submission in line and "Success" in line
            for line in logs.splitlines()
            for submission in ids
        ), service
