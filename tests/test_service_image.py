"""execbox itself in a container (docker/service/Dockerfile, as docker-compose.yml runs it):
it serves, runs programs in sibling containers through the host's engine socket, and leaves
none behind when it stops."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest
from conftest import ROOT, docker_unavailable, free_port

pytestmark = pytest.mark.skipif((reason := docker_unavailable()) is not None, reason=reason or "")


@pytest.fixture(scope="module")
def service():
    subprocess.run(["make", "-s", "docker-service"], cwd=ROOT, check=True, stdin=subprocess.DEVNULL)
    port = free_port()
    name = f"execbox-service-test-{port}"
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8081",
         "-v", "/var/run/docker.sock:/var/run/docker.sock", "execbox:latest"],
        check=True, capture_output=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    yield name, url
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_the_containerised_service_runs_programs(service):
    _, url = service
    assert httpx.get(url + "/healthz").json() == {"status": "ok", "backend": "docker"}
    original = httpx.post(url + "/", json={"lang": "python", "code": "print(40 + 2)"}, timeout=60)
    assert original.json() == {"output": "42", "error": False, "status": "ok"}
    compiled = httpx.post(
        url + "/api/v1/execute",
        json={
            "language": "go",
            "code": 'package main\nimport "fmt"\nfunc main(){ fmt.Println("go") }',
        },
        timeout=120,
    )
    assert compiled.json()["run"]["stdout"] == "go\n"


def test_stopping_it_removes_its_containers(service):
    name, _ = service
    subprocess.run(["docker", "stop", "-t", "40", name], check=True, capture_output=True)
    hostname = subprocess.run(
        ["docker", "inspect", "-f", "{{.Config.Hostname}}", name], capture_output=True, text=True
    ).stdout.strip()
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=org.execbox.host={hostname}"],
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert hostname and left == []
