"""What a run can see and do: its own files and the read-only toolchain, nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import host_uids_of_a_running_program, sandbox_processes

# Every test here runs against both sandbox backends.
BACKENDS = ("native", "docker")


def test_isolation_probe(isolation_verified):
    """The session-wide check itself (unprivileged, no caps, seccomp, namespaces)."""


# The uid a program sees, and the host uids it may run as, per backend.
# (Docker: each container its own uid from 61500 on, the same inside, no user namespace.)
INSIDE_UIDS = {"native": range(1000, 1001), "docker": range(61500, 62000)}
# A native server takes the first free range of 256 (SANDBOX_UID_BASE + 1000 k): another
# server on this host may hold the first.
NATIVE_HOST_UIDS = [uid for k in range(16) for uid in range(61000 + 1000 * k, 61256 + 1000 * k)]
HOST_UIDS = {"native": set(NATIVE_HOST_UIDS), "docker": range(61500, 62000)}


def test_runs_as_unprivileged_user(run, client, backend):
    body = run("bash", "id -u; id -g; grep CapEff /proc/self/status")
    uid, gid, caps = body["run"]["stdout"].splitlines()
    assert uid == gid and int(uid) in INSIDE_UIDS[backend]
    assert caps.split()[1] == "0000000000000000"
    host_uids = host_uids_of_a_running_program(client)
    assert host_uids and all(uid in HOST_UIDS[backend] for uid in host_uids)


def test_no_network(run, server):
    code = f"""
import socket
for target in [("127.0.0.1", {server.port}), ("10.0.0.1", 80), ("8.8.8.8", 53)]:
    try:
        socket.create_connection(target, timeout=1)
        print("connected", target)
    except OSError as err:
        print("refused", err.errno)
try:
    socket.getaddrinfo("pypi.org", 443)
    print("resolved")
except OSError:
    print("no dns")
"""
    out = run("python", code)["run"]["stdout"]
    assert "connected" not in out and "resolved" not in out
    assert out.count("refused") == 3 and "no dns" in out


def test_no_network_while_compiling(run):
    # A build script cannot fetch anything: the compile stage has no network either.
    code = '#include "/proc/net/dev"\nint main(){}'
    body = run("c", code)
    text = body["compile"]["stderr"]
    assert "eth" not in text and "ens" not in text


def test_host_secrets_are_not_visible(run, backend):
    if backend == "docker":
        # A container sees its image's /etc, not the host's: what must stay out of reach is
        # the host itself -- its secrets, the service's state and the engine's socket.
        secret = Path("/root/execbox-test-secret")
        secret.write_text("s3cret")
        try:
            code = (
                f"for f in {secret} /run/execbox /run/execbox-test /var/run/docker.sock "
                "/run/docker.sock; do "
                "if cat $f >/dev/null 2>&1 || ls $f >/dev/null 2>&1; then echo visible $f; fi; "
                "done; grep -rs s3cret /root /etc /run /var 2>/dev/null | head -1; "
                "tr '\\0' '\\n' < /proc/1/environ"
            )
            out = run("bash", code)["run"]["stdout"]
        finally:
            secret.unlink()
        assert "visible" not in out and "s3cret" not in out, out
        assert "EXECBOX" not in out  # the service's environment does not reach the container
        return
    code = (
        "for f in /etc/shadow /etc/ssh /root /home /run/execbox /run/execbox-test "
        "/var/run/docker.sock /var/lib; do "
        "if cat $f >/dev/null 2>&1 || ls $f >/dev/null 2>&1; then echo visible $f; fi; done; "
        "echo environ $(tr '\\0' '\\n' < /proc/1/environ | cut -d= -f1); ls /etc"
    )
    out = run("bash", code)["run"]["stdout"]
    assert "visible" not in out, out
    # The sandbox's pid 1 (the stub) has the sandbox's allow-listed environment, nothing else.
    names = set(out.split("\n", 1)[0].split()[1:])
    assert names <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "USER", "LOGNAME", "PWD"}, names
    etc = set(out.split("\n", 1)[1].split())
    assert etc <= {"passwd", "group", "hosts", "ld.so.cache", "localtime", "java-17-openjdk"}


def test_environment_is_clean(run):
    out = run("python", "import os; print(sorted(os.environ))")["run"]["stdout"]
    names = eval(out)
    assert not [n for n in names if n.startswith("EXECBOX") or n in ("PWD_HOST", "SSH_AUTH_SOCK")]
    assert set(names) <= {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "USER",
        "LOGNAME",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONIOENCODING",
        "LC_CTYPE",
        "PWD",
        "SHLVL",  # bash's nesting counter (the Docker backend's runner is a shell)
    }


def test_service_processes_are_not_visible(run, backend):
    out = run("bash", "ps -eo pid,args --no-headers | wc -l; cat /proc/1/cmdline | tr '\\0' ' '")
    count, init = out["run"]["stdout"].split("\n", 1)
    # native: the stub (pid 1), bash, ps, wc; docker: docker-init, the watching shell, bash, ps, wc
    assert int(count) <= {"native": 4, "docker": 5}[backend]
    assert "execbox" not in init and "python" not in init


def test_only_standard_descriptors_are_inherited(run):
    code = (
        "import os\nopen_fds = []\nfor fd in range(3, 4096):\n"
        "    try: os.fstat(fd); open_fds.append(fd)\n    except OSError: pass\n"
        "print(open_fds)"
    )
    assert run("python", code)["run"]["stdout"] == "[]\n"


@pytest.mark.parametrize("path", ["/usr/bin/evil", "/usr/lib/evil", "/etc/passwd", "/evil"])
def test_toolchain_and_system_are_read_only(run, path):
    body = run("bash", f"echo x > {path} && echo WROTE")
    assert "WROTE" not in body["run"]["stdout"]


def test_a_run_s_work_dir_exists_only_inside_its_sandbox(run, backend):
    # A run's /box is a tmpfs mounted inside the sandbox (the host writes the files through the
    # sandbox's pid 1 before anything runs): no host mount per run, nothing for the host to read
    # back. A compile stage's work dir is the host's (its artifacts are collected).
    body = run("bash", "grep ' /box ' /proc/self/mountinfo; ls -ln /box")
    mount, listing = body["run"]["stdout"].split("\n", 1)
    assert "main.sh" in listing, listing
    if backend == "docker":
        assert " - tmpfs " in mount, mount  # the container's own tmpfs
        return
    # bwrap's tmpfs (the host's were named "execbox"), owned by the sandbox's user
    assert " - tmpfs tmpfs " in mount and "mode=700" in mount, mount
    assert " 1000 1000 " in listing, listing


def test_dev_holds_only_harmless_devices(run, backend):
    code = (
        "for d in /dev/*; do [ -c $d ] && echo $d; done; "
        "echo x > /dev/null && head -c 4 /dev/urandom | wc -c; "
        "echo s > /dev/shm/f && cat /dev/shm/f; echo x > /dev/evil && echo WROTE"
    )
    lines = run("bash", code)["run"]["stdout"].split()
    devices = {line for line in lines if line.startswith("/dev/")}
    # null, zero, full, random, urandom, tty (docker: also its console and ptmx)
    expected = {f"/dev/{n}" for n in ("null", "zero", "full", "random", "urandom", "tty")}
    assert expected <= devices <= expected | {"/dev/console", "/dev/ptmx"}, devices
    assert lines[-2:] == ["4", "s"]  # devices work, /dev/shm is writable, /dev itself is not


def test_python_installation_is_read_only(run):
    code = (
        "import sys, os\nfor d in (sys.base_prefix, os.path.dirname(os.__file__)):\n"
        "    try:\n        open(os.path.join(d, 'evil.py'), 'w')\n        print('WROTE', d)\n"
        "    except OSError as e:\n        print('refused', e.errno)"
    )
    out = run("python", code)["run"]["stdout"]
    assert "WROTE" not in out and out.count("refused") == 2


def test_nothing_survives_from_one_run_to_the_next(run):
    first = run(
        "bash",
        "echo secret > /tmp/left; echo secret > left; echo s > /dev/shm/left; "
        "mkfifo fifo; ln -s /etc/passwd link; pwd",
    )
    assert first["run"]["stdout"] == "/box\n"
    second = run("bash", "ls -A /tmp /box /dev/shm")
    assert "left" not in second["run"]["stdout"]
    assert "fifo" not in second["run"]["stdout"] and "link" not in second["run"]["stdout"]


def test_work_dir_leftovers_do_not_hang_the_host(run, client):
    # A FIFO and symlinks named like artifacts: the host must neither block nor follow them.
    code = "mkfifo main; ln -sf /etc/shadow out; ln -s / root; mkfifo /tmp/f; echo done"
    body = run("bash", code)
    assert body["run"]["stdout"] == "done\n"
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "name,call",
    [
        ("unshare", "libc.unshare(0x10000000)"),
        ("mount", "libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)"),
        ("ptrace", "libc.ptrace(16, 1, 0, 0)"),
        ("keyctl", "libc.syscall(250, 0, 0, 0, 0, 0)"),
        ("bpf", "libc.syscall(321, 0, 0, 0)"),
        ("io_uring_setup", "libc.syscall(425, 1, 0)"),
        ("perf_event_open", "libc.syscall(298, 0, 0, -1, -1, 0)"),
        ("setns", "libc.setns(0, 0)"),
    ],
)
def test_dangerous_syscalls_are_refused(run, name, call):
    code = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"r = {call}\nprint(r, ctypes.get_errno())"
    )
    out = run("python", code)["run"]["stdout"].split()
    assert out[0] == "-1", f"{name} returned {out}"
    assert out[1] in ("1", "38"), f"{name} errno {out[1]}"  # EPERM (or ENOSYS)


def test_no_user_namespace_nesting(run):
    body = run("bash", "unshare --user --map-root-user id 2>&1 || echo refused")
    assert "refused" in body["run"]["stdout"] or "uid=0" not in body["run"]["stdout"]


def test_kill_everything_inside_only_kills_the_sandbox(run, client, backend, isolation_verified):
    body = run("bash", "kill -9 -1; echo survived")
    assert body["status"] in ("ok", "runtime_error")
    if backend == "native":  # the stub that reports the program's end is pid 1: unkillable inside
        assert body["status"] == "ok" and body["run"]["stdout"] == "survived\n", body
        body = run("bash", "kill -9 1 $PPID; kill -STOP 1; echo still")
        assert body["status"] == "ok" and body["run"]["stdout"] == "still\n", body
    assert client.get("/healthz").status_code == 200
    assert run("bash", "echo next")["run"]["stdout"] == "next\n"
    assert sandbox_processes() == []


def test_writes_to_etc_fail(run, isolation_verified):
    body = run("bash", "echo 'evil::0:0::/:/bin/sh' >> /etc/passwd; echo x > /etc/evil; echo end")
    assert body["run"]["stdout"] == "end\n"
    with open("/etc/passwd") as f:
        assert "evil" not in f.read()
    assert not os.path.exists("/etc/evil")
