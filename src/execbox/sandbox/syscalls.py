"""The syscall policy of every sandboxed process, the same on both backends.

Allow by default (toolchains use a wide and changing set of syscalls) and refuse, with EPERM,
the kernel interfaces that sandbox escapes and kernel exploits go through.
"""

from __future__ import annotations

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
