"""execbox with the native backend inside a container, as docker-compose.native.yml runs it
(no Docker socket): the isolation and limits tests pass against it as they do on the host."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from conftest import (
    ROOT,
    RUNTIME_IMAGE,
    docker_unavailable,
    free_port,
    slow_host_limits,
    wait_compose_healthy,
)

# On a small image of its own (NATIVE_BASE, see the Makefile) the test needs only the engine.
_needs = None if os.environ.get("NATIVE_BASE") else RUNTIME_IMAGE
pytestmark = pytest.mark.skipif(
    (reason := docker_unavailable(_needs)) is not None, reason=reason or ""
)
COMPOSE = ["docker-compose", "-f", str(ROOT / "docker-compose.native.yml")]


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    subprocess.run(["make", "-s", "docker-native"], cwd=ROOT, check=True, stdin=subprocess.DEVNULL)
    port = free_port()
    compose = [*COMPOSE, "-p", f"execbox-native-test-{port}"]
    # On a slow host the service in the container gets the stretched time limits the tests'
    # own servers get (the compose file passes them through).
    env = {**os.environ, **slow_host_limits(), "EXECBOX_PUBLISH_PORT": str(port)}
    subprocess.run([*compose, "up", "-d"], env=env, check=True, capture_output=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_compose_healthy(url, compose, env, 120)
        yield url
    finally:
        subprocess.run([*compose, "down", "-v", "-t", "10"], env=env, capture_output=True)


def test_isolation_and_limits_hold_inside_the_container(service: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_isolation.py", "tests/test_limits.py"],
        cwd=ROOT,
        env={**os.environ, "EXECBOX_TEST_URL": service},
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout.splitlines()[-1]


def test_the_container_reports_its_sandbox_as_on_a_host(service: str) -> None:
    answer = httpx.post(
        service + "/api/v1/execute",
        json={
            "language": "python",
            "code": "x = bytearray(400 << 20)",
            "limits": {"memory_mb": 64},
        },
        timeout=60,
    ).json()
    assert answer["status"] == "memory_limit"
    ok = httpx.post(service + "/", json={"lang": "go", "code": GO_HELLO}, timeout=120).json()
    assert ok == {"output": "hello", "error": False, "status": "ok"}


GO_HELLO = 'package main\nimport "fmt"\nfunc main() { fmt.Println("hello") }'
