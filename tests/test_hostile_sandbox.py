"""Hostile programs against the sandbox's own walls: what the syscall policy refuses, on both
backends."""

from __future__ import annotations

import pytest

BACKENDS = ("native", "docker")

CTYPES = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
EAFNOSUPPORT, EPROTONOSUPPORT, EPERM = 97, 93, 1


def calls(run, lines: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Run each named C call inside the sandbox: {name: (return value, errno)}."""
    code = CTYPES + "".join(
        f"ctypes.set_errno(0)\nr = {call}\nprint({name!r}, r, ctypes.get_errno())\n"
        for name, call in lines.items()
    )
    body = run("python", code)
    assert body["status"] == "ok", body
    return {
        name: (int(r), int(e))
        for name, r, e in (line.split() for line in body["run"]["stdout"].splitlines())
    }


# AF_VSOCK ignores network namespaces: it would reach the VM's hypervisor and other runs.
REFUSED_FAMILIES = {
    "vsock": 40,
    "packet": 17,
    "alg": 38,
    "bluetooth": 31,
    "unspec": 0,
    "ax25": 3,
    "xdp": 44,
    "unknown": 1000,
}


def test_only_local_and_ip_socket_families_can_be_opened(run):
    results = calls(
        run,
        {
            **{name: f"libc.socket({family}, 1, 0)" for name, family in REFUSED_FAMILIES.items()},
            # The filter reads all 64 bits of the register, the kernel only an int.
            "vsock_high_bits": "libc.syscall(41, ctypes.c_long(40 | 1 << 32), 1, 0)",
            "pair_vsock": "libc.socketpair(40, 1, 0, (ctypes.c_int * 2)())",
            "unix": "libc.socket(1, 1, 0)",
            "inet": "libc.socket(2, 1, 0)",
            "inet6": "libc.socket(10, 2, 0)",
            "pair_unix": "libc.socketpair(1, 1, 0, (ctypes.c_int * 2)())",
            "netlink_route": "libc.socket(16, 3, 0)",
            "netlink_uevent": "libc.socket(16, 2, 15)",
        },
    )
    for name in [*REFUSED_FAMILIES, "vsock_high_bits", "pair_vsock"]:
        assert results[name] == (-1, EAFNOSUPPORT), (name, results[name])
    assert results["netlink_uevent"] == (-1, EPROTONOSUPPORT)
    for name in ("unix", "inet", "inet6", "netlink_route"):
        assert results[name][0] >= 0, (name, results[name])
    assert results["pair_unix"][0] == 0


@pytest.mark.parametrize(
    "language,code,expected",
    [
        (
            "python",
            "import socket\nprint('127.0.0.1' in {a[4][0] for a in socket.getaddrinfo('127.0.0.1', 80, flags=socket.AI_ADDRCONFIG)},"
            " [n for _, n in socket.if_nameindex()])",
            "True ['lo']",
        ),
        (
            "go",
            'package main\nimport ("fmt"; "net")\nfunc main() {\n'
            " ifs, err := net.Interfaces(); if err != nil { panic(err) }\n"
            ' addrs, err := net.LookupHost("127.0.0.1"); if err != nil { panic(err) }\n'
            ' l, err := net.Listen("tcp", "127.0.0.1:0"); if err != nil { panic(err) }\n'
            " l.Close(); fmt.Println(len(ifs), len(addrs) > 0)\n}",
            "1 true",
        ),
        (
            "javascript",
            "const os = require('os'); const dns = require('dns');\n"
            "dns.lookup('127.0.0.1', { all: true }, (err, addr) => { if (err) throw err;"
            " console.log(Object.keys(os.networkInterfaces()).join(','), !!addr); });",
            "lo true",
        ),
        (
            "java",
            "import java.net.*; import java.util.*;\npublic class Main {"
            " public static void main(String[] a) throws Exception {"
            " System.out.println(Collections.list(NetworkInterface.getNetworkInterfaces()).size()"
            ' + " " + InetAddress.getByName("127.0.0.1").isLoopbackAddress()); } }',
            "1 true",
        ),
    ],
)
def test_runtimes_still_network_on_loopback(run, language, code, expected):
    """Name resolution and interface listing (netlink) keep working in every runtime. (Numeric
    names: the Docker backend's /etc/hosts is empty.)"""
    body = run(language, code)
    assert body["status"] == "ok", body
    assert body["run"]["stdout"].strip() == expected


def test_personality_takes_only_the_values_runtimes_use(run):
    results = calls(
        run,
        {
            "query": "libc.personality(ctypes.c_ulong(0xFFFFFFFF))",
            "linux32": "libc.personality(ctypes.c_ulong(0x0008))",
            "uname26": "libc.personality(ctypes.c_ulong(0x20008))",
            "back": "libc.personality(ctypes.c_ulong(0))",
            "mmap_page_zero": "libc.personality(ctypes.c_ulong(0x0100000))",
            "read_implies_exec": "libc.personality(ctypes.c_ulong(0x0400000))",
            "no_randomize_linux32": "libc.personality(ctypes.c_ulong(0x0040008))",
            "almost_all": "libc.personality(ctypes.c_ulong(0xFFFFFFFE))",
            "high_bits": "libc.syscall(135, ctypes.c_long(1 << 32))",
        },
    )
    assert results["query"][0] == 0
    assert results["linux32"][0] == 0 and results["uname26"][0] == 0x0008
    assert results["back"][0] == 0x20008
    for name in ("mmap_page_zero", "read_implies_exec", "no_randomize_linux32", "almost_all"):
        assert results[name] == (-1, EPERM), (name, results[name])
    assert results["high_bits"] == (-1, EPERM)


def test_modify_ldt_is_refused(run):
    assert calls(run, {"ldt": "libc.syscall(154, 0, None, 0)"})["ldt"] == (-1, EPERM)


# The process that reports the program's end (native: the stub, pid 1; Docker: the control
# shell) is its parent, runs as its uid, and must be out of its reach.
REPORTER_PROBE = r"""
import os, sys
def attempt(action):
    try:
        action()
        return "allowed"
    except OSError as err:
        return err.errno
parent = os.getppid()
print("mem", attempt(lambda: os.close(os.open(f"/proc/{parent}/mem", os.O_RDWR))))
print("fds", attempt(lambda: os.listdir(f"/proc/{parent}/fd")))
print("environ", attempt(lambda: open(f"/proc/{parent}/environ", "rb").read()))
print("self", attempt(lambda: os.close(os.open("/proc/self/mem", os.O_RDWR))))
sys.exit(7)
"""


def test_the_program_cannot_reach_the_process_that_reports_its_end(run, backend):
    body = run("python", REPORTER_PROBE)
    assert body["status"] == "runtime_error" and body["run"]["exit_code"] == 7, body
    seen = dict(line.split() for line in body["run"]["stdout"].splitlines())
    for name in ("mem", "fds", "environ"):
        assert seen[name] in ("1", "13"), (name, seen)  # EPERM or EACCES
    assert seen["self"] == "allowed"  # the program itself is dumpable as usual


def test_only_a_real_wait_status_is_taken_from_the_stub():
    """Pure logic: what the host accepts on the stub's status pipe."""
    from execbox.sandbox.native.stub import BadStatus, wait_status

    assert wait_status(b"1792\n") == 7 << 8  # exit 7
    assert wait_status(b"0\n") == 0
    assert wait_status(b"9\n") == 9 and wait_status(b"139\n") == 139  # SIGKILL; SIGSEGV + core
    for forged in (b"99999999999999999999999\n", b"-1\n", b"127\n", b"1793\n", b"x\n", b"65536\n"):
        assert isinstance(wait_status(forged), BadStatus), forged


def peak_rss_mib(server) -> float:
    with open(f"/proc/{server.process.pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024


def test_compile_output_larger_than_the_run_may_hold_is_refused(run, server):
    """A 300 MiB initialised array compiles to a 300 MiB binary: more than the run's 128 MiB.
    It is refused as the compile's failure, and never passes through the service's memory."""
    before = peak_rss_mib(server)
    body = run(
        "c",
        "char big[300 << 20] = {1};\nint main(void) { return big[5]; }",
        limits={"memory_mb": 128},
        compile_limits={"memory_mb": 1024, "file_size_mb": 512, "wall_time_ms": 60000},
    )
    assert body["status"] == "compile_error", body
    assert body["run"] is None
    assert "compile output too large" in body["compile"]["message"], body["compile"]
    assert peak_rss_mib(server) - before < 100
    # The same source with room for it in the run compiles and runs.
    small = run("c", "char big[4 << 20] = {1};\nint main(void) { return big[0]; }")
    assert small["status"] == "runtime_error" and small["run"]["exit_code"] == 1, small


def test_kernel_and_host_details_are_hidden(run, backend):
    code = r"""
import os
def size(path):
    try:
        with open(path, "rb") as f:
            return len(f.read())
    except OSError:
        return 0
def listing(path):
    try:
        return len(os.listdir(path))
    except OSError:
        return 0
print(size("/proc/config.gz"), size("/proc/key-users"), size("/proc/keys"))
print(*(listing(f"/sys/{name}") for name in ("kernel", "devices", "class", "block", "module")))
"""
    body = run("python", code)
    assert body["status"] == "ok", body
    files, sys_dirs = body["run"]["stdout"].splitlines()
    assert files == "0 0 0"
    assert sys_dirs == "0 0 0 0 0"
    assert body["run"]["memory_bytes"] > 0  # the cgroup figures are still read
