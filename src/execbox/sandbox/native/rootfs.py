"""The file system every box sees, made once at start: the host's /usr and library dirs
read-only, a generated /etc and the stub in one read-only directory (/.sandbox), a /dev of the
harmless devices, and /proc's masks. bwrap's options for each."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from execbox.sandbox import policy
from execbox.sandbox.native import helper, workdir

SANDBOX_UID = 1000
SANDBOX_DIR = helper.SANDBOX_DIR

# The kernel's build configuration helps an exploit more than any program: where this kernel
# offers it, the sandbox's /proc shows an empty file instead (after bwrap's --proc).
MASK_ARGS = [
    arg
    for path in ("/proc/config.gz",)
    if os.path.exists(path)
    for arg in ("--ro-bind", "/dev/null", path)
]


def root_fs_args() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


def prepare_sandbox_dir(directory: Path, helper_path: str) -> list[str]:
    """Fill the directory every box sees read-only at /.sandbox (the stub and the few /etc
    files a program may read) and return bwrap's options for it.

    One bind of one directory, with symlinks from /etc into it, instead of a bind per file:
    bwrap re-reads the whole mount table for every bind it makes (to remount its submounts),
    which is a good part of a box's start-up cost.
    """
    if directory.exists():
        workdir.unmount_all_under(directory)
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    # A tmpfs of the server's own, mounted without noexec: the state dir may be on a noexec
    # mount (Debian's /run), and a bind keeps its source's mount flags.
    nosuid, nodev = 0x2, 0x4
    workdir.mount_tmpfs(directory, "mode=0755,size=8388608,nr_inodes=64", nosuid | nodev)
    etc = directory / "etc"
    etc.mkdir()
    shutil.copyfile(helper_path, directory / "stub")
    (directory / "stub").chmod(0o755)
    (etc / "passwd").write_text(
        f"root:x:0:0:root:/root:/bin/false\n"
        f"runner:x:{SANDBOX_UID}:{SANDBOX_UID}:runner:{policy.ENVIRONMENT['HOME']}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (etc / "group").write_text(f"root:x:0:\nrunner:x:{SANDBOX_UID}:\nnogroup:x:65534:\n")
    (etc / "hosts").write_text("127.0.0.1 localhost execbox\n::1 localhost\n")
    args = ["--perms", "0755", "--dir", "/etc"]
    for name in ("ld.so.cache", "localtime"):
        host = Path("/etc") / name
        if host.is_symlink() and os.readlink(host).startswith("/usr/"):
            args += ["--symlink", os.readlink(host), str(host)]  # e.g. a zoneinfo file
        elif host.is_file():
            # A copy taken at start: a library installed later is still found by ld.so's
            # search of the default directories.
            shutil.copyfile(host, etc / name)
    for path in etc.iterdir():
        path.chmod(0o644)
        args += ["--symlink", f"{SANDBOX_DIR}/etc/{path.name}", f"/etc/{path.name}"]
    etc.chmod(0o755)
    workdir.remount_readonly(directory, nosuid | nodev)
    return ["--ro-bind", str(directory), SANDBOX_DIR, *args]


# What bwrap's --dev makes: the harmless character devices, and links to the descriptors.
DEVICES = {
    "null": (1, 3),
    "zero": (1, 5),
    "full": (1, 7),
    "random": (1, 8),
    "urandom": (1, 9),
    "tty": (5, 0),
}
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
}


def prepare_dev_dir(directory: Path) -> list[str]:
    """A /dev for every box, made once: a small read-only tmpfs holding the device nodes that
    bwrap's --dev would bind one by one into each box (six binds, each re-reading the whole
    mount table: ~0.7 ms of CPU per box here). No pseudo-terminals (no devpts)."""
    nosuid = 0x2  # devices must work here: not nodev
    directory.mkdir(exist_ok=True)
    workdir.mount_tmpfs(directory, "mode=0755,size=65536,nr_inodes=64", nosuid)
    for name, (major, minor) in DEVICES.items():
        os.mknod(directory / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(directory / name, 0o666)
    for name, target in DEV_LINKS.items():
        os.symlink(target, directory / name)
    for name in ("shm", "pts"):
        (directory / name).mkdir(mode=0o755)
    workdir.remount_readonly(directory, nosuid)
    return ["--dev-bind", str(directory), "/dev"]
