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
