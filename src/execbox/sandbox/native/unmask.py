"""Inside a container, /proc comes with parts masked (tmpfs or /dev/null over some files,
read-only binds of others). The kernel lets a sandbox mount a fresh /proc for its pid
namespace only where the /proc it can already see is not partly hidden, so bwrap fails with
"Can't mount proc". The service unmounts those masks in its own mount namespace (the
container's, with CAP_SYS_ADMIN); programs never see this /proc, only their sandbox's own.
Only in a container: on a host, a mask over /proc is the host's own hardening, shared by every
process there, and is left alone.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from execbox.sandbox.native import workdir

log = logging.getLogger("execbox.sandbox")
# What container engines put over /proc; binfmt_misc and its automount stay.
MASK_TYPES = {"proc", "tmpfs", "devtmpfs"}


def proc_masks(mountinfo: str) -> list[str]:
    """The mount points below /proc that hide part of it, deepest first."""
    masks = []
    for line in mountinfo.splitlines():
        fields = line.split()
        separator = fields.index("-")
        point, fstype = fields[4], fields[separator + 1]
        if point.startswith("/proc/") and fstype in MASK_TYPES:
            masks.append(point)
    return sorted(masks, key=lambda p: p.count("/"), reverse=True)


def in_container() -> bool:
    """What container engines leave behind: Docker's and Podman's marker files, the
    ``container`` variable (systemd's convention, set by Podman and LXC), Kubernetes'."""
    return (
        os.path.exists("/.dockerenv")
        or os.path.exists("/run/.containerenv")
        or bool(os.environ.get("container"))  # noqa: SIM112 (systemd's name, lower case)
        or "KUBERNETES_SERVICE_HOST" in os.environ
    )


def unmask_proc() -> None:
    if not in_container():
        return
    with open("/proc/self/mountinfo") as f:
        masks = proc_masks(f.read())
    for point in masks:
        try:
            workdir.unmount(Path(point))
        except OSError as err:
            log.warning("cannot unmount the /proc mask %s: %s", point, err)
    if masks:
        log.info("unmasked /proc for the sandboxes' own /proc: %s", " ".join(masks))
