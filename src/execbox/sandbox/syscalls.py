"""The syscall policy of every sandboxed process, the same on both backends.

Allow by default (toolchains use a wide and changing set of syscalls) and refuse, with EPERM,
the kernel interfaces that sandbox escapes and kernel exploits go through; refuse socket
families other than local, IP and routing netlink (vsock, for one, ignores network
namespaces), and personality flags other than the ones runtimes set. ``rules()`` is the whole
policy as backend-neutral rules; each backend translates them (libseccomp, Docker's profile).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from enum import StrEnum

DENIED_SYSCALLS = (
    # Kernel keyrings, io_uring, perf, eBPF, tracing other processes.
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "perf_event_open",
    "bpf",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    # Mounts, including the new mount API, and namespaces.
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "setns",
    "unshare",
    # Kernel modules, kexec, and other host administration.
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "syslog",
    "quotactl",
    "quotactl_fd",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    "iopl",
    "ioperm",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "userfaultfd",
    "fanotify_init",
    "uselib",
    "vhangup",
    "nfsservctl",
    # Per-process segment descriptors: only 16-bit and Wine-style code uses them.
    "modify_ldt",
)

# clone(2) flags that create namespaces; clone3 passes its flags in memory that seccomp cannot
# read, so clone3 answers ENOSYS and libc falls back to clone.
NAMESPACE_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
    | 0x00000080  # CLONE_NEWTIME
)


def namespace_flag_bits() -> list[int]:
    return [1 << i for i in range(NAMESPACE_FLAGS.bit_length()) if NAMESPACE_FLAGS & (1 << i)]


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    GT = "gt"
    MASKED_EQ = "masked_eq"  # (argument & mask) == value


@dataclass(frozen=True)
class Arg:
    """One comparison of a syscall argument (64 bits, as the filter sees the register)."""

    index: int
    op: Op
    value: int
    mask: int = 0  # MASKED_EQ only


@dataclass(frozen=True)
class Rule:
    """Refuse ``syscall`` with ``errno`` when every comparison holds (always, without any)."""

    syscall: str
    errno: int
    args: tuple[Arg, ...] = ()


AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
ALLOWED_SOCKET_FAMILIES = frozenset({AF_UNIX, AF_INET, AF_INET6, AF_NETLINK})
# Above every family a kernel knows (AF_MAX is 46 in 6.x): larger values are refused whole.
SOCKET_FAMILY_SPAN = 64
NETLINK_ROUTE = 0  # what getaddrinfo and Go's net package use; no audit, uevents, diag...

# personality(2): the values Docker's default profile allows (PER_LINUX, PER_LINUX32, UNAME26,
# both, and the 0xffffffff query). Others switch on behaviour meant for old binaries
# (MMAP_PAGE_ZERO, READ_IMPLIES_EXEC, ...).
PERSONALITY_BITS = (0x8, 0x20000)
PERSONALITY_QUERY = 0xFFFFFFFF


def _socket_rules() -> list[Rule]:
    rules = []
    for syscall in ("socket", "socketpair"):
        for family in range(SOCKET_FAMILY_SPAN):
            if family not in ALLOWED_SOCKET_FAMILIES:
                rules.append(Rule(syscall, errno.EAFNOSUPPORT, (Arg(0, Op.EQ, family),)))
        rules.append(Rule(syscall, errno.EAFNOSUPPORT, (Arg(0, Op.GT, SOCKET_FAMILY_SPAN - 1),)))
    rules.append(
        Rule(
            "socket",
            errno.EPROTONOSUPPORT,
            (Arg(0, Op.EQ, AF_NETLINK), Arg(2, Op.NE, NETLINK_ROUTE)),
        )
    )
    return rules


def _personality_rules() -> list[Rule]:
    """Refuse every personality value but 0, the PERSONALITY_BITS and the query.

    A rule may compare an argument once, so "not one of these" is said with single-bit masks:
    any other bit set while some other such bit is clear (a cycle over the other bits finds a
    set bit followed by a clear one), or all other bits set without the allowed ones (not the
    query); and nothing above 32 bits (the kernel reads an unsigned int).
    """
    others = [bit for bit in range(32) if 1 << bit not in PERSONALITY_BITS]

    def set_and_clear(one: int, clear: int) -> Rule:
        mask = (1 << one) | clear
        return Rule("personality", errno.EPERM, (Arg(0, Op.MASKED_EQ, 1 << one, mask),))

    rules = [Rule("personality", errno.EPERM, (Arg(0, Op.GT, PERSONALITY_QUERY),))]
    for i, bit in enumerate(others):
        rules.append(set_and_clear(bit, 1 << others[(i + 1) % len(others)]))
    rules.extend(set_and_clear(others[0], allowed) for allowed in PERSONALITY_BITS)
    return rules


def rules() -> list[Rule]:
    """The whole policy, as rules on top of "allow"."""
    policy = [Rule(name, errno.EPERM) for name in DENIED_SYSCALLS]
    policy.append(Rule("clone3", errno.ENOSYS))
    policy.extend(
        Rule("clone", errno.EPERM, (Arg(0, Op.MASKED_EQ, flag, flag),))
        for flag in namespace_flag_bits()
    )
    return policy + _socket_rules() + _personality_rules()
