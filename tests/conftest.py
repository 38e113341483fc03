"""Tests run against a real execbox server (real bwrap, cgroups and seccomp; or the real
Docker engine) on 127.0.0.1.

A test module that sets ``BACKENDS = ("native", "docker")`` runs each of its server tests
against both backends; the others run against the native backend only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from execbox.api.judge0_limits import DEFAULTS, MAXIMA, TUNABLE

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 120


def _host_slowness() -> float:
    """How many times slower than a usual machine this host starts a program: 1 on a usual
    machine, about 10 in a software-emulated VM. Time limits and waits in tests scale with it,
    so that what a test expects does not depend on the host's speed."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-S", "-c", "pass"], check=True)
        times.append(time.perf_counter() - started)
    return min(20.0, max(1.0, min(times) / 0.015))


# EXECBOX_TEST_SLOWNESS sets it by hand (e.g. to try the stretched limits on a fast host).
SLOWNESS = float(os.environ.get("EXECBOX_TEST_SLOWNESS") or _host_slowness())


def slow(seconds: float) -> float:
    """A duration a test allows for something, stretched on a slow host."""
    return seconds * SLOWNESS


def slow_host_limits() -> dict[str, str]:
    """On a slow host, the servers' default time limits grow with it (a test that wants a
    time limit to be hit asks for a small one itself)."""
    if SLOWNESS < 1.5:
        return {}
    stretch = {
        "RUN_WALL_TIME_MS": 5_000,
        "RUN_CPU_TIME_MS": 3_000,
        "COMPILE_WALL_TIME_MS": 20_000,
        "COMPILE_CPU_TIME_MS": 15_000,
        "MAX_WALL_TIME_MS": 60_000,
        "MAX_CPU_TIME_MS": 30_000,
    }
    return {
        **{f"EXECBOX_{name}": str(int(ms * SLOWNESS)) for name, ms in stretch.items()},
        "EXECBOX_JUDGE0_LIMITS": judge0_slow_host_limits(),
    }


def judge0_slow_host_limits() -> str:
    """Judge0's time limits (its defaults and maxima: JVM languages need more than 15 s of CPU
    under emulation), stretched as the server's own."""
    if SLOWNESS < 1.5:
        return ""
    return ",".join(
        f"{prefix}{name}={seconds * SLOWNESS:g}"
        for name in TUNABLE
        for prefix, seconds in (("", DEFAULTS[name]), ("max_", MAXIMA[name]))
    )


def wait_compose_healthy(url: str, compose: list[str], env: dict[str, str], timeout: float) -> None:
    """Poll a compose project's service until its /healthz answers 200; past the (stretched)
    timeout, fail with the project's last log lines."""
    deadline = time.monotonic() + slow(timeout)
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            logs = subprocess.run(
                [*compose, "logs", "--tail", "40"], env=env, capture_output=True, text=True
            )
            pytest.fail(f"{url} did not become healthy:\n{logs.stdout[-6000:]}")
        time.sleep(0.5)


def wait_for(condition, timeout: float = 30, what: str = "the condition") -> None:
    """Poll until condition() is true; a slow host gets the whole timeout, a fast one none."""
    deadline = time.monotonic() + slow(timeout)
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def server_cgroups(pid: int) -> list[Path]:
    """The cgroup directories a server with this pid made (cgroup v1: one per controller
    hierarchy; v2: one, in the top-level execbox cgroup)."""
    root = Path("/sys/fs/cgroup")
    return [*root.glob(f"*/execbox/srv-{pid}-*"), *root.glob(f"execbox/srv-{pid}-*")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(
        self,
        env: dict[str, str] | None = None,
        backend: str = "native",
        command: tuple[str, ...] = ("serve",),
    ) -> None:
        self.command = command  # execbox's arguments, e.g. ("serve", "--no-worker")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend = backend
        self.env = {
            **os.environ,
            "EXECBOX_HOST": "127.0.0.1",
            "EXECBOX_PORT": str(self.port),
            **slow_host_limits(),
            "EXECBOX_STATE_DIR": "/run/execbox-test",
            "EXECBOX_BACKEND": backend,
            "EXECBOX_SUBMISSIONS_DB": str(ROOT / ".pytest_cache" / f"submissions-{self.port}.db"),
            **(env or {}),
        }
        self.log = ROOT / ".pytest_cache" / f"server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def spawn(self) -> subprocess.Popen:
        """The process, started (not yet ready)."""
        self.log.parent.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "execbox", *self.command],
            env=self.env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self.process

    def start(self) -> Server:
        self.spawn()
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        backends = getattr(metafunc.module, "BACKENDS", ("native",))
        metafunc.parametrize("backend", backends, indirect=True, scope="session")


RUNTIME_IMAGE = os.environ.get("EXECBOX_DOCKER_IMAGE", "execbox-runtime:latest")


def docker_unavailable(image: str | None = RUNTIME_IMAGE) -> str | None:
    """Why the Docker backend cannot be tested here (no engine, or no such image), or None."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
        if image:
            client.images.get(image)
    except Exception as err:
        wanted = f" with the image {image}" if image else ""
        return f"no Docker engine{wanted} answers: {err}"
    return None


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    name = getattr(request, "param", "native")
    if name == "docker" and (reason := docker_unavailable()):
        pytest.skip(reason)
    return name


class ExternalServer(Server):
    """A server this test run did not start (EXECBOX_TEST_URL): execbox in a container, say."""

    def __init__(self, url: str, backend: str) -> None:
        super().__init__(backend=backend)
        self.url = url.rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])

    def start(self) -> Server:
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        return None


@pytest.fixture(scope="session")
def server(backend: str) -> Iterator[Server]:
    if url := os.environ.get("EXECBOX_TEST_URL"):
        if backend != "native":
            pytest.skip("EXECBOX_TEST_URL names one native-backend server")
        yield ExternalServer(url, backend)
        return
    srv = Server(backend=backend).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=slow(120)) as c:
        yield c


@pytest.fixture()
def run(client: httpx.Client):
    """POST /api/v1/execute and return the JSON body, asserting a 200."""

    def _run(language: str, code: str | None, **fields) -> dict:
        body = {"language": language, **fields}
        if code is not None:
            body["code"] = code
        response = client.post("/api/v1/execute", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    return _run


# Host uids that sandboxed programs run as: the native pool, and the Docker backend's user.
SANDBOX_UIDS = (range(61000, 61000 + 16 * 1000), range(65534, 65535))
WAITING_BOX = (
    # native: bwrap's two processes, or the helper's stub that waits for its command
    "/usr/bin/bwrap --args ",
    "/.sandbox/stub stub ",
    # docker: docker-init, and the shell (and its tar) waiting for the run's archive
    "/sbin/docker-init -- sh -c tar -x -o -C / -f - ",
    "sh -c tar -x -o -C / -f - ",
    "tar -x -o -C / -f -",
)


def _waiting_warm_box(ps_line: str) -> bool:
    """A sandbox of the warm pool, started ahead and waiting for its program."""
    args = ps_line.split(None, 3)[3]
    return args.startswith(WAITING_BOX)


def sandbox_processes(settle_s: float = 2.0) -> list[str]:
    """Live host processes running as a sandbox uid, as 'pid uid stat cmd' lines.

    Zombies are dead already (the host's init reaps them when their pid namespace dies), so
    they do not count; a moment is allowed for that to happen.
    """
    deadline = time.monotonic() + settle_s
    while True:
        out = subprocess.run(
            ["ps", "-eo", "pid=,uid=,stat=,args="], capture_output=True, text=True, check=True
        ).stdout
        alive = [
            line
            for line in out.splitlines()
            if any(int(line.split()[1]) in uids for uids in SANDBOX_UIDS)
            and not line.split()[2].startswith("Z")
            and not _waiting_warm_box(line)
        ]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


ISOLATION_PROBE = r"""
import os, socket
status = open('/proc/self/status').read()
fields = dict(line.split(':', 1) for line in status.splitlines())
print('uid', os.getuid())
print('capeff', fields['CapEff'].strip())
print('nonewprivs', fields['NoNewPrivs'].strip())
print('seccomp', fields['Seccomp'].strip())
print('pids', sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))
print('ifaces', sorted(name for _, name in socket.if_nameindex()))
"""


@pytest.fixture(scope="session")
def isolation_verified(client) -> None:
    """Fails every hostile test unless the sandbox is really in place: unprivileged on the
    host, no capabilities, seccomp on, its own pid and network namespaces."""
    body = client.post("/api/v1/execute", json={"language": "python", "code": ISOLATION_PROBE})
    assert body.status_code == 200, body.text
    lines = dict(line.split(" ", 1) for line in body.json()["run"]["stdout"].splitlines())
    host_uids = host_uids_of_a_running_program(client)
    assert host_uids and all(uid >= 1000 for uid in host_uids), host_uids
    assert int(lines["capeff"], 16) == 0
    assert lines["nonewprivs"] == "1"
    assert lines["seccomp"] == "2"
    assert len(eval(lines["pids"])) <= 3, lines["pids"]
    assert eval(lines["ifaces"]) == ["lo"]


def host_uids_of_a_running_program(client) -> list[int]:
    """Start a run that sleeps, and read its processes' uids from the host's side."""
    marker = f"isolation-marker-{os.getpid()}"
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            client.post,
            "/api/v1/execute",
            json={"language": "bash", "code": "sleep 3", "args": [marker]},
        )
        uids: list[int] = []
        deadline = time.monotonic() + 10
        while not uids and time.monotonic() < deadline:
            out = subprocess.run(
                ["ps", "-eo", "uid=,args="], capture_output=True, text=True, check=True
            ).stdout
            uids = [int(line.split()[0]) for line in out.splitlines() if marker in line]
            time.sleep(0.05)
        assert future.result().status_code == 200
    return uids
