"""The native backend's seccomp filter (the policy in sandbox/syscalls.py), built once with
libseccomp. Syscalls of other ABIs (i386, x32) are killed: libseccomp's default for a filter of
the native architecture.
"""

from __future__ import annotations

import errno
import tempfile

import pyseccomp as seccomp

from execbox.sandbox.syscalls import DENIED_SYSCALLS, namespace_flag_bits


def build_filter() -> bytes:
    """The BPF program, ready for ``bwrap --seccomp FD``."""
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            continue  # a syscall this kernel or libseccomp does not know
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    for flag in namespace_flag_bits():
        rules.add_rule(
            seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag)
        )
    with tempfile.TemporaryFile() as out:
        rules.export_bpf(out)
        out.seek(0)
        return out.read()
