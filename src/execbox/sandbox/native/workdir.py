"""A stage's work directory: a fresh, size-limited tmpfs, either on the host (mounted by the
sandbox helper as it starts a box, bound into the sandbox: a compile stage's, whose files the
host reads back) or only inside the box (a run's, reached through the box's pid 1).

The host writes the program's files before the sandbox starts and reads artifacts after every
sandboxed process is dead. It never follows a symlink and never opens anything but a regular
file (so a FIFO the program left cannot block it), and unmounting removes everything at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import itertools
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from execbox.sandbox.base import SandboxFile

MNT_DETACH = 2
MAX_COLLECT_FILES = 4096
MAX_COLLECT_ENTRIES = 16384  # a compile's tmpfs holds at most this many inodes
MAX_COLLECT_DEPTH = 32
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def tmpfs_options(size_bytes: int, uid: int) -> str:
    """A work dir's tmpfs: its size, and owned by the sandbox's uid."""
    return f"size={size_bytes},mode=0700,uid={uid},gid={uid},nr_inodes=16384"


def mount_tmpfs(path: Path, options: str, flags: int) -> None:
    _check(
        _libc.mount(b"execbox", str(path).encode(), b"tmpfs", flags, options.encode()),
        f"mount tmpfs on {path}",
    )


def remount_readonly(path: Path, flags: int) -> None:
    ms_rdonly, ms_remount = 0x1, 0x20
    flags |= ms_remount | ms_rdonly
    _check(_libc.mount(None, str(path).encode(), None, flags, None), f"remount {path}")


def unmount(path: Path) -> None:
    _check(_libc.umount2(str(path).encode(), MNT_DETACH), f"unmount {path}")


def bind_readonly(source: str, target: Path) -> None:
    """Bind a host directory read-only at target (MS_BIND, then a read-only remount)."""
    ms_rdonly, ms_remount, ms_bind, ms_nosuid, ms_nodev = 0x1, 0x20, 0x1000, 0x2, 0x4
    _check(_libc.mount(source.encode(), str(target).encode(), None, ms_bind, None), "bind")
    flags = ms_remount | ms_bind | ms_rdonly | ms_nosuid | ms_nodev
    _check(_libc.mount(None, str(target).encode(), None, flags, None), "read-only remount")


def mounts_under(prefix: Path) -> list[Path]:
    """Mount points at or below prefix, deepest first (so they can be unmounted in order)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == str(prefix) or point.startswith(str(prefix) + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unmount_all_under(prefix: Path) -> bool:
    """Unmount everything below prefix; True when nothing is mounted there any more."""
    for point in mounts_under(prefix):
        with contextlib.suppress(OSError):
            unmount(point)
    return not mounts_under(prefix)


@contextlib.contextmanager
def file_identity(uid: int) -> Iterator[None]:
    """For the block, this thread creates files as ``uid`` (fsuid and fsgid; glibc does not
    pass setfsuid on to other threads). Needed in a box's own tmpfs: its user namespace does
    not map the host's root, which cannot own a file there (EOVERFLOW)."""
    previous_gid = _libc.setfsgid(uid)
    previous_uid = _libc.setfsuid(uid)
    try:
        if _libc.setfsuid(-1) != uid or _libc.setfsgid(-1) != uid:
            raise OSError(errno.EPERM, "cannot write files as the sandbox's uid")
        yield
    finally:
        _libc.setfsuid(previous_uid)
        _libc.setfsgid(previous_gid)


def write_files(
    root: Path,
    files: list[SandboxFile],
    uid: int,
    alive: Callable[[], None] | None = None,
    as_uid: bool = False,
) -> None:
    """Write the files into a fresh work dir; paths were validated by the engine. ``alive``
    is called once the work dir is open (it raises if the dir may not be the one meant);
    ``as_uid``: create them as the sandbox's uid (see file_identity)."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if alive is not None:
            alive()
        with file_identity(uid) if as_uid else contextlib.nullcontext():
            _write_all(root_fd, files, uid)
    finally:
        os.close(root_fd)


def _write_all(root_fd: int, files: list[SandboxFile], uid: int) -> None:
    for item in files:
        parts = Path(item.path).parts
        dir_fd = os.dup(root_fd)
        try:
            for part in parts[:-1]:
                try:
                    os.mkdir(part, 0o755, dir_fd=dir_fd)
                    os.chown(part, uid, uid, dir_fd=dir_fd, follow_symlinks=False)
                except FileExistsError:
                    pass
                next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                os.close(dir_fd)
                dir_fd = next_fd
            mode = 0o755 if item.executable else 0o644
            fd = os.open(
                parts[-1],
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                mode,
                dir_fd=dir_fd,
            )
            try:
                view = memoryview(item.content)
                while view:
                    view = view[os.write(fd, view) :]
                os.fchown(fd, uid, uid)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
        finally:
            os.close(dir_fd)


def used_bytes(root: Path) -> int:
    """What the files in a work dir's tmpfs take (its pages in use)."""
    usage = os.statvfs(root)
    return (usage.f_blocks - usage.f_bfree) * usage.f_frsize


def collect_files(root: Path, max_bytes: int) -> list[SandboxFile]:
    """Regular files below root, read without following links; others are skipped.

    Depth first, holding one descriptor per level of the current path only (at most
    MAX_COLLECT_DEPTH; deeper directories are skipped), and visiting at most
    MAX_COLLECT_ENTRIES entries and MAX_COLLECT_FILES files: whatever the stage left (16,000
    directories, say), the host's descriptors and time stay bounded."""
    collected: list[SandboxFile] = []
    budget = max_bytes
    visited = 0
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    # One level per open directory: its fd, its path prefix, and its entries still to visit.
    path: list[tuple[int, str, list[os.DirEntry]]] = [(root_fd, "", [])]
    try:
        path[0] = (root_fd, "", _entries(root_fd))
        while path:
            dir_fd, prefix, entries = path[-1]
            if not entries or visited >= MAX_COLLECT_ENTRIES:
                os.close(path.pop()[0])
                continue
            entry = entries.pop()
            visited += 1
            info = entry.stat(follow_symlinks=False)
            relative = f"{prefix}{entry.name}"
            if stat.S_ISDIR(info.st_mode) and len(path) < MAX_COLLECT_DEPTH:
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                child = os.open(entry.name, flags, dir_fd=dir_fd)
                try:
                    path.append((child, relative + "/", _entries(child)))
                except BaseException:
                    os.close(child)
                    raise
            elif stat.S_ISREG(info.st_mode) and len(collected) < MAX_COLLECT_FILES:
                content = read_regular(dir_fd, entry.name, budget)
                if content is None:
                    continue
                budget -= len(content)
                executable = bool(info.st_mode & stat.S_IXUSR)
                collected.append(SandboxFile(relative, content, executable))
    finally:
        for fd, _, _ in path:
            os.close(fd)
    return collected


def _entries(dir_fd: int) -> list[os.DirEntry]:
    with os.scandir(dir_fd) as entries:
        return list(itertools.islice(entries, MAX_COLLECT_ENTRIES))


def read_regular(dir_fd: int, name: str, budget: int) -> bytes | None:
    """A regular file's bytes, never through a symlink, never blocking on a FIFO; None when
    it is not a regular file or is larger than ``budget`` (read no further than its size)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > budget:
            return None
        chunks, left = [], info.st_size
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
