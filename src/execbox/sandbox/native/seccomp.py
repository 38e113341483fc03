"""The native backend's seccomp filter (the policy in sandbox/syscalls.py), built once with
libseccomp. Syscalls of other ABIs (i386, x32) are killed: libseccomp's default for a filter of
the native architecture.
"""

from __future__ import annotations

import tempfile

import pyseccomp as seccomp

from execbox.sandbox.syscalls import Arg, Op, rules

OPS = {Op.EQ: seccomp.EQ, Op.NE: seccomp.NE, Op.GT: seccomp.GT, Op.MASKED_EQ: seccomp.MASKED_EQ}


def _arg(arg: Arg) -> seccomp.Arg:
    if arg.op is Op.MASKED_EQ:
        return seccomp.Arg(arg.index, seccomp.MASKED_EQ, arg.mask, arg.value)
    return seccomp.Arg(arg.index, OPS[arg.op], arg.value)


def build_filter() -> bytes:
    """The BPF program, ready for ``bwrap --seccomp FD``."""
    filter_ = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for rule in rules():
        try:
            filter_.add_rule(seccomp.ERRNO(rule.errno), rule.syscall, *map(_arg, rule.args))
        except (RuntimeError, ValueError, OSError):
            if not rule.args:
                continue  # a syscall this kernel or libseccomp does not know
            raise
    with tempfile.TemporaryFile() as out:
        filter_.export_bpf(out)
        out.seek(0)
        return out.read()
