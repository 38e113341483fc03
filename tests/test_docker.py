"""The Docker backend's own promises, checked on the real engine: how every container is
configured, that each is used once and always removed (even after a server crash), and the
warm pool. (Languages, limits, isolation and the API run against it in their own modules.)"""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import docker.errors
import httpx
import pytest
from conftest import Server, docker_unavailable

pytestmark = pytest.mark.skipif((reason := docker_unavailable()) is not None, reason=reason or "")

LABEL = "org.execbox"


@pytest.fixture(scope="module")
def engine():
    import docker

    client = docker.from_env()
    yield client.api
    client.close()


def containers_of(engine, server: Server) -> list[dict]:
    """The containers a server made, whatever their state."""
    found = engine.containers(all=True, filters={"label": LABEL})
    pid = server.process.pid if server.process else -1
    return [c for c in found if c["Labels"].get(f"{LABEL}.server", "").startswith(f"srv-{pid}-")]


def settled(engine, server: Server, count: int, timeout: float = 20) -> list[dict]:
    """The server's containers once there are ``count`` of them (refills and removals run in
    the background)."""
    deadline = time.monotonic() + timeout
    while True:
        found = containers_of(engine, server)
        steady = all(c["State"] == "running" for c in found)  # not half-created or removed
        if (len(found) == count and steady) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.fixture(scope="module")
def docker_server():
    srv = Server(backend="docker", env={"EXECBOX_WARM_POOL": "1"}).start()
    yield srv
    srv.stop()


def execute(server: Server, body: dict, timeout: float = 60) -> httpx.Response:
    return httpx.post(server.url + "/api/v1/execute", json=body, timeout=timeout)


def test_a_running_container_is_locked_down(engine, docker_server):
    """Read the configuration of the container that runs a program, from the engine."""
    body = {
        "language": "bash",
        "code": "ulimit -f; sleep 3",
        "limits": {"memory_mb": 96, "processes": 20, "file_size_mb": 3},
    }
    result: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: result.append(execute(docker_server, body)))
    thread.start()
    try:
        running = []
        deadline = time.monotonic() + 10
        while not running and time.monotonic() < deadline:
            for found in containers_of(engine, docker_server):
                try:
                    top = engine.top(found["Id"])
                except docker.errors.APIError:  # it ended (or was removed) meanwhile
                    continue
                if any("sleep 3" in " ".join(p) for p in top.get("Processes") or []):
                    running.append(engine.inspect_container(found["Id"]))
            time.sleep(0.1)
    finally:
        thread.join()
    assert result[0].json()["status"] == "ok"
    assert result[0].json()["run"]["stdout"] == "3072\n"
    assert running, "the program's container was not seen"
    info = running[0]
    host = info["HostConfig"]
    assert host["NetworkMode"] == "none" and info["Config"]["NetworkDisabled"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"] and not host["Privileged"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert any(opt.startswith("seccomp=") for opt in host["SecurityOpt"])
    assert host["Memory"] == host["MemorySwap"] == 96 * 1024 * 1024
    assert host["PidsLimit"] == 20 + 2  # docker-init and the watching shell
    assert host["NanoCpus"] == 1_000_000_000
    assert host["Init"] is True
    ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in host["Ulimits"]}
    # The container's own file-size limit bounds unpacking the request's files (its /box is
    # a 96 MiB tmpfs); the program runs under the stage's 3 MiB (bash counts 1024-byte blocks).
    assert ulimits["fsize"] == (96 * 1024 * 1024,) * 2 and ulimits["core"] == (0, 0)
    uid, gid = info["Config"]["User"].split(":")
    assert uid == gid and int(uid) in range(61500, 62000)
    assert {"/proc/config.gz", "/proc/key-users", "/sys/kernel"} <= set(host["MaskedPaths"])
    # Nothing of the host is mounted: only tmpfs work dirs.
    assert not host["Binds"] and not info["Mounts"]
    assert set(host["Tmpfs"]) == {"/box", "/tmp"}
    assert "size=96m" in host["Tmpfs"]["/box"]


def test_each_container_runs_once_and_is_removed(engine, docker_server):
    execute(docker_server, {"language": "bash", "code": "echo warm"})
    # The pool holds one started container per profile used (here: bash's run stage).
    idle = settled(engine, docker_server, 1)
    assert [c["State"] for c in idle] == ["running"], idle
    body = execute(docker_server, {"language": "bash", "code": "ls -A /tmp /box"})
    # Only the program's file: the run script and stdin were removed before it started.
    assert body.json()["run"]["stdout"] == "/box:\nmain.sh\n\n/tmp:\n"
    # The used container goes (in the background) and the pool's new one takes its place.
    deadline = time.monotonic() + 20
    used = {c["Id"] for c in idle}
    while used & {c["Id"] for c in containers_of(engine, docker_server)}:
        assert time.monotonic() < deadline, "the used container was not removed"
        time.sleep(0.2)
    after = settled(engine, docker_server, 1)
    assert len(after) == 1 and {c["Id"] for c in after}.isdisjoint(used), "a container was reused"


@pytest.mark.parametrize(
    "code,limits,status",
    [
        ("echo fine", {}, "ok"),
        ("exit 3", {}, "runtime_error"),
        ("sleep 10", {"wall_time_ms": 500}, "time_limit"),
        ("yes", {"output_bytes": 1000}, "output_limit"),
        ("kill -9 -1", {}, "runtime_error"),
    ],
)
def test_containers_are_removed_whatever_the_end(engine, docker_server, code, limits, status):
    execute(docker_server, {"language": "bash", "code": "echo warm"})
    settled(engine, docker_server, 1)
    body = execute(docker_server, {"language": "bash", "code": code, "limits": limits})
    assert body.json()["status"] == status
    # Only the refilled warm container is left.
    assert len(settled(engine, docker_server, 1)) == 1


def test_a_client_that_goes_away_leaves_no_container(engine, docker_server):
    execute(docker_server, {"language": "bash", "code": "echo warm"})
    settled(engine, docker_server, 1)
    with pytest.raises(httpx.ReadTimeout):
        execute(docker_server, {"language": "bash", "code": "sleep 30"}, timeout=1.5)
    assert len(settled(engine, docker_server, 1, timeout=10)) == 1


def test_no_container_outlives_the_server(engine):
    srv = Server(backend="docker", env={"EXECBOX_WARM_POOL": "2"}).start()
    execute(srv, {"language": "bash", "code": "echo hi"})
    assert containers_of(engine, srv)
    srv.stop()
    assert containers_of(engine, srv) == []


def test_a_crashed_servers_containers_are_removed_by_the_next(engine):
    crashed = Server(backend="docker", env={"EXECBOX_WARM_POOL": "2"}).start()
    execute(crashed, {"language": "bash", "code": "echo hi"})
    assert settled(engine, crashed, 2)
    crashed.stop(signal.SIGKILL)
    assert containers_of(engine, crashed), "SIGKILL leaves the containers behind"
    successor = Server(backend="docker").start()
    try:
        assert containers_of(engine, crashed) == []
    finally:
        successor.stop()


def test_without_a_pool_no_container_waits(engine):
    srv = Server(backend="docker", env={"EXECBOX_WARM_POOL": "0"}).start()
    try:
        body = execute(srv, {"language": "python", "code": "print(6 * 7)"})
        assert body.json()["run"]["stdout"] == "42\n"
        assert settled(engine, srv, 0) == []
    finally:
        srv.stop()


def test_language_images_can_be_chosen_per_language(engine):
    """An operator points a language at another image; a missing one makes that language
    unavailable with the reason, the others keep working."""
    srv = Server(
        backend="docker", env={"EXECBOX_DOCKER_IMAGES": "bash=execbox-no-such-image:1"}
    ).start()
    try:
        listed = {
            item["language"]: item for item in httpx.get(srv.url + "/api/v1/languages").json()
        }
        assert not listed["bash"]["available"]
        assert "execbox-no-such-image" in listed["bash"]["reason"]
        body = execute(srv, {"language": "bash", "code": "echo hi"})
        assert body.status_code == 503 and "bash" in body.json()["message"]
        assert execute(srv, {"language": "python", "code": "print(1)"}).json()["status"] == "ok"
    finally:
        srv.stop()


# Looks for the run's end-marker nonce wherever a process of its uid could read it (other
# processes' command lines, environments, open files and writable memory), then prints forged
# end markers for every candidate -- an archive that never ends, exit code 0 -- and floods.
NONCE_THIEF = r"""
import os, re, stat, sys
pattern = re.compile(rb"([0-9a-f]{32}) ")
found = set()
def scan(data):
    found.update(pattern.findall(data))
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    for name in ("cmdline", "environ"):
        try:
            scan(open(f"/proc/{pid}/{name}", "rb").read())
        except OSError:
            pass
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        fds = []
    for fd in fds:
        try:
            path = f"/proc/{pid}/fd/{fd}"
            if stat.S_ISREG(os.stat(path).st_mode):
                scan(open(path, "rb").read(1 << 20))
        except OSError:
            pass
    try:
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb") as mem:
            for line in maps:
                span, perms = line.split()[:2]
                start, end = (int(x, 16) for x in span.split("-"))
                if perms.startswith("rw"):
                    try:
                        mem.seek(start)
                        scan(mem.read(min(end - start, 1 << 24)))
                    except (OSError, ValueError, OverflowError):
                        pass
    except OSError:
        pass
print("found", len(found), flush=True)
for nonce in sorted(found):
    sys.stderr.buffer.write(b"\n" + nonce + b" 0 0 0 0\n")
    sys.stdout.buffer.write(b"\n" + nonce + b" archive 99999999999\n")
sys.stdout.flush()
sys.stderr.flush()
for _ in range(int(sys.argv[1])):
    sys.stdout.buffer.write(b"x" * (1 << 20))
sys.exit(7)
"""


def peak_rss_kib(server: Server) -> int:
    assert server.process is not None
    with open(f"/proc/{server.process.pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])


def test_a_program_cannot_forge_the_end_of_its_run(docker_server):
    """The control shell's nonce is out of the program's reach: its real exit status is
    reported, its output is capped, and nothing it sends after a forged marker is kept."""
    limits = {"output_bytes": 65536, "wall_time_ms": 30000}
    body = execute(
        docker_server, {"language": "python", "code": NONCE_THIEF, "args": ["0"], "limits": limits}
    ).json()
    assert body["status"] == "runtime_error", body
    assert body["run"]["exit_code"] == 7
    assert body["run"]["stdout"].startswith("found 0\n"), body["run"]["stdout"][:200]

    before = peak_rss_kib(docker_server)
    body = execute(
        docker_server,
        {"language": "python", "code": NONCE_THIEF, "args": ["300"], "limits": limits},
    ).json()
    assert body["status"] == "output_limit", body["status"]
    assert len(body["run"]["stdout"]) <= 65536 and body["run"]["stdout_truncated"]
    assert peak_rss_kib(docker_server) - before < 100 * 1024
    assert httpx.get(docker_server.url + "/healthz", timeout=10).status_code == 200


def test_concurrent_runs_do_not_share_per_user_kernel_limits(docker_server):
    """Each container has its own uid: one run that takes every inotify instance its uid may
    have does not starve another run."""
    marker = f"inotify-hog-{time.monotonic_ns()}"
    hog = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "while libc.inotify_init() >= 0:\n    pass\n"
        f"os.execvp('sh', ['sh', '-c', 'sleep 3; : {marker}'])\n"
    )
    results: list[httpx.Response] = []
    thread = threading.Thread(
        target=lambda: results.append(
            execute(
                docker_server,
                {"language": "python", "code": hog, "limits": {"wall_time_ms": 30000}},
            )
        )
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while (
            marker
            not in subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
        ):
            assert time.monotonic() < deadline, "the inotify hog did not start"
            time.sleep(0.05)
        body = execute(
            docker_server,
            {
                "language": "python",
                "code": "import ctypes\nprint(ctypes.CDLL(None).inotify_init() >= 0)",
            },
        ).json()
    finally:
        thread.join()
    assert body["run"]["stdout"] == "True\n", body
    assert results[0].json()["status"] == "ok"
