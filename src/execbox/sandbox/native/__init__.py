"""The native backend: bubblewrap namespaces, a cgroup per stage and seccomp, run unprivileged."""

from execbox.sandbox.native.sandbox import NativeSandbox

__all__ = ["NativeSandbox"]
