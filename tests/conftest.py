"""Tests run against a real execbox server (real bwrap, cgroups and seccomp) on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "EXECBOX_HOST": "127.0.0.1",
            "EXECBOX_PORT": str(self.port),
            "EXECBOX_STATE_DIR": "/run/execbox-test",
            **(env or {}),
        }
        self.log = ROOT / ".pytest_cache" / f"server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        self.log.parent.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "execbox", "serve"],
            env=self.env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    srv = Server().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


@pytest.fixture()
def run(client: httpx.Client):
    """POST /api/v1/execute and return the JSON body, asserting a 200."""

    def _run(language: str, code: str, **fields) -> dict:
        response = client.post(
            "/api/v1/execute", json={"language": language, "code": code, **fields}
        )
        assert response.status_code == 200, response.text
        return response.json()

    return _run


def sandbox_processes() -> list[str]:
    """Host processes running as a sandbox uid (61000 and up), as 'pid uid cmd' lines."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,uid=,args="], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if 61000 <= int(line.split()[1]) < 62000]
