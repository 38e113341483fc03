"""The native sandbox's compiled helper (helper.c): built once per source, at start.

A shell stub and ``setpriv`` each cost a dynamically linked program's start on every run; the
helper is a static binary without a C library (see helper.c for why), so each of its two starts
per box costs little more than the exec itself.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

SOURCE = "helper.c"
NAME = "execbox-helper"
# Where every sandbox sees it (in a directory bound read-only, holding the host's copy).
SANDBOX_DIR = "/.sandbox"
SANDBOX_PATH = f"{SANDBOX_DIR}/stub"
# Static, no C library, no position independence (no relocations to apply at start), and no
# calls the compiler would otherwise invent (memset for a loop, stack protector checks).
FLAGS = [
    "-O2",
    "-Wall",
    "-static",
    "-nostdlib",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-tree-loop-distribute-patterns",
    "-fno-stack-protector",
    "-fno-pie",
    "-no-pie",
]


class HelperBuildError(Exception):
    pass


def build(directory: Path) -> Path:
    """The helper for this source, compiled into ``directory`` unless already there."""
    source = resources.files("execbox.sandbox.native").joinpath(SOURCE).read_bytes()
    target = directory / f"{NAME}-{hashlib.sha256(source).hexdigest()[:16]}"
    if _trusted(target):
        return target
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise HelperBuildError("no C compiler (cc) to build the sandbox helper: install gcc")
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    source_path = directory / f".{target.name}.{os.getpid()}.c"
    partial = directory / f".{target.name}.{os.getpid()}"
    source_path.write_bytes(source)
    try:
        result = subprocess.run(
            [compiler, *FLAGS, "-o", str(partial), str(source_path)],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip()
            raise HelperBuildError(f"building the sandbox helper failed: {message}")
        partial.chmod(0o755)
        os.replace(partial, target)  # atomic: servers starting side by side
    finally:
        for path in (source_path, partial):
            path.unlink(missing_ok=True)
    return target


def _trusted(path: Path) -> bool:
    """An existing build is used only if nobody but root could have written it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    return info.st_uid == 0 and not info.st_mode & 0o022 and path.parent.stat().st_uid == 0
