"""The host side of a work dir never follows links nor blocks on FIFOs (real tmpfs, as root)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from execbox.sandbox.base import SandboxFile
from execbox.sandbox.native import workdir


def test_collect_skips_links_fifos_and_reads_regular_files(tmp_path):
    target = tmp_path / "work"
    target.mkdir()
    options = workdir.tmpfs_options(8 * 1024 * 1024, os.getuid())
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "execbox", str(target)], check=True)
    try:
        workdir.write_files(
            target,
            [SandboxFile("main", b"\x7fELF", executable=True), SandboxFile("pkg/A.class", b"cafe")],
            os.getuid(),
        )
        os.symlink("/etc/shadow", target / "stolen")
        os.symlink("/", target / "root")
        os.mkfifo(target / "fifo")
        os.mkfifo(target / "pkg" / "B.class")
        result: list = []
        thread = threading.Thread(
            target=lambda: result.extend(workdir.collect_files(target, 1 << 20))
        )
        thread.start()
        thread.join(5)
        assert not thread.is_alive(), "collect_files blocked"
        files = {f.path: f for f in result}
        assert set(files) == {"main", "pkg/A.class"}
        assert files["main"].executable and files["main"].content == b"\x7fELF"
    finally:
        workdir.unmount(target)
    assert not os.path.ismount(target)


def test_collect_respects_the_size_budget(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 1000)
    (tmp_path / "small").write_bytes(b"y" * 10)
    names = {f.path for f in workdir.collect_files(tmp_path, 100)}
    assert names == {"small"}


def test_write_files_refuses_to_follow_a_planted_link(tmp_path):
    os.symlink("/etc", tmp_path / "dir")
    with pytest.raises(OSError):
        workdir.write_files(tmp_path, [SandboxFile("dir/passwd", b"evil")], os.getuid())
    assert b"evil" not in Path("/etc/passwd").read_bytes()


def test_collect_keeps_few_descriptors_whatever_the_tree(tmp_path):
    """16,000 directories (nested and side by side) under a soft limit of 64 descriptors."""
    import resource

    work = tmp_path / "work"
    work.mkdir()
    options = "size=64m,nr_inodes=20000"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "execbox", str(work)], check=True)
    try:
        deep = work / "deep"
        deep.mkdir()
        fd = os.open(deep, os.O_RDONLY | os.O_DIRECTORY)
        for _ in range(8000):  # "d/d/d/...", one level at a time (longer than PATH_MAX)
            os.mkdir("d", dir_fd=fd)
            next_fd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        os.close(fd)
        wide = work / "wide"
        wide.mkdir()
        for i in range(8000):
            (wide / f"w{i}").mkdir()
        (wide / "w7" / "main").write_bytes(b"\x7fELF")
        (deep / "d" / "d" / "lib.so").write_bytes(b"lib")
        open_before = len(os.listdir("/proc/self/fd"))

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        try:
            files = workdir.collect_files(work, 1 << 20)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert {f.path for f in files} == {"wide/w7/main", "deep/d/d/lib.so"}
        assert len(os.listdir("/proc/self/fd")) == open_before  # nothing left open
    finally:
        workdir.unmount(work)
